"""The sampler: one daemon thread that polls every sensor about every ``interval_s``.

The poll interval is dithered by ±``dither`` (deterministic pseudo-random) so that the
phase of a counter that updates at the same nominal rate as the polls (NVIDIA's ~100 ms)
becomes observable to the attribution (see ``greenprof.energy``). A sensor that raises is
logged once and skipped for that poll; the thread itself never dies on a sensor or
consumer error.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from greenprof.records import Reading
from greenprof.sensors.base import PowerSensor

log = logging.getLogger("greenprof")

ReadingsConsumer = Callable[[list[Reading]], None]


class Sampler:
    """Polls ``sensors`` in a daemon thread and hands each poll's readings to ``consumer``.

    The consumer runs on the sampler thread; it should be quick (it is the profiler's
    attribution and queueing step).

    Example::

        sampler = Sampler([FakeSensor()], interval_s=0.1, consumer=print)
        sampler.start()
        ...
        sampler.stop()
    """

    def __init__(
        self,
        sensors: Sequence[PowerSensor],
        *,
        interval_s: float,
        consumer: ReadingsConsumer,
        on_error: Callable[[str], None] | None = None,
        dither: float = 0.2,
        seed: int = 0x6772,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sensors = tuple(sensors)
        self._interval_s = interval_s
        self._consumer = consumer
        self._on_error = on_error
        self._dither = dither
        self._random = random.Random(seed)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: set[str] = set()
        self.polls = 0
        self.cpu_time_s = 0.0
        """CPU time the sampler thread spent (``time.thread_time``), for the overhead benchmark."""

    def poll(self) -> list[Reading]:
        """Read every sensor once, on the calling thread, and pass the readings on."""
        readings = []
        for sensor in self._sensors:
            try:
                readings.append(sensor.read())
            except Exception as exc:  # a sensor failure must not stop the others
                self._report(f"sensor {sensor.device} failed to read: {exc!r}", sensor.device)
            else:
                self._failing.discard(sensor.device)
        self.polls += 1
        try:
            self._consumer(readings)
        except Exception as exc:
            self._report(f"processing readings failed: {exc!r}", "<consumer>")
            log.debug("greenprof consumer failure", exc_info=True)
        return readings

    def _report(self, message: str, key: str) -> None:
        if key in self._failing:
            return
        self._failing.add(key)
        log.warning("greenprof: %s", message)
        if self._on_error is not None:
            self._on_error(message)

    def start(self) -> None:
        """Take a first reading now, then keep polling in the background."""
        self.poll()
        self._thread = threading.Thread(target=self._loop, name="greenprof-sampler", daemon=True)
        self._thread.start()

    def stop(self, *, settle_s: float = 0.0, settle_every_s: float = 0.02) -> None:
        """Stop the thread, then keep reading on the calling thread for ``settle_s``.

        Settling lets counters that update periodically (NVIDIA's ~100 ms) publish the
        energy of the last steps, so that the run's tail is measured, not extrapolated.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        deadline_s = self._clock() + settle_s
        self.poll()
        while self._clock() < deadline_s:
            time.sleep(settle_every_s)
            self.poll()

    def _loop(self) -> None:
        started = time.thread_time()
        next_s = self._clock()
        while True:
            jitter = 1.0 + self._dither * (2.0 * self._random.random() - 1.0)
            next_s += self._interval_s * jitter
            # Never try to catch up after a stall: that would burst polls.
            next_s = max(next_s, self._clock())
            if self._stop.wait(max(0.0, next_s - self._clock())):
                break
            self.poll()
            self.cpu_time_s = time.thread_time() - started

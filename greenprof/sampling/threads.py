"""Polling on threads: one daemon thread that polls every sensor about every ``interval_s``.

This is the sampler's engine wherever it runs: in the helper process
(:mod:`greenprof.sampling.helper`) for sensors with a recipe, and on threads of the
training process for the others or when no helper process can be started (see
:mod:`greenprof.sampler`, the façade the profiler uses).

The poll interval is dithered by ±``dither`` (deterministic pseudo-random) so that the
phase of a counter that updates at the same nominal rate as the polls (NVIDIA's ~100 ms)
becomes observable to the attribution (see ``greenprof.energy``).

Sensors are untrusted: a driver call can block forever, and a custom sensor can return
anything. So:

- Each sensor is read on its own small daemon *reader* thread. A poll asks every idle
  reader for one read and waits for the answers at most ``read_timeout_s``. A read that
  takes longer marks the sensor *wedged*: it is reported once, its device gets no
  readings, and later polls skip it (no new request) until the pending read returns;
  then its answer is used and the sensor rejoins. A read blocked forever therefore
  costs one ``read_timeout_s`` wait, once, and leaks one parked daemon thread.
- Every raw read goes through the device's :class:`~greenprof.sensors.guard.ReadingGuard`
  before the consumer sees it: the consumer only ever gets valid readings with float
  fields (see the guard's rules). Problems are counted per device (:meth:`ThreadSampler.health`)
  and reported once per device and kind through ``on_error``.
- A sensor that raises is reported once (again after it has recovered) and skipped for
  that poll; the others keep flowing. The thread itself never dies on a sensor or
  consumer error.
- :meth:`ThreadSampler.stop` returns within ``settle_s + STOP_GRACE_S`` whatever the sensors
  do (the sampler thread is woken, not waited for sensor reads). Closing sensors is the
  owner's job; :func:`close_sensors` closes them with the same kind of bound.

Reader threads cost two thread switches per sensor per poll; at 10 Hz that is well below
the 1 %-of-a-core budget (``benchmarks/bench_overhead.py``), and their CPU time is counted
in :attr:`ThreadSampler.cpu_time_s`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from greenprof.records import Reading
from greenprof.sampling.closing import close_sensors
from greenprof.sampling.health import (
    JOIN_TIMEOUT_S,
    MAX_READ_TIMEOUT_S,
    MIN_READ_TIMEOUT_S,
    STOP_GRACE_S,
    DeviceHealth,
    ReadingsConsumer,
    RejectedCallback,
    default_read_timeout_s,
)
from greenprof.sensors.base import Sensor, as_sensor
from greenprof.sensors.guard import READ_ERROR, READ_TIMEOUT, GuardEvent, ReadingGuard

__all__ = [
    "JOIN_TIMEOUT_S",
    "MAX_READ_TIMEOUT_S",
    "MIN_READ_TIMEOUT_S",
    "STOP_GRACE_S",
    "DeviceHealth",
    "ReadingsConsumer",
    "RejectedCallback",
    "ThreadSampler",
    "close_sensors",
    "default_read_timeout_s",
]

log = logging.getLogger("greenprof")


class _Reader:
    """Reads one sensor on its own daemon thread, one read at a time.

    ``busy``, ``result``, ``asked_s`` and ``wedged`` are guarded by the sampler's state
    lock. ``_go`` is a lock used as a signal (cheaper than an Event: this runs every poll):
    it is held except between a request and the reader thread taking it. The thread is
    started by the first request.
    """

    __slots__ = (
        "_exit",
        "_go",
        "_sampler",
        "_thread",
        "asked_s",
        "busy",
        "cpu_s",
        "failing",
        "guard",
        "last_good_s",
        "result",
        "sensor",
        "wedged",
    )

    def __init__(self, sensor: Sensor, guard: ReadingGuard, sampler: ThreadSampler) -> None:
        self.sensor = sensor
        self.guard = guard
        self.busy = False
        self.wedged = False
        self.failing = False
        self.asked_s = 0.0
        """``time.monotonic()`` of the pending request (waits are bounded from it)."""
        self.result: tuple[object, BaseException | None] | None = None
        self.last_good_s: float | None = None
        self.cpu_s = 0.0
        self._sampler = sampler
        self._go = threading.Lock()
        self._go.acquire()
        self._exit = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for one read (call with the state lock held, when not busy)."""
        self.busy = True
        self.asked_s = time.monotonic()
        self.result = None
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"greenprof-read-{self.sensor.device}", daemon=True
            )
            self._thread.start()
        self._go.release()

    def exit(self) -> None:
        """End the thread now if idle, else after its current read (state lock held)."""
        if self._exit:
            return
        self._exit = True
        if self._thread is not None and not self.busy:
            self._go.release()

    def _run(self) -> None:
        started = time.thread_time()
        sensor, go, sampler = self.sensor, self._go, self._sampler
        while True:
            go.acquire()
            if self._exit:
                return
            result: object = None
            error: BaseException | None = None
            try:
                result = sensor.read()
            except BaseException as exc:  # whatever read() does, the answer gets back
                error = exc
            with sampler._state:
                self.result = (result, error)
                self.busy = False
                self.cpu_s = time.thread_time() - started
                sampler._answered(self)
                if self._exit:
                    return


class ThreadSampler:
    """Polls ``sensors`` in a daemon thread and hands each poll's readings to ``consumer``.

    The consumer runs on the sampler thread; it should be quick (it is the profiler's
    attribution and queueing step). It receives only readings that passed the device's
    :class:`~greenprof.sensors.guard.ReadingGuard`.

    Args:
        sensors: one per device (one written before the contract is completed by
            :func:`~greenprof.sensors.base.as_sensor`).
        interval_s: the nominal time between polls.
        consumer: gets each poll's readings (possibly empty).
        on_error: gets a one-line message for each problem, once per device and kind.
        on_rejected: gets ``(device, time_s, reason)`` for every rejected or repaired
            reading (on the sampler thread, before the consumer sees that poll).
        read_timeout_s: how long a poll waits for a sensor (default
            :func:`default_read_timeout_s`).
        clock: the time source for the schedule and health (``time.monotonic``). Waits
            for sensors are bounded on ``time.monotonic`` whatever the clock.

    Example::

        sampler = ThreadSampler([FakeSensor()], interval_s=0.1, consumer=print)
        sampler.start()
        ...
        sampler.stop()
    """

    def __init__(
        self,
        sensors: Sequence[Sensor],
        *,
        interval_s: float,
        consumer: ReadingsConsumer,
        on_error: Callable[[str], None] | None = None,
        dither: float = 0.2,
        seed: int = 0x6772,
        clock: Callable[[], float] = time.monotonic,
        read_timeout_s: float | None = None,
        on_rejected: RejectedCallback | None = None,
    ) -> None:
        self._sensors = tuple(as_sensor(sensor) for sensor in sensors)
        self._interval_s = interval_s
        self._consumer = consumer
        self._on_error = on_error
        self._on_rejected = on_rejected
        self._dither = dither
        self._random = random.Random(seed)
        self._clock = clock
        self.read_timeout_s = (
            default_read_timeout_s(interval_s) if read_timeout_s is None else read_timeout_s
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        """Guards the readers' shared fields, ``_waiting`` and ``_armed``."""
        self._wake = threading.Lock()
        """Held while a poll waits; released by the last answer it waits for (or stop)."""
        self._wake.acquire()
        self._armed = False
        self._recheck = False
        """Wake the waiting poll on every answer, not only the last (see ``_poll``)."""
        self._waiting: set[_Reader] = set()
        self._reported: set[tuple[str, str]] = set()
        self._readers = tuple(
            _Reader(
                sensor,
                ReadingGuard.for_sensor(sensor, on_problem=self._guard_problem),
                self,
            )
            for sensor in self._sensors
        )
        self._order = {reader: i for i, reader in enumerate(self._readers)}
        self.polls = 0
        self._loop_cpu_s = 0.0

    @property
    def cpu_time_s(self) -> float:
        """CPU time of the sampler thread and the reader threads (``time.thread_time``),
        for the overhead benchmark."""
        return self._loop_cpu_s + sum(reader.cpu_s for reader in self._readers)

    # Polling --------------------------------------------------------------------

    def poll(self) -> list[Reading]:
        """Read every sensor once (on the reader threads), wait at most ``read_timeout_s``,
        validate, and pass the readings on. Returns what the consumer got."""
        return self._poll(time.monotonic() + self.read_timeout_s, interruptible=False)

    def _poll(self, wait_until: float, *, interruptible: bool) -> list[Reading]:
        now_s = self._clock()
        answers: list[tuple[_Reader, tuple[object, BaseException | None]]] = []
        rejoined: list[_Reader] = []
        with self._state:
            for reader in self._readers:
                if reader.busy:
                    continue  # still on an earlier request (wedged, or a poll cut short)
                self._take(reader, answers, rejoined)  # a late answer: use it, ask again
                reader.request()
                self._waiting.add(reader)
            # Readers asked by a poll cut short (by stop) are waited for too, each until
            # its own bound, so every answer wakes this poll to recompute it.
            earlier = [
                r for r in self._readers if r.busy and not r.wedged and r not in self._waiting
            ]
            self._waiting.update(earlier)
            self._recheck = bool(earlier)
            wait = bool(self._waiting)
        while wait:
            with self._state:
                if not self._waiting or (interruptible and self._stop.is_set()):
                    break
                asked_s = max(r.asked_s for r in self._waiting)
                until_s = min(wait_until, asked_s + self.read_timeout_s)
                self._wake.acquire(blocking=False)  # a release nobody consumed: not for us
                self._armed = True
            remaining = until_s - time.monotonic()
            if remaining <= 0:
                break
            self._wake.acquire(timeout=remaining)
        with self._state:
            self._armed = False
            interrupted = interruptible and self._stop.is_set()
            for reader in self._readers:
                self._take(reader, answers, rejoined)
            timed_out = [] if interrupted else [r for r in self._waiting if not r.wedged]
            for reader in timed_out:
                reader.wedged = True
            self._waiting.clear()
        for reader in rejoined:
            self._forget(reader.sensor.device, READ_TIMEOUT)
            log.info("greenprof: sensor %s answered again", reader.sensor.device)
        readings = self._validate(answers, now_s)
        for reader in timed_out:
            device = reader.sensor.device
            message = (
                f"sensor {device} did not answer within {self.read_timeout_s:g} s;"
                " skipped until it does"
            )
            reader.guard.record(READ_TIMEOUT, message, now_s)
        self.polls += 1
        try:
            self._consumer(readings)
        except Exception as exc:
            self._report(f"processing readings failed: {exc!r}", ("<consumer>", ""))
            log.debug("greenprof consumer failure", exc_info=True)
        return readings

    @staticmethod
    def _take(
        reader: _Reader,
        answers: list[tuple[_Reader, tuple[object, BaseException | None]]],
        rejoined: list[_Reader],
    ) -> None:
        """Collect the reader's answer, if it has one (with the state lock held)."""
        if reader.busy or reader.result is None:
            return
        answers.append((reader, reader.result))
        reader.result = None
        if reader.wedged:
            reader.wedged = False
            rejoined.append(reader)

    def _answered(self, reader: _Reader) -> None:
        """A reader has an answer (called by the reader with the state lock held)."""
        waiting = self._waiting
        if reader in waiting:
            waiting.discard(reader)
            if self._armed and (not waiting or self._recheck):
                self._armed = False
                self._wake.release()

    def _validate(
        self, answers: list[tuple[_Reader, tuple[object, BaseException | None]]], now_s: float
    ) -> list[Reading]:
        if len(answers) > 1:
            order = self._order
            answers.sort(key=lambda answer: order[answer[0]])
        readings: list[Reading] = []
        for reader, (result, error) in answers:
            device = reader.sensor.device
            if error is not None:
                reader.failing = True
                reader.guard.record(READ_ERROR, f"sensor {device} failed to read: {error!r}", now_s)
                continue
            passed = reader.guard.check(result)
            if passed:
                readings.extend(passed)
                reader.last_good_s = now_s
                if reader.failing:
                    reader.failing = False
                    self._forget(device, READ_ERROR)
            elif not reader.guard.holding:  # held back for one read is not failing
                reader.failing = True
        return readings

    # Problems ---------------------------------------------------------------------

    def _guard_problem(self, event: GuardEvent) -> None:
        if self._on_rejected is not None and event.reason not in (READ_ERROR, READ_TIMEOUT):
            time_s = event.time_s if event.time_s is not None else self._clock()
            try:
                self._on_rejected(event.device, time_s, event.reason)
            except Exception:
                log.debug("greenprof on_rejected failure", exc_info=True)
        if event.reason in (READ_ERROR, READ_TIMEOUT):
            message = event.message
        else:
            message = f"reading of {event.device} rejected or repaired ({event.reason}): " + (
                f"{event.message}; further ones are counted"
            )
        self._report(message, (event.device, event.reason))

    def _report(self, message: str, key: tuple[str, str]) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("greenprof: %s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:
                log.debug("greenprof on_error failure", exc_info=True)

    def _forget(self, device: str, reason: str) -> None:
        """The sensor recovered: report the next failure of this kind again."""
        self._reported.discard((device, reason))

    def health(self) -> dict[str, DeviceHealth]:
        """Each device's state now (device → :class:`DeviceHealth`)."""
        now_s = self._clock()
        with self._state:
            return {
                reader.sensor.device: DeviceHealth(
                    device=reader.sensor.device,
                    wedged=reader.wedged,
                    failing=reader.failing,
                    last_good_s=reader.last_good_s,
                    silent_s=None if reader.last_good_s is None else now_s - reader.last_good_s,
                    stats=reader.guard.stats(),
                )
                for reader in self._readers
            }

    # Lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Take a first reading now, then keep polling in the background."""
        self.poll()
        self._thread = threading.Thread(target=self._loop, name="greenprof-sampler", daemon=True)
        self._thread.start()

    def stop(self, *, settle_s: float = 0.0, settle_every_s: float = 0.02) -> None:
        """Stop the thread, then keep reading on the calling thread for ``settle_s``.

        Settling lets counters that update periodically (NVIDIA's ~100 ms) publish the
        energy of the last steps, so that the run's tail is measured, not extrapolated.

        Returns within ``settle_s + STOP_GRACE_S`` whatever the sensors do: the thread is
        woken from its wait for sensors at once, and every later wait for a sensor is cut
        at that bound. Only the consumer (greenprof's own code, never a sensor) can hold
        the thread longer; the final polls are never made concurrently with it, and after
        ``JOIN_TIMEOUT_S`` stop gives up on it and returns without them.
        """
        self._stop.set()
        with self._state:
            if self._armed:  # the thread waits for sensors: wake it now
                self._armed = False
                self._wake.release()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=JOIN_TIMEOUT_S)
            if thread.is_alive():  # the consumer is stuck: never poll concurrently with it
                log.warning("greenprof: the sampler thread did not stop; no final readings")
                self._close_readers()
                return
        give_up = time.monotonic() + settle_s + STOP_GRACE_S
        settle_until = time.monotonic() + settle_s
        self._poll(min(give_up, time.monotonic() + self.read_timeout_s), interruptible=False)
        while time.monotonic() < settle_until:
            time.sleep(settle_every_s)
            self._poll(min(give_up, time.monotonic() + self.read_timeout_s), interruptible=False)
        for reader in self._readers:
            reader.guard.flush()
        self._close_readers()

    def release(self) -> None:
        """End the reader threads without a final poll (a sampler never started, replaced)."""
        self._close_readers()

    def _close_readers(self) -> None:
        with self._state:
            for reader in self._readers:
                reader.exit()

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
            self._poll(time.monotonic() + self.read_timeout_s, interruptible=True)
            self._loop_cpu_s = time.thread_time() - started

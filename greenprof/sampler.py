"""The sampler: polls every sensor about every ``interval_s``, where training cannot starve it.

Sensors with a recipe (:func:`greenprof.sensors.detect.sensor_recipe`: the detected NVML
and RAPL sensors, and any made with :func:`greenprof.sensors.recipe.spawnable`) are read
in a helper process (:mod:`greenprof.sampling.helper`): a training loop that holds the
GIL, in a C call or a pure-Python loop, cannot delay their polls, and the readings keep
their own timestamps (``time.monotonic`` is one system-wide clock on Linux). The
training process's sampler thread only takes what has arrived and hands it on: no
sensor I/O there. Other sensors (users' own objects, sensors opened with stand-ins)
are read on threads of the training process (:mod:`greenprof.sampling.threads`), and
so is every sensor when the helper cannot be started, opened or kept alive; that is
said once through ``on_error``.

A shared device's :class:`~greenprof.sensors.share.ApportionedSensor` stays here: its
inner sensor is read in the helper, and each of those readings is apportioned here, by
the same object (``apportion(reading)``: its share and summary stay the run's).

Whatever the path, the readings handed on are tracked for poll gaps (:meth:`Sampler.drain_gaps`,
:class:`DeviceHealth` ``longest_gap_s`` and ``long_gaps``) and for each device's update
period, which sets how long ``stop()`` should settle (:meth:`Sampler.settle_s`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from greenprof.records import Reading
from greenprof.sampling.feed import is_apportioned
from greenprof.sampling.gaps import GapTracker, PeriodTracker, PollGap, settle_s
from greenprof.sampling.health import DeviceState, from_state
from greenprof.sampling.threads import (
    JOIN_TIMEOUT_S,
    MAX_READ_TIMEOUT_S,
    MIN_READ_TIMEOUT_S,
    STOP_GRACE_S,
    DeviceHealth,
    ReadingsConsumer,
    RejectedCallback,
    ThreadSampler,
    close_sensors,
    default_read_timeout_s,
)
from greenprof.sensors.base import Sensor, as_sensor
from greenprof.sensors.recipe import SensorRecipe

if TYPE_CHECKING:  # the helper's modules load when a sampler starts one, not at import
    from greenprof.sampling.remote import HelperNews, HelperProcess

__all__ = [
    "JOIN_TIMEOUT_S",
    "MAX_READ_TIMEOUT_S",
    "MIN_READ_TIMEOUT_S",
    "STOP_GRACE_S",
    "DeviceHealth",
    "PollGap",
    "ReadingsConsumer",
    "RejectedCallback",
    "Sampler",
    "close_sensors",
    "default_read_timeout_s",
]

log = logging.getLogger("greenprof")

RecipeFor = Callable[[Sensor], "SensorRecipe | None"]
StartHelper = Callable[..., "HelperProcess"]


def _detected_recipe(sensor: Sensor) -> SensorRecipe | None:
    from greenprof.sensors.detect import sensor_recipe

    return sensor_recipe(sensor)


class Sampler:
    """Polls ``sensors`` and hands each poll's readings to ``consumer`` (see the module
    docstring for where the polls run).

    The consumer runs on a sampler thread of this process, one call at a time; it gets
    only readings that passed the device's :class:`~greenprof.sensors.guard.ReadingGuard`,
    in time order per device (a call may hold several polls of the helper's, after this
    process could not run for a while).

    Args:
        sensors: one per device.
        interval_s: the nominal time between polls.
        consumer: gets the readings (possibly none) about every ``interval_s``.
        on_error: gets a one-line message for each problem, once per device and kind.
        on_rejected: gets ``(device, time_s, reason)`` for every rejected or repaired
            reading, before the consumer gets that poll.
        read_timeout_s: how long a poll waits for a sensor (default
            :func:`default_read_timeout_s`).
        clock: the time source for the schedule and health (``time.monotonic``).
        helper: read the sensors that have a recipe in a helper process (False: every
            sensor on threads here).
        recipe_for: a sensor's recipe, or None (default: the detection layer's).
        start_helper: starts the helper (default
            :meth:`~greenprof.sampling.remote.HelperProcess.start`).

    Example::

        sampler = Sampler([FakeSensor()], interval_s=0.1, consumer=print)
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
        helper: bool = True,
        recipe_for: RecipeFor | None = None,
        start_helper: StartHelper | None = None,
    ) -> None:
        self._sensors = tuple(as_sensor(sensor) for sensor in sensors)
        self._interval_s = interval_s
        self._consumer = consumer
        self._on_error = on_error
        self._on_rejected = on_rejected
        self._dither = dither
        self._seed = seed
        self._clock = clock
        self._use_helper = helper
        self._recipe_for = recipe_for or _detected_recipe
        self._start_helper = start_helper
        self.read_timeout_s = (
            default_read_timeout_s(interval_s) if read_timeout_s is None else read_timeout_s
        )
        self._lock = threading.RLock()
        """Serializes deliveries (the local and fallback samplers' threads) and health."""
        self._local = self._thread_sampler(self._sensors)
        self._fallbacks: list[ThreadSampler] = []
        self._helper: HelperProcess | None = None
        self._remote: dict[str, Sensor] = {}
        """Devices read in the helper → their sensor here (read here if it fails)."""
        self._apportioners: dict[str, Callable[[Reading], Reading]] = {}
        """Apportioned devices whose inner sensor the helper reads → their wrapper's
        ``apportion``."""
        self._states: dict[str, DeviceState] = {}
        self._last_good_s: dict[str, float] = {}
        self._stopping = False
        self._ready = False
        """The helper has said it is ready (or sent a poll)."""
        self._gaps = GapTracker(interval_s)
        self._periods = PeriodTracker()
        self._dead_helper_cpu_s = 0.0
        self.polls = 0
        self.helper_polls = 0

    def _thread_sampler(self, sensors: Sequence[Sensor]) -> ThreadSampler:
        return ThreadSampler(
            sensors,
            interval_s=self._interval_s,
            consumer=self._deliver,
            on_error=self._on_error,
            dither=self._dither,
            seed=self._seed,
            clock=self._clock,
            read_timeout_s=self.read_timeout_s,
            on_rejected=self._on_rejected,
        )

    # What the owner reads ------------------------------------------------------------

    @property
    def helper_pid(self) -> int | None:
        """The helper process's pid while it runs (None: every sensor is read here)."""
        helper = self._helper
        return None if helper is None else helper.pid

    @property
    def local_cpu_time_s(self) -> float:
        """CPU time of the sampler's threads in this (the training) process."""
        return self._local.cpu_time_s + sum(s.cpu_time_s for s in self._fallbacks)

    @property
    def cpu_time_s(self) -> float:
        """CPU time of the sampler's threads here and of the helper process."""
        helper = self._helper
        helper_s = self._dead_helper_cpu_s + (0.0 if helper is None else helper.cpu_s)
        return self.local_cpu_time_s + helper_s

    def drain_gaps(self) -> list[PollGap]:
        """The long gaps between valid readings found since the last call (each once)."""
        with self._lock:
            return self._gaps.drain()

    def gap_totals(self) -> tuple[int, float]:
        """The long gaps found so far, all devices together, and the longest time between
        two valid readings of any device (s). Read without the lock (a snapshot of a
        few numbers), so that ``stats()`` never waits for a poll."""
        gaps = self._gaps
        return sum(list(gaps.long_gaps.values())), max(list(gaps.longest_s.values()), default=0.0)

    def update_period_s(self, device: str) -> float | None:
        """How often ``device``'s value was seen to change (None: not measured yet)."""
        with self._lock:
            return self._periods.period_s(device)

    def settle_s(self) -> float:
        """How long ``stop()`` should keep reading after the last step: 1.2 × the longest
        update period (measured, else declared), at most 1.5 s."""
        with self._lock:
            measured = {s.device: self._periods.period_s(s.device) for s in self._sensors}
        return settle_s(measured, {s.device: s.update_period_s for s in self._sensors})

    def health(self) -> dict[str, DeviceHealth]:
        """Each device's state now (device → :class:`DeviceHealth`), in sensor order."""
        with self._lock:
            found: dict[str, DeviceHealth] = {}
            for sampler in (self._local, *self._fallbacks):
                found.update(sampler.health())
            now_s = self._clock()
            for device in self._remote:
                if device not in found:
                    found[device] = from_state(
                        device, self._states.get(device), self._last_good_s.get(device), now_s
                    )
            return {
                s.device: self._with_gaps(found[s.device])
                for s in self._sensors
                if s.device in found
            }

    def _with_gaps(self, health: DeviceHealth) -> DeviceHealth:
        gaps, device = self._gaps, health.device
        return dataclasses.replace(
            health,
            longest_gap_s=gaps.longest_s.get(device, 0.0),
            long_gaps=gaps.long_gaps.get(device, 0),
            update_period_s=self._periods.period_s(device),
        )

    # Polling -------------------------------------------------------------------------

    def poll(self) -> list[Reading]:
        """Read the sensors read here once, take what the helper sent, pass it all on."""
        return self._local.poll()

    def _deliver(self, readings: list[Reading]) -> None:
        """A poll here (``readings``), with what the helper sent since, to the consumer."""
        with self._lock:
            helper = self._helper
            if helper is not None:
                readings = [*self._absorb(helper.take()), *readings]
            now_s = self._clock()
            for reading in readings:
                if reading.device in self._remote:
                    self._last_good_s[reading.device] = now_s
            self._gaps.add(readings)
            self._periods.add(readings)
            self.polls += 1
            self._consumer(readings)

    def _absorb(self, news: HelperNews) -> list[Reading]:
        """Report the helper's problems, react to its end, and return its readings."""
        readings: list[Reading] = []
        self._ready = self._ready or news.ready is not None or bool(news.polls)
        for poll in news.polls:
            self.helper_polls += 1
            for device, time_s, reason in poll.rejected:
                self._rejected(device, time_s, reason)
            for message in poll.errors:
                self._report(message)
            readings.extend(self._apportioned(poll.readings))
        if news.states is not None:
            self._states = news.states
        if news.ready is not None and news.ready.failed:
            for device, why in news.ready.failed:
                self._report(
                    f"sensor {device} could not be opened in the sampling helper process"
                    f" ({why}); it is read on a thread of the training process"
                )
            self._fall_back([device for device, _ in news.ready.failed])
        if news.ended and not (news.done or self._stopping) and self._helper is not None:
            helper, self._helper = self._helper, None
            helper.close()  # it has exited: reap it
            self._dead_helper_cpu_s = helper.cpu_s
            code = helper.process.poll()
            self._report(
                f"the sampling helper process ended unexpectedly (exit status {code});"
                " sensors are now read on threads of the training process, where a busy"
                " training loop can delay polls"
            )
            self._fall_back(list(self._remote))
        return readings

    def _apportioned(self, readings: list[Reading]) -> list[Reading]:
        apportioners = self._apportioners
        if not apportioners:
            return readings
        out: list[Reading] = []
        for reading in readings:
            apportion = apportioners.get(reading.device)
            if apportion is None:
                out.append(reading)
                continue
            try:
                out.append(apportion(reading))
            except Exception as exc:
                self._report(f"sensor {reading.device}: apportioning a reading failed: {exc}")
        return out

    def _rejected(self, device: str, time_s: float, reason: str) -> None:
        if self._on_rejected is not None:
            try:
                self._on_rejected(device, time_s, reason)
            except Exception:
                log.debug("greenprof on_rejected failure", exc_info=True)

    def _report(self, message: str) -> None:
        log.warning("greenprof: %s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:
                log.debug("greenprof on_error failure", exc_info=True)

    # Lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the helper for the sensors with a recipe (without waiting for it), take a
        first reading of the others now, then keep polling in the background."""
        remote = self._recipes() if self._use_helper else {}
        if remote:
            try:
                start_helper = self._start_helper
                if start_helper is None:
                    from greenprof.sampling.remote import HelperProcess

                    start_helper = HelperProcess.start
                self._helper = start_helper(
                    [recipe for _, recipe in remote.values()],
                    interval_s=self._interval_s,
                    dither=self._dither,
                    seed=self._seed,
                    read_timeout_s=self.read_timeout_s,
                )
            except (OSError, ValueError) as exc:
                self._report(
                    f"the sampling helper process could not start ({exc}); sensors are read"
                    " on threads of the training process, where a busy training loop can"
                    " delay polls"
                )
                remote = {}
        if remote:
            for device, (sensor, _) in remote.items():
                self._remote[device] = sensor
                if is_apportioned(sensor):
                    self._apportioners[device] = sensor.apportion  # type: ignore[attr-defined]
            self._local.release()
            self._local = self._thread_sampler([s for s in self._sensors if s.device not in remote])
        self._local.start()

    def _recipes(self) -> dict[str, tuple[Sensor, SensorRecipe]]:
        """Device → (its sensor here, the recipe the helper reads)."""
        found: dict[str, tuple[Sensor, SensorRecipe]] = {}
        for sensor in self._sensors:
            target = sensor.inner if is_apportioned(sensor) else sensor  # type: ignore[attr-defined]
            try:
                recipe = self._recipe_for(target)
            except Exception:
                log.debug("greenprof: no recipe for %s", sensor.device, exc_info=True)
                recipe = None
            if recipe is not None and recipe.device == sensor.device:
                found[sensor.device] = (sensor, recipe)
        return found

    def _fall_back(self, devices: list[str]) -> None:
        """Read ``devices`` here from now on (their sensors here, never read so far)."""
        sensors = []
        for device in devices:
            sensor = self._remote.pop(device, None)
            if sensor is None:
                continue
            self._apportioners.pop(device, None)  # its wrapper reads the inner sensor here
            sensors.append(sensor)
        if sensors:
            fallback = self._thread_sampler(sensors)
            self._fallbacks.append(fallback)
            fallback.start()

    def stop(self, *, settle_s: float = 0.0, settle_every_s: float = 0.02) -> None:
        """Stop polling after reading for ``settle_s`` more (the last steps' energy is
        then published by counters that update periodically; see :meth:`settle_s`).

        Returns within about ``settle_s + STOP_GRACE_S`` whatever the sensors or the
        helper do (a helper that does not finish in time is killed)."""
        give_up_s = time.monotonic() + settle_s + STOP_GRACE_S
        with self._lock:
            self._take_early()
        if self._helper is not None:
            # a helper already gone: the local stop's deliveries see its end and read its
            # sensors here (their final readings are then this process's)
            self._helper.request_stop(settle_s)
        self._local.stop(settle_s=settle_s, settle_every_s=settle_every_s)
        with self._lock:
            self._stopping = True  # from here, a helper's end is only its end
            fallbacks = list(self._fallbacks)
        for fallback in fallbacks:
            fallback.stop()
        helper = self._helper
        if helper is not None:
            if not helper.done:
                news = helper.wait_done(give_up_s)
                with self._lock:
                    readings = self._absorb(news)
                if readings:
                    self._last_readings(readings)
            helper.close()
        with self._lock:
            self._apportioners.clear()

    def _take_early(self) -> None:
        """At stop, a helper still starting (not one reading yet) is not waited for: its
        sensors are read here instead (a run shorter than the helper's start)."""
        helper = self._helper
        if helper is None or self._ready:
            return
        news = helper.take()
        if news.ready is not None or news.polls:
            self._last_readings(self._absorb(news))
            return
        self._helper = None
        helper.kill()
        self._fall_back(list(self._remote))

    def _last_readings(self, readings: list[Reading]) -> None:
        with self._lock:
            self._gaps.add(readings)
            self._periods.add(readings)
            self.polls += 1
            try:
                self._consumer(readings)
            except Exception as exc:
                self._report(f"processing readings failed: {exc!r}")

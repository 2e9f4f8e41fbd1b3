"""A started run: the store's writer, the sensors, the sampler and the step ledger, together.

A :class:`Session` exists only once all of them have started (:func:`open_session`
releases whatever it opened if any part fails), so nothing in it is optional and a
failed start leaves nothing open. It does the sampler thread's work (attribution,
queueing rows for the writer) and, at :meth:`Session.close`, the run's end: each part
bounded, each attempted whatever the others did. It knows nothing of exporters or of
the process (signals, forks): the :class:`~greenprof.Profiler` façade handles those.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from greenprof.config import ProfilerConfig
from greenprof.energy import StepAttributor
from greenprof.ledger import FinishedStep, StepLedger
from greenprof.marks import StepMarks
from greenprof.observers import PROGRESS_INTERVAL_S
from greenprof.records import DeviceInfo, Reading, RunStatus
from greenprof.run_sensors import SENSOR_CLOSE_TIMEOUT_S, SensorSet
from greenprof.sampler import Sampler, close_sensors
from greenprof.stats import ProfilerStats
from greenprof.store.writer import (
    RunSpec,
    RunTotals,
    SampleRow,
    StepEnergyRow,
    StepRow,
    StoreWriter,
    open_writer,
)

log = logging.getLogger("greenprof")

STALE_DEVICE_S = 3.0
"""A device without a valid reading for this long (or 20 polls, if longer) is given up on:
its steps so far are attributed, later steps leave it out (flagged ``device_missing``)."""

OpenWriter = Callable[[ProfilerConfig], StoreWriter]


def open_store_writer(config: ProfilerConfig) -> StoreWriter:
    """The production writer: the run's store (SQLite or PostgreSQL), batching every
    ``flush_interval_s``."""
    return open_writer(config.db_path, flush_interval_s=config.flush_interval_s)


def open_session(
    config: ProfilerConfig,
    marks: StepMarks,
    sensors: Callable[[], SensorSet],
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    writer_for: OpenWriter = open_store_writer,
    on_progress: Callable[[], None] = lambda: None,
) -> Session:
    """Open the store, the sensors and the run, and start sampling; on any failure,
    release what was opened (the run, if created, is ended ``failed``) and raise.

    The store first: a database that cannot be opened must not cost the sensors
    (explicit ones belong to the caller, who may fix the path and start again)."""
    writer = writer_for(config)
    chosen: SensorSet | None = None
    sampling = False
    try:
        chosen = sensors()
        devices = tuple(sensor.info for sensor in chosen.sensors)
        attributors = Attributors(chosen.sensors, devices)
        ledger = StepLedger(
            [d.device for d in devices], origin_s=clock(), attributor=attributors.make
        )
        run_id = writer.create_run(_run_spec(config, devices, wall_clock()))
        session = Session(
            config,
            marks,
            writer=writer,
            sensors=chosen,
            devices=devices,
            ledger=ledger,
            attributors=attributors,
            run_id=run_id,
            clock=clock,
            on_progress=on_progress,
        )
        sampling = True  # from here the sensors are read: closing them is ours
        session.sampler.start()
    except BaseException:
        if chosen is not None and (chosen.owned or sampling):
            close_sensors(chosen.sensors, timeout_s=SENSOR_CLOSE_TIMEOUT_S)
        try:
            writer.close(status="failed", error="greenprof could not start")
        except Exception as exc:
            log.warning("greenprof: could not end the run that failed to start: %r", exc)
        raise
    return session


class Attributors:
    """Each device's attributor, made for the ledger with what its sensor declares: the
    counter's update period (the prior of its update lattice) and the window its power
    readings average over; kept here so that ``stats()`` can tell the lattice's state."""

    def __init__(self, sensors: Sequence[object], devices: Sequence[DeviceInfo]) -> None:
        self._periods_s = {
            info.device: getattr(sensor, "update_period_s", None)
            for sensor, info in zip(sensors, devices, strict=True)
        }
        self._windows_s = {info.device: info.power_window_s for info in devices}
        self._made: dict[str, StepAttributor] = {}

    def make(self, device: str) -> StepAttributor:
        attributor = StepAttributor(
            update_period_s=self._periods_s.get(device),
            power_window_s=self._windows_s.get(device),
        )
        self._made[device] = attributor
        return attributor

    def update_periods_s(self) -> dict[str, float | None]:
        """Each device's counter update period as detected so far (None: not yet)."""
        return {device: a.update_period_s for device, a in self._made.items()}

    def retained_steps(self) -> int:
        """Steps held in memory by the attributors (pending ones and a little history)."""
        return sum(a.retained_steps for a in self._made.values())


def _run_spec(config: ProfilerConfig, devices: Sequence[DeviceInfo], started_at: float) -> RunSpec:
    from greenprof._version import __version__

    job = config.job
    return RunSpec(
        name=config.name,
        started_at=started_at,
        interval_s=config.interval_s,
        devices=devices,
        carbon=config.carbon,
        framework=config.framework,
        tags=dict(config.tags),
        rank=job.rank,
        world_size=job.world_size,
        job_id=job.job_id,
        local_rank=job.local_rank,
        host=job.host,
        expected_steps=config.expected_steps,
        greenprof_version=__version__,
    )


class Session:
    """One started run (see the module docstring); built by :func:`open_session`."""

    def __init__(
        self,
        config: ProfilerConfig,
        marks: StepMarks,
        *,
        writer: StoreWriter,
        sensors: SensorSet,
        devices: tuple[DeviceInfo, ...],
        ledger: StepLedger,
        attributors: Attributors,
        run_id: int,
        clock: Callable[[], float],
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.devices = devices
        self.detection_notes = sensors.notes
        self.writer = writer
        self.ledger = ledger
        self._attributors = attributors
        self._marks = marks
        self._sensors = sensors.sensors
        self._clock = clock
        self._rejected: dict[str, int] = {}
        self._steps_closed = 0
        self._on_progress = on_progress
        self._next_progress_s = clock() + PROGRESS_INTERVAL_S
        self.pid = os.getpid()
        self.sampler = Sampler(
            self._sensors,
            interval_s=config.interval_s,
            consumer=self._consume,
            on_error=self.note,
            on_rejected=self._note_rejected,
            clock=clock,
        )

    # Any thread -------------------------------------------------------------------

    def note(self, message: str) -> None:
        """Record a caveat on the run."""
        self.writer.record_error(message)

    @property
    def energy_j(self) -> float:
        """Energy of all devices so far (J, up to the sampler's last reading)."""
        return sum(self.ledger.device_energy_j().values())

    def stats(self) -> ProfilerStats:
        """A snapshot of the counters (read without a lock: each is one int or float)."""
        ledger = self.ledger
        gaps, longest_gap_s = self.sampler.gap_totals()
        return ProfilerStats(
            running=True,
            run_id=self.run_id,
            queued_marks=len(self._marks),
            steps_closed=self._steps_closed,
            steps_attributed=ledger.steps,
            polls=self.sampler.polls,
            gaps=gaps,
            longest_gap_s=longest_gap_s,
            sampler_cpu_s=self.sampler.cpu_time_s,
            rejected_readings=dict(self._rejected),
            unseen_devices=ledger.unseen_devices,
            dead_devices=ledger.dead_devices,
            energy_j=self.energy_j,
            update_periods_s=self._attributors.update_periods_s(),
            retained_steps=self._attributors.retained_steps(),
            writer=self.writer.health(),
        )

    # Sampler thread ----------------------------------------------------------------

    def _consume(self, readings: list[Reading]) -> None:
        ledger, writer = self.ledger, self.writer
        now_s = self._clock()
        self._drain_marks()
        for gap in self.sampler.drain_gaps():  # before the readings that end them
            ledger.note_gap(gap.device, gap.start_s, gap.end_s)
        ledger.add_readings(readings)
        self._check_devices(now_s)
        writer.add_samples(self._sample_rows(readings))
        self._store_steps(ledger.pop_finished())
        writer.set_totals(self._totals())
        if now_s >= self._next_progress_s:
            self._next_progress_s = now_s + PROGRESS_INTERVAL_S
            self._on_progress()

    def _drain_marks(self) -> None:
        """Number the steps marked since the last poll and store their boundaries now, before
        their energy is known: a crash then loses no step the sampler has seen."""
        ledger, writer = self.ledger, self.writer
        ledger.add_marks(self._marks.drain())
        closed = ledger.pop_closed()
        if closed:
            self._steps_closed += len(closed)
            writer.add_pending_steps(closed)
        for message in ledger.warnings:
            log.warning("greenprof: %s", message)
            writer.record_error(message)
        ledger.warnings.clear()

    def _check_devices(self, now_s: float) -> None:
        """Flag rejected readings on steps and devices; give up on silent devices."""
        writer = self.writer
        for device, state in self.sampler.health().items():
            rejected = state.stats.rejected
            if rejected > self._rejected.get(device, 0):
                self._rejected[device] = rejected
                writer.update_device(device, rejected_readings=rejected)
        stale_s = max(STALE_DEVICE_S, 20 * self.config.interval_s)
        for device in self.ledger.expire(now_s, stale_s):
            message = (
                f"{device} gave no valid reading for {stale_s:.1f} s: later steps leave it out "
                "(flagged device_missing)"
            )
            log.warning("greenprof: %s", message)
            writer.update_device(device, note=f"no readings after {stale_s:.1f} s of silence")
            writer.record_error(message)

    def _note_rejected(self, device: str, time_s: float, _reason: str) -> None:
        """A reading was rejected or repaired; flag the steps around it."""
        self.ledger.note_rejected_reading(device, time_s)

    def _sample_rows(self, readings: list[Reading]) -> list[SampleRow]:
        ledger = self.ledger
        energies = ledger.device_energy_j()
        origin_s = ledger.origin_s
        return [
            (
                r.device,
                r.time_s - origin_s,
                energies.get(r.device),
                ledger.power_w(r),
                r.utilization_pct,
                r.memory_used_bytes,
                r.temperature_c,
            )
            for r in readings
        ]

    def _store_steps(self, finished: list[FinishedStep]) -> None:
        """The finished steps' rows and their per-device rows, in one pass (at stop() this
        runs once over every pending step)."""
        if not finished:
            return
        step_rows: list[StepRow] = []
        device_rows: list[StepEnergyRow] = []
        add_step, add_device = step_rows.append, device_rows.append
        for s in finished:
            step, device_energy = s.step, s.device_energy_j
            start_j: float | None
            end_j: float | None
            interior_j: float | None
            if device_energy:
                bounds = s.bounds
                start_j, end_j, interior_j = bounds.start_j, bounds.end_j, bounds.interior_j
                device_bound = s.device_uncertainty_j
                for device, energy in device_energy.items():
                    add_device((step, device, energy, device_bound.get(device)))
            else:  # no device measured it: no bound, not 0 J
                start_j = end_j = interior_j = None
            add_step(
                (step, s.epoch, s.start_s, s.end_s, s.samples, s.energy_j,
                 int(s.interpolated), s.loss, s.flags, start_j, end_j, interior_j)
            )  # fmt: skip
        self.writer.add_steps(step_rows, device_rows)

    def _totals(self) -> RunTotals:
        ledger = self.ledger
        device_energy = ledger.device_energy_j()
        return RunTotals(
            steps=ledger.steps,
            samples=ledger.samples,
            energy_j=sum(device_energy.values()),
            step_energy_j=ledger.step_energy_j,
            # wall time since the start: a rank with no sensor of its own (node-wide ones
            # are read by local rank 0) still has a duration
            duration_s=max(ledger.last_time_s, self._clock()) - ledger.origin_s,
            device_energy_j=device_energy,
            setup_s=ledger.setup_s,
            setup_energy_j=ledger.setup_energy_j,
        )

    # Start and end -----------------------------------------------------------------

    def measure_baseline(self, duration_s: float) -> None:
        """Idle power of each device over ``duration_s`` (the caller's code waits)."""
        ledger, clock, interval_s = self.ledger, self._clock, self.config.interval_s
        start_s = clock()
        time.sleep(duration_s)
        end_s = clock()
        deadline_s = time.monotonic() + max(1.0, 5 * interval_s)
        while ledger.last_time_s < end_s and time.monotonic() < deadline_s:
            time.sleep(interval_s / 4)  # let the sampler read past the window's end
        if end_s <= start_s:
            return
        for device in ledger.devices:
            energy = ledger.energy_between(device, start_s, end_s)
            self.writer.update_device(device, idle_power_w=energy / (end_s - start_s))

    def close(self, *, status: RunStatus, error: str | None) -> None:
        """Stop sampling, store what remains, close the sensors and the run. Returns within
        the settle time plus about two seconds whatever the sensors do; a database that
        cannot be written delays it by at most the writer's close timeout."""
        with _gc_paused():
            self._close(status=status, error=error)

    def _close(self, *, status: RunStatus, error: str | None) -> None:
        ledger, writer = self.ledger, self.writer
        try:
            self.sampler.stop(settle_s=self._settle_s())
            self._drain_marks()
            self._store_steps(ledger.finish())
            writer.set_totals(self._totals())
            self._note_shares()
            self._note_gaps()
            for device in ledger.unseen_devices:
                writer.update_device(device, note="no valid reading during the run")
                writer.record_error(f"{device} gave no valid reading: its energy is unknown")
        except Exception as exc:  # never let the profiler crash the program at exit
            log.warning("greenprof: could not finish the run cleanly: %r", exc)
            error = error or f"greenprof: {exc!r}"
        finally:
            for device in close_sensors(self._sensors, timeout_s=SENSOR_CLOSE_TIMEOUT_S):
                log.warning("greenprof: closing %s did not return; left behind", device)
            try:
                writer.close(status=status, error=error)
            except Exception as exc:
                log.warning(
                    "greenprof: could not write the end of run %s to %s: %r",
                    self.run_id,
                    self.config.db_path,
                    exc,
                )

    def _settle_s(self) -> float:
        """How long to keep reading after the last step, so that it is measured rather
        than extrapolated: 1.2 × the longest counter update period (measured, else
        declared), at most 1.5 s (:meth:`~greenprof.sampler.Sampler.settle_s`)."""
        return self.sampler.settle_s()

    def _note_gaps(self) -> None:
        """One note on a run whose devices went unread for long gaps: how many, the longest."""
        gaps, longest_s = self.sampler.gap_totals()
        if gaps:
            self.note(
                f"{gaps} long gap{'s' if gaps > 1 else ''} between sensor readings (longest"
                f" {longest_s:.2f} s): the steps they touch are flagged poll_gap and their"
                " energy is interpolated over the gap, with wider bounds"
            )

    def _note_shares(self) -> None:
        """Say on the run which devices were shared and what share of their total it got
        (the unapportioned totals stay on record there)."""
        from greenprof.sensors.share import summaries

        for summary in summaries(self._sensors):
            if summary.shared:
                self.note(summary.text)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the run ends: attributing and storing many pending
    steps allocates millions of objects, and each full collection then walks the whole
    heap (the training program's too). Measured with 200k pending steps: stop() spends
    half its CPU time in the collector. Reference counting still frees everything;
    the collector runs again (if it was on) as soon as the run is closed."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

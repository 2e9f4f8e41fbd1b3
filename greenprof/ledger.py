"""The step ledger: turns step marks and sensor readings into finished steps (pure).

The training thread only records marks — ``(BEGIN, t_ns)``, ``(END, t_ns, samples, loss)``,
``(EPOCH, n)`` — into a queue. On the sampler thread the ledger numbers the steps, hands
each step interval to one :class:`~greenprof.energy.StepAttributor` per device, and
releases a step once every device has attributed its energy. A step end without a
matching begin starts where the previous step ended (contiguous steps, as recorded by
hooks that stamp GPU completion times).

Each finished step carries a bound on its energy's error (``energy_uncertainty_j``, per
device in ``device_uncertainty_j``; see :mod:`greenprof.energy.uncertainty`); a sum over
steps is bounded by :func:`steps_uncertainty_j`, not by the sum of their bounds. A device
counter reset during a step flags it (``STEP_COUNTER_RESET``) and adds one warning. A long
poll gap of a device (:meth:`StepLedger.note_gap`, from the sampler's gap tracker) flags
the steps it touches (``STEP_POLL_GAP``) and widens their bounds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from greenprof.energy import NO_BOUNDS, Bounds, StepAttributor, StepEnergy, window_uncertainty_j
from greenprof.records import (
    STEP_COUNTER_RESET,
    STEP_DEVICE_MISSING,
    STEP_POLL_GAP,
    STEP_READING_REJECTED,
    Reading,
)
from greenprof.values import as_count

BEGIN: Final = 0
END: Final = 1
EPOCH: Final = 2

Mark = tuple[Any, ...]
"""``(BEGIN, t_ns)``, ``(END, t_ns, samples, loss)`` or ``(EPOCH, n)``; samples, loss and n
are as the user passed them (converted here or on the writer thread)."""
CONTIGUOUS_GAP_S = 1e-3
"""A step that begins less than this after the previous one ended continues it: the gap is
loop overhead (``with prof.step()`` stamps the end and the next begin separately; on a
loaded machine that takes a few hundred µs), charged to the next step. A shared boundary
lets the attribution reuse the previous step's end value, and it cancels in the
uncertainty of a window of steps (:func:`greenprof.energy.window_uncertainty_j`); with a
gap, both sides' bounds would add up at every step. Gaps longer than this (setup,
evaluation between epochs, a pause) stay between steps."""

POWER_WINDOW_S = 1.0
"""Power derived from an energy counter is averaged over about this long (NVIDIA's
counter moves in ~100 ms jumps, so shorter windows are noise)."""


SETUP: Final = -1
"""The setup phase (origin to the first step's start) is attributed like a step with this
number, so that it telescopes with the steps; it is reported apart, never as a step."""

LATE_MARK_S = 1.0
"""Step marks reach the ledger within this long of their stamp (a hook that stamps GPU
completion times posts them within milliseconds). With no step open, the devices are
told to expect no step boundary older than this (:meth:`StepAttributor.no_steps_before`), so
the last steps before a pause (validation, checkpointing, the end of training) are
attributed without waiting for the next step. A mark that arrives later anyway (the torch
hook sends an epoch's first step begin, stamped when its first batch was asked for, with
the step's end) is still placed exactly; only the split inside its knot interval is a
little less exact."""

EXTRAPOLATE_DEAD_S = 0.5
"""A device given up on still gets energy for steps ending this soon after its last
reading (about one poll, extrapolated at its last power); none after that."""


@dataclass(frozen=True, slots=True)
class FinishedStep:
    """A step whose energy is final. Times are seconds since the run's origin.

    ``loss`` is whatever the training code passed (a float, a numpy scalar, a 0-d
    tensor): the writer thread converts it, so no thread here waits on a GPU.
    """

    step: int
    epoch: int
    start_s: float
    end_s: float
    samples: int | None
    energy_j: float
    device_energy_j: dict[str, float]
    interpolated: bool
    loss: object
    flags: int = 0
    """``records.STEP_*`` bits: a device missing, a rejected reading nearby, a counter reset."""
    energy_uncertainty_j: float = 0.0
    """Bound on ``|energy_j - true energy|`` (all devices), meant to hold >= 95 % of the
    time: the devices' bounds summed (see :mod:`greenprof.energy.uncertainty`)."""
    device_uncertainty_j: dict[str, float] = field(default_factory=dict)
    """Each device's bound (the keys of ``device_energy_j``)."""
    bounds: Bounds = NO_BOUNDS
    """The same, in parts (start, end, interior; devices summed): what
    :func:`window_uncertainty_j` needs to bound a sum of steps."""


ClosedStep = tuple[int, int, float, float, "int | None", object]
"""``(step, epoch, start_s, end_s, samples, loss)``, seconds since the origin: a step as soon
as its end is known, before its energy is. Persisted at once (the writer's pending row, as
is), so that a crash loses no step boundary the sampler has seen."""


@dataclass(frozen=True, slots=True)
class _Interval:
    epoch: int
    start_s: float
    end_s: float
    samples: int | None
    loss: object


class StepLedger:
    """Numbers steps, attributes their energy per device, and reports running totals."""

    def __init__(
        self,
        devices: Sequence[str],
        *,
        origin_s: float,
        update_periods_s: Mapping[str, float | None] | None = None,
        power_windows_s: Mapping[str, float | None] | None = None,
        attributor: Callable[[str], StepAttributor] | None = None,
    ) -> None:
        """``update_periods_s``: each device's declared counter update period (the sensor's
        ``update_period_s``), the prior of its update lattice. ``power_windows_s``: what
        each device's power readings average over (``DeviceInfo.power_window_s``).
        ``attributor`` makes each device's attributor instead (it then ignores both)."""
        self._origin_s = origin_s
        periods_s = dict(update_periods_s or {})
        windows_s = dict(power_windows_s or {})
        make = attributor or (
            lambda d: StepAttributor(
                update_period_s=periods_s.get(d), power_window_s=windows_s.get(d)
            )
        )
        self._attributors = {device: make(device) for device in devices}
        self._live = set(self._attributors)
        self._seen: set[str] = set()  # devices that gave at least one reading
        self._waiting: dict[int, set[str]] = {}  # step -> devices yet to attribute it
        self._last_seen_s = dict.fromkeys(self._attributors, origin_s)
        self._problem_times: dict[str, deque[float]] = {d: deque() for d in devices}
        self._problems = False  # any problem times left to check
        self._gaps: dict[str, deque[tuple[float, float]]] = {d: deque() for d in devices}
        """Each device's poll gaps (in time order) not yet behind the steps finished."""
        self._any_gaps = False
        self._depth = 0
        self._closed: list[ClosedStep] = []
        self.warnings: list[str] = []
        """One message per kind of bad input from user code; the profiler logs and clears it."""
        self._warned: set[str] = set()
        self._open_start_s: float | None = None
        self._last_end_s = origin_s
        self._horizon_s = -math.inf  # what the attributors were told
        self._next_step = 0
        self._epoch = 0
        self._new_steps: list[int] = []
        self._new_starts_s: list[float] = []
        self._new_ends_s: list[float] = []
        self._intervals: dict[int, _Interval] = {}
        self._energies: dict[int, dict[str, StepEnergy]] = {}
        self._ready: deque[int] = deque()
        self._recent: dict[str, deque[tuple[float, float]]] = {d: deque() for d in devices}
        self.steps = 0
        self.setup_s = 0.0
        """Time from the origin to the first step's start (imports, data, compilation)."""
        self.setup_energy_j = 0.0
        """Energy of every device during that setup (known once attributed)."""
        self.samples: int | None = None
        self.step_energy_j = 0.0
        self.last_time_s = origin_s

    @property
    def origin_s(self) -> float:
        """The run's time origin (monotonic seconds); stored times are relative to it."""
        return self._origin_s

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._attributors)

    @property
    def epoch(self) -> int:
        return self._epoch

    def device_energy_j(self) -> dict[str, float]:
        """Each device's energy since its first reading."""
        return {device: a.total_energy_j for device, a in self._attributors.items()}

    def energy_between(self, device: str, t0_s: float, t1_s: float) -> float:
        """A device's energy between two monotonic times (recent history only)."""
        return self._attributors[device].energy_between(t0_s, t1_s)

    # Input -----------------------------------------------------------------

    def add_marks(self, marks: Iterable[Mark]) -> None:
        """Step marks in the order the training thread recorded them.

        Nested steps (a ``prof.step()`` inside another, or a hook inside a manual step)
        count once: the outermost pair is the step, inner pairs are ignored."""
        try:
            for mark in marks:
                kind = mark[0]
                if kind == BEGIN:
                    self._depth += 1
                    if self._depth == 1:
                        self._open_start_s = mark[1] / 1e9
                    else:
                        self._warn("nested", "nested steps: only the outermost step is counted")
                elif kind == END:
                    if self._depth > 1:
                        self._depth -= 1
                        continue
                    self._depth = 0
                    _, t_ns, samples, loss = mark
                    self._close_step(t_ns / 1e9, self._count(samples, "samples"), loss)
                elif kind == EPOCH:
                    epoch = self._count(mark[1], "epoch") if mark[1] != -1 else -1
                    if epoch is not None:
                        self._epoch = epoch if epoch >= 0 else self._epoch + 1
        finally:
            self._hand_over()

    def _count(self, value: object, name: str) -> int | None:
        if type(value) is int and value >= 0:  # the common case, without a call
            return value
        try:
            return as_count(value, name)
        except (TypeError, ValueError) as exc:
            self._warn(f"bad {name}", f"{exc}; recorded without it")
            return None

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(message)

    def _close_step(self, end_s: float, samples: int | None, loss: object) -> None:
        start_s = self._open_start_s if self._open_start_s is not None else self._last_end_s
        if start_s - self._last_end_s < CONTIGUOUS_GAP_S:  # also: steps never overlap
            start_s = self._last_end_s
        end_s = max(end_s, start_s)
        self._open_start_s = None
        if self._next_step == 0:
            self.setup_s = start_s - self._origin_s
            if start_s > self._origin_s and self._live:
                self._add_interval(
                    SETUP, _Interval(self._epoch, self._origin_s, start_s, None, None)
                )
        self._last_end_s = end_s
        step = self._next_step
        self._next_step += 1
        self._add_interval(step, _Interval(self._epoch, start_s, end_s, samples, loss))
        origin_s = self._origin_s
        self._closed.append(
            (step, self._epoch, start_s - origin_s, end_s - origin_s, samples, loss)
        )

    def _add_interval(self, step: int, interval: _Interval) -> None:
        self._intervals[step] = interval
        self._energies[step] = {}
        live = self._live
        if not live:
            self._ready.append(step)
            return
        self._waiting[step] = set(live)
        self._new_steps.append(step)  # handed to the attributors at the end of add_marks
        self._new_starts_s.append(interval.start_s)
        self._new_ends_s.append(interval.end_s)

    def _hand_over(self) -> None:
        """Give the steps closed by the last marks to every live device, in one call each."""
        if self._new_steps:
            steps, starts_s, ends_s = self._new_steps, self._new_starts_s, self._new_ends_s
            for device in self._live:
                self._attributors[device].add_steps(steps, starts_s, ends_s)
            self._new_steps, self._new_starts_s, self._new_ends_s = [], [], []

    def pop_closed(self) -> list[ClosedStep]:
        """Steps closed since the last call (their energy may not be known yet)."""
        closed, self._closed = self._closed, []
        return closed

    def add_readings(self, readings: Iterable[Reading]) -> None:
        """One poll's readings (devices not in the ledger, or given up on, are ignored)."""
        readings = list(readings)
        if readings and self._next_step:
            self._promise(max(r.time_s for r in readings) - LATE_MARK_S)
        for reading in readings:
            device = reading.device
            if device not in self._live:
                continue
            attributor = self._attributors[device]
            attributor.add_reading(reading)
            if reading.power_w is None:
                self._remember_energy(device, reading.time_s, attributor.total_energy_j)
            self._seen.add(device)
            self._last_seen_s[device] = reading.time_s
            self.last_time_s = max(self.last_time_s, reading.time_s)
            self._collect(device, attributor.pop_ready())

    def _promise(self, horizon_s: float) -> None:
        """No step boundary is expected before ``horizon_s`` (nor before an open step's
        start); after the first step only, so that the setup phase is added first."""
        if self._open_start_s is not None:
            horizon_s = min(horizon_s, self._open_start_s)
        if horizon_s > self._horizon_s:
            self._horizon_s = horizon_s
            for device in self._live:
                self._attributors[device].no_steps_before(horizon_s)

    def note_rejected_reading(self, device: str, time_s: float) -> None:
        """A reading of ``device`` near ``time_s`` was rejected or repaired: steps around
        it are flagged (their energy leans on a neighbouring reading)."""
        if device in self._problem_times:
            self._problem_times[device].append(time_s)
            self._problems = True

    def note_gap(self, device: str, start_s: float, end_s: float) -> None:
        """``device`` gave no valid reading between ``start_s`` and ``end_s`` (monotonic
        seconds: a long poll gap, :meth:`greenprof.sampler.Sampler.drain_gaps`). Call it
        before adding the reading that ends the gap: the steps it touches are flagged
        ``STEP_POLL_GAP`` and the device's bounds around it are wider."""
        if device not in self._attributors or end_s <= start_s:
            return
        self._gaps[device].append((start_s, end_s))
        self._any_gaps = True
        if device in self._live:
            self._attributors[device].note_gap(start_s, end_s)

    def expire(self, now_s: float, stale_after_s: float) -> list[str]:
        """Give up on devices without a reading for ``stale_after_s``; return them.

        Their steps up to :data:`EXTRAPOLATE_DEAD_S` after the last reading are attributed
        with what is known (flagged interpolated); later steps leave them out (flagged
        ``STEP_DEVICE_MISSING``), so one dead sensor never holds back the others and is
        never extrapolated over seconds it did not measure."""
        dead = [d for d in self._live if now_s - self._last_seen_s[d] > stale_after_s]
        for device in dead:
            self._live.discard(device)
            horizon_s = self._last_seen_s[device] + EXTRAPOLATE_DEAD_S
            self._collect(
                device,
                (
                    e
                    for e in self._attributors[device].finish()
                    if e.step in self._intervals and self._intervals[e.step].end_s <= horizon_s
                ),
            )
            for step, waiting in list(self._waiting.items()):
                if device in waiting:  # never handed to the attributor: nothing to wait for
                    self._mark_attributed(step, device, waiting)
        return dead

    @property
    def unseen_devices(self) -> tuple[str, ...]:
        """Devices that never gave a reading (their steps leave them out, flagged)."""
        return tuple(d for d in self._attributors if d not in self._seen)

    @property
    def dead_devices(self) -> tuple[str, ...]:
        """Devices given up on (see :meth:`expire`)."""
        return tuple(d for d in self._attributors if d not in self._live)

    def _collect(self, device: str, energies: Iterable[StepEnergy]) -> None:
        for energy in energies:
            partial = self._energies.get(energy.step)
            waiting = self._waiting.get(energy.step)
            if partial is None or waiting is None:
                continue
            if energy.counter_reset:
                self._warn_reset(device)
            partial[device] = energy
            self._mark_attributed(energy.step, device, waiting)

    def _warn_reset(self, device: str) -> None:
        self._warn(
            f"reset {device}",
            f"{device}: its energy counter was reset during the run (driver reload?);"
            " the energy lost at the reset is estimated (steps flagged counter_reset)",
        )

    def _mark_attributed(self, step: int, device: str, waiting: set[str]) -> None:
        waiting.discard(device)
        if not waiting:
            del self._waiting[step]
            self._ready.append(step)

    # Output ----------------------------------------------------------------

    def pop_finished(self) -> list[FinishedStep]:
        """Steps that every device has attributed, in step order."""
        finished = []
        while self._ready and self._ready[0] in self._intervals:
            step = self._ready.popleft()
            if step == SETUP:
                self._finish_setup()
            else:
                finished.append(self._finish(step))
        return finished

    def _finish_setup(self) -> None:
        self._intervals.pop(SETUP)
        energies = self._energies.pop(SETUP)
        self.setup_energy_j = sum(e.energy_j for d, e in energies.items() if d in self._seen)

    def finish(self) -> list[FinishedStep]:
        """End of run: attribute every remaining step with what is known (linear in the
        number of pending steps)."""
        energies, waiting = self._energies, self._waiting
        for device in sorted(self._live):
            # what _collect does, less the bookkeeping of who is still waiting: every
            # step is released below
            for energy in self._attributors[device].finish():
                partial = energies.get(energy.step)
                if partial is None or energy.step not in waiting:
                    continue
                if energy.counter_reset:
                    self._warn_reset(device)
                partial[device] = energy
        waiting.clear()
        self._ready.clear()
        finished = []
        for step in sorted(self._intervals):
            if step == SETUP:
                self._finish_setup()
            else:
                finished.append(self._finish(step))
        return finished

    def _finish(self, step: int) -> FinishedStep:
        interval = self._intervals.pop(step)
        energies = self._energies.pop(step)
        if len(self._seen) < len(energies):  # a device that never read has no energy, not 0 J
            energies = {d: e for d, e in energies.items() if d in self._seen}
        flags = STEP_DEVICE_MISSING if len(energies) < len(self._attributors) else 0
        if self._problems and self._near_problem(interval):
            flags |= STEP_READING_REJECTED
        if self._any_gaps and self._in_gap(interval):
            flags |= STEP_POLL_GAP
        if len(energies) == 1:  # one device (the common case at stop: many steps at once)
            ((device, only),) = energies.items()
            total, bounds = only.energy_j, only.bounds
            device_energy = {device: total}
            device_bound = {device: bounds.total_j}
            interpolated, reset = only.interpolated, only.counter_reset
        else:  # one pass over the devices
            device_energy, device_bound = {}, {}
            total = start_j = end_j = interior_j = 0.0
            interpolated = reset = False
            for device, e in energies.items():
                b = e.bounds
                energy_j = e.energy_j
                b_start_j, b_end_j, b_interior_j = b.start_j, b.end_j, b.interior_j
                device_energy[device] = energy_j
                device_bound[device] = b_start_j + b_end_j + b_interior_j  # b.total_j
                total += energy_j
                start_j += b_start_j
                end_j += b_end_j
                interior_j += b_interior_j
                interpolated = interpolated or e.interpolated
                reset = reset or e.counter_reset
            bounds = Bounds(start_j, end_j, interior_j)
        if reset:
            flags |= STEP_COUNTER_RESET
        self.steps += 1
        if interval.samples is not None:
            self.samples = (self.samples or 0) + interval.samples
        self.step_energy_j += total
        origin_s = self._origin_s
        return FinishedStep(
            step,
            interval.epoch,
            interval.start_s - origin_s,
            interval.end_s - origin_s,
            interval.samples,
            total,
            device_energy,
            interpolated,
            interval.loss,
            flags,
            bounds.start_j + bounds.end_j + bounds.interior_j,  # bounds.total_j
            device_bound,
            bounds,
        )

    def _near_problem(self, interval: _Interval) -> bool:
        """Whether a rejected reading fell within a poll or so of the step."""
        margin_s = POWER_WINDOW_S / 2
        near = False
        for times in self._problem_times.values():
            while times and times[0] < interval.start_s - margin_s:
                times.popleft()  # steps finish in order: older problems are done with
            if times and times[0] <= interval.end_s + margin_s:
                near = True
        self._problems = any(self._problem_times.values())
        return near

    def _in_gap(self, interval: _Interval) -> bool:
        """Whether a poll gap of any device overlaps the step (O(devices): each device's
        gaps are in time order and steps finish in order)."""
        start_s, end_s = interval.start_s, interval.end_s
        touched = popped = False
        for gaps in self._gaps.values():
            while gaps and gaps[0][1] <= start_s:
                gaps.popleft()  # ended before this step: done with
                popped = True
            if gaps and gaps[0][0] < end_s:
                touched = True
        if popped:
            self._any_gaps = any(self._gaps.values())
        return touched

    def _remember_energy(self, device: str, time_s: float, energy_j: float) -> None:
        """Keep the device's (time, total energy) over the last :data:`POWER_WINDOW_S` (and
        one point before it), for :meth:`power_w`."""
        window = self._recent[device]
        window.append((time_s, energy_j))
        while len(window) > 2 and time_s - window[1][0] >= POWER_WINDOW_S:
            window.popleft()

    def power_w(self, reading: Reading) -> float | None:
        """The reading's power, or, for the latest reading of a device without one, its
        counter's average power over the last second (None until half a second is known).

        Pure: the window is kept by :meth:`add_readings`, so asking twice gives the same
        answer and asking never changes a later one.
        """
        if reading.power_w is not None:
            return reading.power_w
        window = self._recent.get(reading.device)
        if not window or window[-1][0] != reading.time_s:
            return None  # not the device's latest reading (or never added): nothing known
        (t0, e0), (t1, e1) = window[0], window[-1]
        return (e1 - e0) / (t1 - t0) if t1 - t0 >= POWER_WINDOW_S / 2 else None


def steps_uncertainty_j(steps: Iterable[FinishedStep]) -> float:
    """Bound on the error of the summed energy of ``steps`` (in order): shared boundaries of
    contiguous steps cancel, so a long contiguous window costs its two ends, not the sum of
    its steps' bounds (see :func:`greenprof.energy.window_uncertainty_j`)."""
    return window_uncertainty_j((s.start_s, s.end_s, s.bounds) for s in steps)

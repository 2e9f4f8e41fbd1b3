"""The step ledger: turns step marks and sensor readings into finished steps (pure).

The training thread only records marks — ``(BEGIN, t_ns)``, ``(END, t_ns, samples, loss)``,
``(EPOCH, n)`` — into a queue. On the sampler thread the ledger numbers the steps, hands
each step interval to one :class:`~greenprof.energy.StepAttributor` per device, and
releases a step once every device has attributed its energy. A step end without a
matching begin starts where the previous step ended (contiguous steps, as recorded by
hooks that stamp GPU completion times).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from greenprof.energy import StepAttributor, StepEnergy
from greenprof.records import Reading

BEGIN: Final = 0
END: Final = 1
EPOCH: Final = 2

Mark = tuple[int, ...] | tuple[int, int, "int | None", "float | None"]
CONTIGUOUS_GAP_S = 10e-6
"""A step that begins less than this after the previous one ended continues it: the gap is
loop overhead (``with prof.step()`` stamps the end and the next begin separately), and a
shared boundary lets the attribution reuse the previous step's end value."""

POWER_WINDOW_S = 1.0
"""Power derived from an energy counter is averaged over about this long (NVIDIA's
counter moves in ~100 ms jumps, so shorter windows are noise)."""


@dataclass(frozen=True, slots=True)
class FinishedStep:
    """A step whose energy is final. Times are seconds since the run's origin."""

    step: int
    epoch: int
    start_s: float
    end_s: float
    samples: int | None
    energy_j: float
    device_energy_j: dict[str, float]
    interpolated: bool
    loss: float | None


@dataclass(frozen=True, slots=True)
class _Interval:
    epoch: int
    start_s: float
    end_s: float
    samples: int | None
    loss: float | None


class StepLedger:
    """Numbers steps, attributes their energy per device, and reports running totals."""

    def __init__(
        self,
        devices: Sequence[str],
        *,
        origin_s: float,
        attributor: Callable[[str], StepAttributor] = lambda _device: StepAttributor(),
    ) -> None:
        self._origin_s = origin_s
        self._attributors = {device: attributor(device) for device in devices}
        self._open_start_s: float | None = None
        self._last_end_s = origin_s
        self._next_step = 0
        self._epoch = 0
        self._intervals: dict[int, _Interval] = {}
        self._energies: dict[int, dict[str, StepEnergy]] = {}
        self._ready: deque[int] = deque()
        self._recent: dict[str, deque[tuple[float, float]]] = {d: deque() for d in devices}
        self.steps = 0
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
        """Step marks in the order the training thread recorded them."""
        for mark in marks:
            kind = mark[0]
            if kind == BEGIN:
                self._open_start_s = mark[1] / 1e9
            elif kind == END:
                _, t_ns, samples, loss = mark
                self._close_step(t_ns / 1e9, samples, loss)
            elif kind == EPOCH:
                self._epoch = mark[1] if mark[1] >= 0 else self._epoch + 1

    def _close_step(self, end_s: float, samples: int | None, loss: float | None) -> None:
        start_s = self._open_start_s if self._open_start_s is not None else self._last_end_s
        if start_s - self._last_end_s < CONTIGUOUS_GAP_S:  # also: steps never overlap
            start_s = self._last_end_s
        end_s = max(end_s, start_s)
        self._open_start_s = None
        self._last_end_s = end_s
        step = self._next_step
        self._next_step += 1
        self._intervals[step] = _Interval(self._epoch, start_s, end_s, samples, loss)
        self._energies[step] = {}
        for attributor in self._attributors.values():
            attributor.add_step(step, start_s, end_s)
        if not self._attributors:
            self._ready.append(step)

    def add_readings(self, readings: Iterable[Reading]) -> None:
        """One poll's readings (any devices not in the ledger are ignored)."""
        for reading in readings:
            attributor = self._attributors.get(reading.device)
            if attributor is None:
                continue
            attributor.add_reading(reading)
            self.last_time_s = max(self.last_time_s, reading.time_s)
            self._collect(reading.device, attributor.pop_ready())

    def _collect(self, device: str, energies: Iterable[StepEnergy]) -> None:
        for energy in energies:
            partial = self._energies.get(energy.step)
            if partial is None:
                continue
            partial[device] = energy
            if len(partial) == len(self._attributors):
                self._ready.append(energy.step)

    # Output ----------------------------------------------------------------

    def pop_finished(self) -> list[FinishedStep]:
        """Steps that every device has attributed, in step order."""
        finished = []
        while self._ready and self._ready[0] in self._intervals:
            step = self._ready.popleft()
            finished.append(self._finish(step))
        return finished

    def finish(self) -> list[FinishedStep]:
        """End of run: attribute every remaining step with what is known."""
        for device, attributor in self._attributors.items():
            self._collect(device, attributor.finish())
        for step in sorted(self._intervals):
            if step not in self._ready:
                self._ready.append(step)
        self._ready = deque(sorted(self._ready))
        return self.pop_finished()

    def _finish(self, step: int) -> FinishedStep:
        interval = self._intervals.pop(step)
        energies = self._energies.pop(step)
        device_energy = {device: e.energy_j for device, e in energies.items()}
        total = sum(device_energy.values())
        self.steps += 1
        if interval.samples is not None:
            self.samples = (self.samples or 0) + interval.samples
        self.step_energy_j += total
        return FinishedStep(
            step=step,
            epoch=interval.epoch,
            start_s=interval.start_s - self._origin_s,
            end_s=interval.end_s - self._origin_s,
            samples=interval.samples,
            energy_j=total,
            device_energy_j=device_energy,
            interpolated=any(e.interpolated for e in energies.values()),
            loss=interval.loss,
        )

    def power_w(self, reading: Reading) -> float | None:
        """The reading's power, or the counter's average power over the last second."""
        if reading.power_w is not None:
            return reading.power_w
        attributor = self._attributors.get(reading.device)
        if attributor is None:
            return None
        window = self._recent[reading.device]
        window.append((reading.time_s, attributor.total_energy_j))
        while len(window) > 2 and reading.time_s - window[1][0] >= POWER_WINDOW_S:
            window.popleft()
        (t0, e0), (t1, e1) = window[0], window[-1]
        return (e1 - e0) / (t1 - t0) if t1 - t0 >= POWER_WINDOW_S / 2 else None

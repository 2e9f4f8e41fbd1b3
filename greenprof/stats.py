"""A snapshot of a Profiler's own state, for benchmarks, monitoring and observers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from greenprof.store.writer import WriterHealth


@dataclass(frozen=True, slots=True)
class ProfilerStats:
    """What :meth:`greenprof.Profiler.stats` returns: counters read without a lock (each is
    one number, so a snapshot may straddle a poll by one step, never tear a value).

    Example::

        stats = prof.stats()
        print(stats.pending_steps, stats.polls, stats.writer and stats.writer.lost_steps)
    """

    running: bool
    run_id: int | None
    queued_marks: int
    """Step marks made on the training thread and not yet taken by the sampler thread."""
    steps_closed: int = 0
    """Steps numbered so far (their boundaries are stored, their energy may not be known)."""
    steps_attributed: int = 0
    """Steps whose energy is final."""
    polls: int = 0
    """Sensor polls taken by the sampler."""
    gaps: int = 0
    """Long poll gaps, all devices together: a device went more than two poll intervals
    without a valid reading (the sampler's gap tracker,
    :class:`~greenprof.sampling.gaps.GapTracker`; the steps they touch are flagged
    ``poll_gap``)."""
    longest_gap_s: float = 0.0
    """The longest time between two valid readings of any device (s)."""
    sampler_cpu_s: float = 0.0
    """CPU time of the sampler and sensor-reader threads (``time.thread_time``)."""
    rejected_readings: Mapping[str, int] = field(default_factory=dict)
    """Readings refused or repaired per device (NaN, a counter running backwards, ...)."""
    unseen_devices: tuple[str, ...] = ()
    dead_devices: tuple[str, ...] = ()
    """Devices given up on after a silence (later steps leave them out, flagged)."""
    energy_j: float = 0.0
    update_periods_s: Mapping[str, float | None] = field(default_factory=dict)
    """Each device's counter update period as the attribution has detected it so far
    (None: not yet, or a power-only device): the state of its update lattice."""
    retained_steps: int = 0
    """Steps the attribution holds in memory (pending ones and a few seconds before)."""
    writer: WriterHealth | None = None
    """The store writer's health (None when not running)."""

    @property
    def pending_steps(self) -> int:
        """Steps marked whose energy is not final yet (queued marks count as steps)."""
        return max(0, self.steps_closed - self.steps_attributed) + self.queued_marks

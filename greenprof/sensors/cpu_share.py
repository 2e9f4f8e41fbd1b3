"""This run's share of a node-wide device (CPU package, DRAM, the CPU model): its CPU time.

The rule, for node-wide sensors (:class:`CpuTimeShare`): this run's share of an
interval's node energy is the CPU time its processes used divided by the CPU time the
whole node was busy, ``Δown / Δbusy``, clipped to [0, 1]. It is applied always, not only
when another run is seen: the shares of all processes on a node then sum to 1 (nothing
is counted twice, nothing dropped), and a run alone on a quiet node keeps a share near 1.
The idle part of the node's power is split the same way, in proportion to CPU time —
any rule that gives idle power to each run whole counts it once per run. The price is a
run that barely uses its CPU (a GPU-bound job blocking on the GPU): its share follows
whatever else runs on the node, and is then small and noisy; it is labelled an estimate,
and the node total is kept beside it.

- "This run's processes": this process and its live descendants (DataLoader workers),
  user + system CPU time, plus the CPU time of descendants it has already reaped (so a
  short-lived subprocess still counts). In a multi-process job (``LOCAL_RANK`` and
  friends, see :mod:`greenprof.jobs`), local rank 0 measures the node for the whole job,
  so the job's other local ranks — sibling processes with the same job id — and their
  descendants count as well.
- "Busy": ``psutil.cpu_times()`` minus idle, iowait and steal (time the hypervisor gave
  to other guests is no process's work here).
- The process list is refreshed at most once per ``period_s`` (1 s): listing descendants
  scans every process of the node (about 2 ms for 70 processes here), too slow for every
  10 Hz read. Reads in between use the latest share. An interval with almost no busy
  time (< ``min_busy_s``) keeps the previous share and grows until it has some. Until the
  first share is measured (the first read with some busy time, not a whole period: on a
  busy node a whole second at 1.0 was a third of a quiet run's energy here) it is 1.0.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 1.0
"""Shortest interval a share is measured over (and how often processes are listed)."""
MIN_BUSY_S = 0.02
"""Node busy CPU seconds an interval needs for a share (2 ticks of Linux's 100 Hz clock)."""


# ---------------------------------------------------------------------- pure estimator


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """One snapshot of CPU seconds, both cumulative since boot."""

    own_s: float
    """User + system CPU seconds of this run's processes (see the module docstring)."""
    busy_s: float
    """Busy CPU seconds of the whole node (all cores)."""


class ShareEstimator:
    """``Δown / Δbusy`` between snapshots, clipped to [0, 1] (pure, no I/O).

    An interval whose busy time is below ``min_busy_s`` keeps the previous share and
    stays open (the next snapshot is measured from the same baseline), so a quiet node
    never gives a share from a few clock ticks. An interval where this run's CPU time went
    down (a descendant left the tree without being reaped by it) is skipped.

    Example::

        estimator = ShareEstimator()
        estimator.update(CpuTimes(own_s=0.0, busy_s=0.0))  # baseline: 1.0
        estimator.update(CpuTimes(own_s=3.0, busy_s=4.0))  # 0.75
    """

    def __init__(self, *, initial: float = 1.0, min_busy_s: float = MIN_BUSY_S) -> None:
        self.share = initial
        self.min_busy_s = min_busy_s
        self.measured = False
        """True once a share was measured (before, ``share`` is the initial value)."""
        self._base: CpuTimes | None = None

    def update(self, now: CpuTimes) -> float:
        """The share after snapshot ``now``."""
        base = self._base
        if base is None:
            self._base = now
            return self.share
        busy_s = now.busy_s - base.busy_s
        own_s = now.own_s - base.own_s
        if busy_s < 0.0 or own_s < 0.0:  # counters went back: start a new interval
            self._base = now
            return self.share
        if busy_s < self.min_busy_s:
            return self.share
        self.share = min(max(own_s / busy_s, 0.0), 1.0)
        self.measured = True
        self._base = now
        return self.share


# ---------------------------------------------------------------------- the CPU world


@dataclass(frozen=True, slots=True)
class CpuWorld:
    """Where CPU times come from: psutil in production (:func:`psutil_world`), scripted in
    tests. ``process`` offers psutil.Process's ``cpu_times()``, ``children(recursive=)``,
    ``parent()`` and ``environ()``."""

    process: Any
    """This process."""
    node_cpu_times: Callable[[], Any]
    """``psutil.cpu_times()``: the node's times, all cores summed."""
    errors: tuple[type[BaseException], ...]
    """What a process that vanished or cannot be read raises (``psutil.Error``)."""
    job_id: str | None = None
    """This process's job (see :mod:`greenprof.jobs`): sibling processes of the same job
    are counted as this run's, because local rank 0 measures the node for the job."""
    job_of: Callable[[Mapping[str, str]], str | None] | None = None
    """The job id of a process environment (default: :func:`greenprof.jobs.detect_job`)."""


def job_id_of(env: Mapping[str, str]) -> str | None:
    """The job id in a process environment, when it is one local rank of a job."""
    from greenprof.jobs import detect_job
    from greenprof.sensors.detect import local_rank

    if local_rank(env) is None:
        return None
    try:
        return detect_job(env, host="").job_id
    except Exception:  # a malformed rank variable: not a job we can recognise
        return None


def psutil_world(env: Mapping[str, str] = os.environ) -> CpuWorld:
    """The real world: this process, ``psutil.cpu_times`` and the job from ``env``."""
    import psutil

    return CpuWorld(
        process=psutil.Process(),
        node_cpu_times=psutil.cpu_times,
        errors=(psutil.Error,),
        job_id=job_id_of(env),
    )


def node_busy_s(times: Any) -> float:
    """Busy CPU seconds in ``psutil.cpu_times()`` output: total minus idle, iowait, steal.

    Guest time is already inside user and nice on Linux, so it is not added twice.
    """
    total = float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = float(times.idle) + getattr(times, "iowait", 0.0) + getattr(times, "steal", 0.0)
    return total - idle


def process_cpu_s(process: Any, errors: tuple[type[BaseException], ...]) -> float:
    """User + system seconds of ``process`` and of the children it has reaped (0 if gone)."""
    try:
        t = process.cpu_times()
    except errors:
        return 0.0
    return float(
        t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    )


def _descendants(process: Any, errors: tuple[type[BaseException], ...]) -> list[Any]:
    try:
        return list(process.children(recursive=True))
    except errors:
        return []


class RunProcesses:
    """This run's processes: this one, its descendants and, in a job, the job's other
    local ranks (siblings whose environment names the same job) with theirs.

    A sibling's job is looked up once (its environment does not change); a sibling that
    cannot be read is not counted.
    """

    def __init__(self, world: CpuWorld) -> None:
        self.world = world
        self._job_of = world.job_of or job_id_of
        self._sibling_is_rank: dict[Any, bool] = {}

    def _is_rank(self, sibling: Any) -> bool:
        known = self._sibling_is_rank.get(sibling)
        if known is None:
            try:
                known = self._job_of(sibling.environ()) == self.world.job_id
            except self.world.errors:
                known = False
            self._sibling_is_rank[sibling] = known
        return known

    def roots(self) -> list[Any]:
        """This process, then the job's other local ranks."""
        world = self.world
        roots = [world.process]
        if world.job_id is None:
            return roots
        try:
            parent = world.process.parent()
            siblings = [] if parent is None else list(parent.children(recursive=False))
        except world.errors:
            return roots
        roots.extend(s for s in siblings if s != world.process and self._is_rank(s))
        return roots

    def cpu_s(self) -> float:
        """CPU seconds of all of them, cumulative (see :func:`process_cpu_s`)."""
        errors = self.world.errors
        total = 0.0
        for root in self.roots():
            for process in (root, *_descendants(root, errors)):
                total += process_cpu_s(process, errors)
        return total

    def pids(self) -> set[int]:
        """Their process ids."""
        errors = self.world.errors
        return {int(p.pid) for root in self.roots() for p in (root, *_descendants(root, errors))}


class CpuTimeShare:
    """This run's share of the node's CPU energy: its CPU time over the node's busy time.

    Thread-safe: one source serves every node-wide sensor of a run (CPU packages and DRAM
    read on different threads), so processes are listed once per period, not per sensor.
    """

    method = "CPU-time share"

    def __init__(
        self,
        world: CpuWorld | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        period_s: float = DEFAULT_PERIOD_S,
        min_busy_s: float = MIN_BUSY_S,
    ) -> None:
        self.world = world if world is not None else psutil_world()
        self.processes = RunProcesses(self.world)
        self.estimator = ShareEstimator(min_busy_s=min_busy_s)
        self.period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_s: float | None = None
        self._failed = False
        self.snapshot()  # the baseline: the first share covers the time from here
        self._last_s = clock()

    @property
    def note(self) -> str:
        job = " and its job's other local ranks" if self.world.job_id is not None else ""
        return (
            "apportioned by CPU-time share: an estimate (other processes share this node);"
            f" this run's CPU time (this process, its children{job}) over the node's busy"
            " CPU time, refreshed every"
            f" {self.period_s:g} s"
        )

    def snapshot(self) -> CpuTimes:
        """Read both clocks now and feed the estimator."""
        times = CpuTimes(
            own_s=self.processes.cpu_s(), busy_s=node_busy_s(self.world.node_cpu_times())
        )
        self.estimator.update(times)
        return times

    def share(self) -> float:
        """The latest share, refreshed when ``period_s`` has passed (at every call until a
        first share is measured); never raises."""
        with self._lock:
            now_s = self._clock()
            due = self._last_s is None or now_s - self._last_s >= self.period_s
            if due or not (self.estimator.measured or self._failed):
                self._last_s = now_s
                try:
                    self.snapshot()
                except Exception as exc:  # psutil broken mid-run: keep the last share
                    if not self._failed:
                        logger.warning("greenprof: CPU times unreadable (%s); share kept", exc)
                        self._failed = True
            return self.estimator.share

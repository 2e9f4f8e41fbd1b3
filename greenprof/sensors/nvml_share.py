"""A GPU shared by several compute processes: this run's share, from NVML's process lists.

The processes come from ``nvmlDeviceGetComputeRunningProcesses``; this run's part is the
share of the SM utilization NVML samples per process (``nvmlDeviceGetProcessUtilization``),
else an equal split by process count. :func:`greenprof.sensors.share.apportion` applies it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from greenprof.sensors.nvml_api import NvmlApi, NvmlHandle, is_unsupported

logger = logging.getLogger(__name__)

# How often a GPU's compute processes and their utilization are listed for its share.
DEFAULT_SHARE_PERIOD_S = 1.0


def _run_pids() -> Callable[[], Collection[int]]:
    from greenprof.sensors.cpu_share import RunProcesses, psutil_world

    return RunProcesses(psutil_world()).pids


SM_SHARE = "SM-utilization share"
EQUAL_SPLIT = "equal split by process count"


class GpuProcessShare:
    """This run's share of one GPU that several compute processes use.

    Every ``period_s`` the GPU's compute processes are listed. Alone on it (or it idle)
    the share is 1: a single process is unchanged. So it is too when this run is not in
    the list — it has no CUDA context yet, or a container's PID namespace hides its host
    PID (NVML reports host PIDs) — and the note says so. With others on it, the share is
    this run's sum of per-process SM utilization samples since the last listing over all
    processes' (``nvmlDeviceGetProcessUtilization``); where that is unsupported, has no
    samples or sums to 0, an equal split by process count. Both are labelled estimates;
    ``method`` names the ones used. Never raises from :meth:`share`.
    """

    def __init__(
        self,
        pynvml: NvmlApi,
        handle: NvmlHandle,
        *,
        own_pids: Callable[[], Collection[int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        period_s: float = DEFAULT_SHARE_PERIOD_S,
    ) -> None:
        self._nvml = pynvml
        self._handle = handle
        self._own_pids = own_pids
        self._clock = clock
        self.period_s = period_s
        self.value = 1.0
        self.methods: list[str] = []
        """The methods used while the GPU was shared, in order of first use."""
        self.most_others = 0
        """The most other compute processes seen on the GPU with this run."""
        self.most_unlisted = 0
        """The most compute processes seen while this run was not among them."""
        self._last_seen_us = 0
        self._utilization = True
        self._listing = True
        self._last_s: float | None = None
        self.share()  # a GPU already shared when the run starts is labelled from the start

    @property
    def method(self) -> str:
        return " and ".join(self.methods) if self.methods else SM_SHARE

    @property
    def note(self) -> str:
        if self.most_others:
            return (
                f"shared GPU (up to {self.most_others} other compute process(es)): apportioned"
                f" by {self.method}, an estimate"
            )
        if self.most_unlisted:
            return (
                f"{self.most_unlisted} other compute process(es) on this GPU while this run"
                " was not among them (no CUDA context yet, or a container PID namespace):"
                " not apportioned then"
            )
        return ""

    def share(self) -> float:
        """The latest share, refreshed every ``period_s``."""
        now_s = self._clock()
        if self._listing and (self._last_s is None or now_s - self._last_s >= self.period_s):
            self._last_s = now_s
            try:
                self.value = self._refresh()
            except Exception as exc:  # NVML errors and broken psutil alike: keep the share
                if is_unsupported(exc):
                    self._listing = False
                    self.value = 1.0
                logger.debug("GPU process listing failed: %s", exc)
        return self.value

    def _refresh(self) -> float:
        nvml = self._nvml
        pids = {int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)}
        if len(pids) < 2:
            return 1.0
        if self._own_pids is None:
            self._own_pids = _run_pids()
        own = pids & set(self._own_pids())
        if not own:
            self.most_unlisted = max(self.most_unlisted, len(pids))
            return 1.0
        self.most_others = max(self.most_others, len(pids - own))
        share = self._sm_share(own)
        method = SM_SHARE
        if share is None:
            share, method = len(own) / len(pids), EQUAL_SPLIT
        if method not in self.methods:
            self.methods.append(method)
        return share

    def _sm_share(self, own: set[int]) -> float | None:
        """Own SM utilization over all processes' since the last call, or None."""
        if not self._utilization:
            return None
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_seen_us)
        except self._nvml.NVMLError as exc:  # NOT_FOUND: no sample since the last call
            if is_unsupported(exc):
                self._utilization = False
            return None
        total = mine = 0.0
        newest = self._last_seen_us
        for sample in samples:
            stamp_us = int(sample.timeStamp)
            if stamp_us <= self._last_seen_us:
                continue
            newest = max(newest, stamp_us)
            total += float(sample.smUtil)
            if int(sample.pid) in own:
                mine += float(sample.smUtil)
        self._last_seen_us = newest
        return mine / total if total > 0.0 else None

"""CPU power estimated from system CPU load × TDP, where RAPL cannot be read (method ``model``).

The load curve and the fallback constants are CodeCarbon's (v3.3,
``codecarbon/external/hardware.py`` ``CPU._get_power_from_cpu_load`` and
``codecarbon/core/cpu.py``), so a greenprof estimate matches what CodeCarbon
reports on the same machine. The TDP table is CodeCarbon's shipped
``data/hardware/cpu_power.csv``, read as a file: importing ``codecarbon`` pulls
pandas and initializes NVML, so it is never imported here.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, Reading

CPUINFO_PATH = Path("/proc/cpuinfo")

# CodeCarbon core/cpu.py DEFAULT_POWER_PER_CORE: W per logical CPU for a CPU not in its table.
DEFAULT_POWER_PER_THREAD_W = 4.0
# CodeCarbon external/hardware.py cpu_load mode: P = TDP × (0.1 + 0.9 × load³), load in 0..1.
IDLE_FRACTION = 0.1


def cpu_load_factor(load_pct: float) -> float:
    """Fraction of TDP drawn at ``load_pct`` % system CPU load (CodeCarbon's cubic curve)."""
    load = min(max(load_pct, 0.0), 100.0) / 100.0
    return IDLE_FRACTION + (1.0 - IDLE_FRACTION) * load**3


@dataclass(frozen=True, slots=True)
class CpuTdp:
    """The TDP used by the model and where it came from."""

    tdp_w: float
    source: str
    """E.g. "CodeCarbon cpu_power.csv: AMD EPYC 7763 (280 W) × 1 socket"."""
    matched_name: str | None = None
    """The table row used, or None when the default per-thread power was used."""


def read_cpuinfo(path: Path = CPUINFO_PATH) -> str:
    """The text of ``/proc/cpuinfo`` (empty when it cannot be read, e.g. not Linux)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_model_name(cpuinfo: str) -> str | None:
    """First ``model name`` in ``/proc/cpuinfo`` text, e.g. "AMD EPYC 7763 64-Core Processor"."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def socket_count(cpuinfo: str) -> int:
    """Distinct ``physical id`` values in ``/proc/cpuinfo`` text (1 when absent)."""
    ids = {
        value.strip()
        for key, sep, value in (line.partition(":") for line in cpuinfo.splitlines())
        if sep and key.strip() == "physical id"
    }
    return max(len(ids), 1)


def codecarbon_cpu_power_csv() -> Path | None:
    """Path of CodeCarbon's ``cpu_power.csv``, located without importing codecarbon."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "hardware" / "cpu_power.csv"
        if path.is_file():
            return path
    return None


def load_tdp_table(path: Path) -> dict[str, float]:
    """``{CPU name: TDP W}`` from a CSV with ``Name`` and ``TDP`` columns (CodeCarbon's format)."""
    table: dict[str, float] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                table.setdefault(row["Name"].strip(), float(row["TDP"]))
            except (KeyError, ValueError, AttributeError):
                continue
    return table


_TRADEMARKS_RE = re.compile(r"\((?:r|tm)\)|®|™")
_NOISE_RE = re.compile(r"\b(?:cpu|processor|\d+-core)\b")


def normalize_cpu_name(name: str) -> str:
    """Lower-case CPU name without trademarks, clock speed and filler words.

    "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz" → "intel xeon gold 6248";
    "AMD EPYC 7763 64-Core Processor" → "amd epyc 7763". CodeCarbon strips the
    same parts before matching (``core/cpu.py`` ``TDP._get_matching_cpu``).
    """
    text = _TRADEMARKS_RE.sub(" ", name.lower()).split("@", 1)[0]
    return " ".join(_NOISE_RE.sub(" ", text).split())


def match_cpu(name: str, table: Mapping[str, float]) -> tuple[str | None, int]:
    """The table row for CPU ``name`` and how many rows were candidates.

    In order: the same normalized name; else the most specific rows whose words
    all appear in ``name`` (the table omits a suffix); else the rows containing
    all of ``name``'s words (``name`` is vague), when exactly one does. Ties with
    different TDPs are ambiguous and return None, as CodeCarbon's non-greedy
    match does.
    """
    wanted = normalize_cpu_name(name)
    words = set(wanted.split())
    if not words:
        return None, 0
    rows = [(row, normalize_cpu_name(row)) for row in table]
    for row, norm in rows:
        if norm == wanted:
            return row, 1
    subsets = [(row, len(norm.split())) for row, norm in rows if set(norm.split()) <= words]
    if subsets:
        best = max(n for _, n in subsets)
        top = [row for row, n in subsets if n == best]
        if len({table[row] for row in top}) == 1:
            return top[0], len(top)
        return None, len(top)
    supersets = [row for row, norm in rows if words <= set(norm.split())]
    if len(supersets) == 1:
        return supersets[0], 1
    return None, len(supersets)


def lookup_tdp(
    name: str | None, *, threads: int, sockets: int = 1, table: Mapping[str, float] | None
) -> CpuTdp:
    """The TDP for CPU ``name``: the table's TDP × sockets, else 4 W per logical CPU.

    The fallback is CodeCarbon's for an unknown CPU (``DEFAULT_POWER_PER_CORE`` ×
    ``psutil.cpu_count()``); on a VM it also scales with the vCPUs the guest has
    rather than with the host's whole chip.
    """
    default_w = DEFAULT_POWER_PER_THREAD_W * max(threads, 1)
    default = f"default {DEFAULT_POWER_PER_THREAD_W:g} W × {threads} logical CPUs"
    if table is None:
        return CpuTdp(default_w, f"{default}: CodeCarbon's cpu_power.csv not found")
    if not name:
        return CpuTdp(default_w, f"{default}: CPU model name unknown")
    row, candidates = match_cpu(name, table)
    if row is None:
        why = f"ambiguous, {candidates} candidates" if candidates > 1 else "no match"
        return CpuTdp(default_w, f"{default}: {name!r} not in CodeCarbon's cpu_power.csv ({why})")
    per_socket_w = table[row]
    plural = "socket" if sockets == 1 else "sockets"
    return CpuTdp(
        per_socket_w * sockets,
        f"CodeCarbon cpu_power.csv: {row} ({per_socket_w:g} W) × {sockets} {plural}",
        row,
    )


def _total_time(times: Any) -> float:
    # CodeCarbon SystemCPULoadMeter: guest time is already counted in user and nice on Linux.
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _busy_time(times: Any) -> float:
    return _total_time(times) - float(times.idle) - getattr(times, "iowait", 0.0)


class CpuModelSensor:
    """Estimated node CPU power: TDP × (0.1 + 0.9 × load³), labelled ``model``.

    ``load`` is the system-wide CPU utilization since the previous read, from
    ``psutil.cpu_times()`` deltas with this sensor's own baseline (as CodeCarbon
    v3's ``SystemCPULoadMeter``): ``psutil.cpu_percent(interval=None)`` keeps one
    baseline per process, so any other caller would shorten our interval.
    ``Reading.energy_j`` is None; the attribution engine integrates the power.
    """

    def __init__(
        self,
        tdp: CpuTdp,
        cpu_name: str,
        *,
        psutil_module: Any = None,
        device: str = "cpu:0",
        reason: str = "no RAPL access",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if psutil_module is None:
            import psutil as psutil_module
        self.device = device
        self.update_period_s: float | None = None
        self.energy_wrap_j: float | None = None
        self.tdp = tdp
        self._psutil = psutil_module
        self._clock = clock
        self._last_times = psutil_module.cpu_times()
        self._last_load_pct = 0.0
        self._closed = False
        self.info = DeviceInfo(
            device=device,
            kind="cpu",
            method="model",
            name=f"{cpu_name} (estimated: load × TDP)",
            node_wide=True,
            note=(
                f"{reason}: CPU power modelled from utilization × TDP {tdp.tdp_w:g} W"
                f" ({tdp.source}); CodeCarbon's curve P = TDP × (0.1 + 0.9 × load³)"
            ),
        )

    def _load_pct(self) -> float:
        times = self._psutil.cpu_times()
        previous, self._last_times = self._last_times, times
        total = _total_time(times) - _total_time(previous)
        if total > 0:
            busy = _busy_time(times) - _busy_time(previous)
            self._last_load_pct = min(max(busy / total * 100.0, 0.0), 100.0)
        return self._last_load_pct

    def read(self) -> Reading:
        """Estimated power in W for the interval since the previous read."""
        if self._closed:
            raise SensorError(f"sensor {self.device} is closed")
        now = self._clock()
        load_pct = self._load_pct()
        return Reading(
            device=self.device,
            time_s=now,
            energy_j=None,
            power_w=self.tdp.tdp_w * cpu_load_factor(load_pct),
            utilization_pct=load_pct,
        )

    def close(self) -> None:
        """Nothing to release; further reads raise."""
        self._closed = True


def open_cpu_model_sensor(
    *,
    cpuinfo_path: Path = CPUINFO_PATH,
    cpu_power_csv: Path | None = None,
    psutil_module: Any = None,
    reason: str = "no RAPL access",
    clock: Callable[[], float] = time.monotonic,
) -> CpuModelSensor:
    """A :class:`CpuModelSensor` for this node, its TDP looked up from the CPU model name.

    ``cpu_power_csv`` defaults to CodeCarbon's shipped table; ``reason`` starts
    the sensor's note (why a model is used instead of a measurement).
    """
    if psutil_module is None:
        import psutil as psutil_module
    cpuinfo = read_cpuinfo(cpuinfo_path)
    name = cpu_model_name(cpuinfo)
    csv_path = cpu_power_csv or codecarbon_cpu_power_csv()
    try:
        table = load_tdp_table(csv_path) if csv_path is not None else None
    except OSError:
        table = None
    threads = int(psutil_module.cpu_count(logical=True) or 1)
    tdp = lookup_tdp(name, threads=threads, sockets=socket_count(cpuinfo), table=table)
    return CpuModelSensor(
        tdp, name or "unknown CPU", psutil_module=psutil_module, reason=reason, clock=clock
    )

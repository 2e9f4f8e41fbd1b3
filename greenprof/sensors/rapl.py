"""CPU package and DRAM energy from Linux powercap (Intel RAPL; AMD Zen since kernel 5.8).

Each zone directory under ``/sys/class/powercap`` holds ``name`` (``package-N``,
``core``, ``uncore``, ``dram``, ``psys``), ``energy_uj`` (cumulative µJ) and
``max_energy_range_uj`` (the value after which ``energy_uj`` wraps to 0). Only
``package-N`` zones and their ``dram`` subzones are used: ``core`` and ``uncore``
are inside the package and ``psys`` covers the package too, so adding them would
double count (kernel ABI ``Documentation/ABI/testing/sysfs-class-powercap``;
CodeCarbon ``docs/explanation/rapl.md``). AMD CPUs expose the same
``intel-rapl`` tree.

``energy_uj`` is root-only since Linux 5.10 because of CVE-2020-8694 (PLATYPUS):
opening it as another user raises :class:`RaplPermissionError`, whose ``hint``
says how to grant read access.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, DeviceKind, Reading
from greenprof.sensors.recipe import SensorRecipe

POWERCAP_ROOT = Path("/sys/class/powercap")

ReadText = Callable[[Path], str]
"""Reads a sysfs file as text; injectable so tests can simulate denied access."""

_ZONE_RE = re.compile(r"^intel-rapl(-mmio)?:(\d+)$")
_SUBZONE_RE = re.compile(r"^intel-rapl(-mmio)?:(\d+):(\d+)$")
_PACKAGE_RE = re.compile(r"^package-(\d+)$")

# RAPL MSRs update about every 1 ms (kernel amd_energy doc; Intel SDM time unit 976 µs).
_RAPL_UPDATE_PERIOD_S = 0.001


class RaplUnavailable(SensorError):
    """No usable RAPL zone: no powercap tree (VM, container, not Linux) or no package zone."""


class RaplPermissionError(SensorError):
    """RAPL exists but ``energy_uj`` is not readable by this user (root-only since Linux 5.10)."""

    def __init__(self, paths: list[Path], root: Path) -> None:
        self.paths = paths
        self.hint = grant_access_hint(root)
        shown = ", ".join(str(p) for p in paths[:2]) + (" …" if len(paths) > 2 else "")
        super().__init__(f"permission denied reading {shown}; {self.hint}")


def grant_access_hint(root: Path = POWERCAP_ROOT) -> str:
    """One line telling an administrator how to let non-root users read RAPL."""
    return (
        f"to grant access: sudo chmod o+r {root}/intel-rapl:*/energy_uj"
        f" {root}/intel-rapl:*:*/energy_uj (until reboot; make it permanent with a udev"
        " or sysfsutils rule); RAPL is root-only because of CVE-2020-8694"
    )


def unwrap_uj(prev_uj: int, cur_uj: int, max_range_uj: int) -> int:
    """Microjoules consumed between two reads of a counter that wraps to 0 after ``max_range_uj``.

    Assumes at most one wrap between the reads: a wrap takes minutes (about 9 min
    at 240 W, kernel amd_energy doc), so any sampler polling faster than that is
    safe. Adding ``max_range_uj`` once per wrap is what CodeCarbon does
    (``core/rapl.py``); it undercounts by one energy unit (~15 µJ) per wrap,
    because the kernel reports ``max_energy_range_uj`` as (2^32 - 1) units.
    Without a usable range (≤ 0, or below the previous value) a decrease is taken
    as a restart from 0.
    """
    if cur_uj >= prev_uj:
        return cur_uj - prev_uj
    if max_range_uj <= 0 or prev_uj > max_range_uj:
        return cur_uj
    return cur_uj + max_range_uj - prev_uj


def _read_text(path: Path) -> str:
    return path.read_text(encoding="ascii")


def _read_int(read_text: ReadText, path: Path) -> int:
    return int(read_text(path).strip())


class RaplSensor:
    """One RAPL zone (a CPU package or its DRAM) as a cumulative energy counter.

    ``Reading.energy_j`` is the energy since the sensor opened, unwrapped, so it
    only increases. Reading it makes one sysfs read.
    """

    def __init__(
        self,
        zone_dir: Path,
        device: str,
        name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_text: ReadText = _read_text,
    ) -> None:
        self.device = device
        self.update_period_s: float | None = _RAPL_UPDATE_PERIOD_S
        self.energy_wrap_j: float | None = None
        """None: the 32-bit counter's wrap is undone here, from ``max_energy_range_uj``."""
        self._clock = clock
        self._read_text = read_text
        self._zone_dir = zone_dir
        self._name = name
        self._energy_path = zone_dir / "energy_uj"
        try:
            self._max_range_uj = _read_int(read_text, zone_dir / "max_energy_range_uj")
        except (OSError, ValueError):
            self._max_range_uj = 0
        self._last_uj = _read_int(read_text, self._energy_path)
        self._total_uj = 0
        self._closed = False
        kind: DeviceKind = "dram" if device.startswith("dram:") else "cpu"
        note = (
            "RAPL DRAM domain: memory modules attached to this package"
            if kind == "dram"
            else "RAPL package domain: cores, caches and uncore; not DRAM, disks, fans or PSU"
        )
        self.info = DeviceInfo(
            device=device, kind=kind, method="counter", name=name, node_wide=True, note=note
        )

    def read(self) -> Reading:
        """Energy since open in J (a ``counter`` reading; no power)."""
        if self._closed:
            raise SensorError(f"sensor {self.device} is closed")
        now = self._clock()
        try:
            cur_uj = _read_int(self._read_text, self._energy_path)
        except (OSError, ValueError) as exc:
            raise SensorError(f"{self.device}: cannot read {self._energy_path}: {exc}") from exc
        self._total_uj += unwrap_uj(self._last_uj, cur_uj, self._max_range_uj)
        self._last_uj = cur_uj
        return Reading(device=self.device, time_s=now, energy_j=self._total_uj / 1e6, power_w=None)

    def recipe(self) -> SensorRecipe | None:
        """How the sampler's helper process opens this zone again
        (:func:`greenprof.sensors.detect.reopen_rapl`); None when it was opened with a
        stand-in clock or file reader."""
        if self._clock is not time.monotonic or self._read_text is not _read_text:
            return None
        return SensorRecipe.of(
            self.device,
            "greenprof.sensors.detect:reopen_rapl",
            str(self._zone_dir),
            self.device,
            self._name,
        )

    def close(self) -> None:
        """Nothing to release (each read opens the file); further reads raise."""
        self._closed = True


def _zone_key(entry: Path) -> tuple[int, ...]:
    match = _ZONE_RE.match(entry.name) or _SUBZONE_RE.match(entry.name)
    assert match is not None
    # MSR zones (intel-rapl:) before MMIO ones (intel-rapl-mmio:), then by index.
    return (1 if match.group(1) else 0, *(int(g) for g in match.groups()[1:]))


def find_zones(root: Path, read_text: ReadText = _read_text) -> list[tuple[Path, str, str]]:
    """``(zone_dir, device, name)`` for each package and package DRAM zone under ``root``.

    Devices are ``cpu:N`` for ``package-N`` and ``dram:N`` for its ``dram``
    subzone. A package that appears twice (``intel-rapl-mmio`` mirrors the MSR
    zone on recent Intel CPUs) is used once, from the MSR tree.
    """
    entries = [e for e in root.iterdir() if _ZONE_RE.match(e.name) or _SUBZONE_RE.match(e.name)]
    zones: list[tuple[Path, str, str]] = []
    package_of: dict[str, int] = {}
    seen: set[str] = set()
    for entry in sorted(entries, key=_zone_key):
        try:
            zone_name = read_text(entry / "name").strip()
        except OSError:
            continue
        if _ZONE_RE.match(entry.name):
            package = _PACKAGE_RE.match(zone_name)
            if package is None:  # psys and anything else at the top level
                continue
            index = int(package.group(1))
            package_of[entry.name] = index
            device, label = f"cpu:{index}", f"RAPL {zone_name}"
        else:
            parent = entry.name.rsplit(":", 1)[0]
            if zone_name != "dram" or parent not in package_of:  # core, uncore: inside package
                continue
            index = package_of[parent]
            device, label = f"dram:{index}", f"RAPL dram (package-{index})"
        if device not in seen:
            seen.add(device)
            zones.append((entry, device, label))
    return zones


def open_rapl_sensors(
    root: Path = POWERCAP_ROOT,
    *,
    clock: Callable[[], float] = time.monotonic,
    read_text: ReadText = _read_text,
) -> list[RaplSensor]:
    """Open every package (``cpu:N``) and DRAM (``dram:N``) zone under ``root``.

    Raises :class:`RaplUnavailable` when there is no powercap tree or no package
    zone, and :class:`RaplPermissionError` when any zone's ``energy_uj`` cannot be
    read (a permission fix is applied to all zones at once, so a partial set
    would only hide the problem).
    """
    if not root.is_dir():
        raise RaplUnavailable(f"{root} does not exist (not Linux, a VM or a container)")
    zones = find_zones(root, read_text)
    if not any(device.startswith("cpu:") for _, device, _ in zones):
        raise RaplUnavailable(f"no RAPL package zone under {root}")
    sensors: list[RaplSensor] = []
    denied: list[Path] = []
    for zone_dir, device, name in zones:
        try:
            sensors.append(RaplSensor(zone_dir, device, name, clock=clock, read_text=read_text))
        except PermissionError:
            denied.append(zone_dir / "energy_uj")
        except (OSError, ValueError) as exc:
            raise RaplUnavailable(f"cannot read {zone_dir / 'energy_uj'}: {exc}") from exc
    if denied:
        raise RaplPermissionError(denied, root)
    return sensors

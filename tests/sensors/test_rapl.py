"""RAPL sensors on powercap trees built in tmp_path: zones, units, wrap-around, permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprof.errors import SensorError
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.rapl import (
    RaplPermissionError,
    RaplUnavailable,
    open_rapl_sensors,
    unwrap_uj,
)

MAX_RANGE_UJ = 262_143_328_850  # a real Intel package's max_energy_range_uj


def zone(
    root: Path, dirname: str, name: str, energy_uj: int = 0, max_uj: int = MAX_RANGE_UJ
) -> Path:
    path = root / dirname
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_energy(zone_dir: Path, energy_uj: int) -> None:
    (zone_dir / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def intel_tree(tmp_path: Path) -> Path:
    """One socket: package with core, uncore and dram subzones, plus psys and an MMIO mirror."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type directory, not a zone
    zone(root, "intel-rapl:0", "package-0", 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 500_000)
    zone(root, "intel-rapl:0:1", "uncore", 100_000)
    zone(root, "intel-rapl:0:2", "dram", 2_000_000)
    zone(root, "intel-rapl:1", "psys", 9_000_000)
    zone(root, "intel-rapl-mmio:0", "package-0", 7_000_000)
    return root


def test_package_and_dram_zones_become_cpu_and_dram_devices(intel_tree: Path) -> None:
    sensors = open_rapl_sensors(intel_tree)
    assert [(s.device, s.info.name) for s in sensors] == [
        ("cpu:0", "RAPL package-0"),
        ("dram:0", "RAPL dram (package-0)"),
    ]
    assert all(isinstance(s, PowerSensor) for s in sensors)
    assert all(s.info.method == "counter" and s.info.node_wide for s in sensors)
    assert [s.info.kind for s in sensors] == ["cpu", "dram"]


def test_core_uncore_psys_and_mmio_mirror_are_not_double_counted(intel_tree: Path) -> None:
    sensors = open_rapl_sensors(intel_tree)
    set_energy(intel_tree / "intel-rapl:0:0", 99_000_000)
    set_energy(intel_tree / "intel-rapl:1", 99_000_000)
    set_energy(intel_tree / "intel-rapl-mmio:0", 99_000_000)
    assert [s.read().energy_j for s in sensors] == [0.0, 0.0]


def test_energy_is_joules_since_open(intel_tree: Path) -> None:
    clock_s = iter([10.0, 11.0])
    package = open_rapl_sensors(intel_tree, clock=lambda: next(clock_s))[0]
    set_energy(intel_tree / "intel-rapl:0", 1_000_000 + 42_500_000)
    reading = package.read()
    assert reading.energy_j == pytest.approx(42.5)
    assert reading.power_w is None
    assert reading.time_s == 10.0


def test_wrap_around_keeps_energy_increasing(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    package = zone(root, "intel-rapl:0", "package-0", 999_500_000, max_uj=1_000_000_000)
    sensor = open_rapl_sensors(root)[0]
    set_energy(package, 999_900_000)
    before = sensor.read().energy_j
    set_energy(package, 250_000)  # wrapped past max_energy_range_uj
    after = sensor.read().energy_j
    assert before == pytest.approx(0.4)
    assert after == pytest.approx(0.75)


@given(
    st.integers(min_value=1, max_value=2**40),
    st.integers(min_value=0),
    st.lists(st.integers(min_value=0, max_value=2**40), max_size=30),
)
def test_unwrap_recovers_every_increment_below_the_range(
    max_range_uj: int, start: int, increments: list[int]
) -> None:
    counter = start % (max_range_uj + 1)
    total = 0
    for increment in increments:
        step = increment % max_range_uj  # at most one wrap between reads
        wrapped = counter + step > max_range_uj
        new = counter + step - max_range_uj if wrapped else counter + step
        total += unwrap_uj(counter, new, max_range_uj)
        counter = new
    expected = sum(i % max_range_uj for i in increments)
    assert total == expected


def test_unwrap_without_a_usable_range_treats_a_decrease_as_a_restart() -> None:
    assert unwrap_uj(500, 200, 0) == 200
    assert unwrap_uj(500, 200, 400) == 200


def test_two_packages_with_dram_each(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    for socket in (1, 0):
        zone(root, f"intel-rapl:{socket}", f"package-{socket}")
        zone(root, f"intel-rapl:{socket}:0", "dram")
    devices = [s.device for s in open_rapl_sensors(root)]
    assert devices == ["cpu:0", "dram:0", "cpu:1", "dram:1"]


def test_amd_layout_with_core_subzones_reports_packages_only(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0")
    zone(root, "intel-rapl:0:0", "core")
    zone(root, "intel-rapl:1", "package-1")
    zone(root, "intel-rapl:1:0", "core")
    assert [s.device for s in open_rapl_sensors(root)] == ["cpu:0", "cpu:1"]


def test_permission_denied_says_how_to_grant_access(intel_tree: Path) -> None:
    # Tests run as root here, where chmod 000 does not stop reads, so the denial a
    # non-root user gets from the root-only energy_uj is injected at the file read.
    def read_text(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    with pytest.raises(RaplPermissionError) as caught:
        open_rapl_sensors(intel_tree, read_text=read_text)
    assert "chmod o+r" in caught.value.hint
    assert "CVE-2020-8694" in caught.value.hint
    assert str(intel_tree / "intel-rapl:0" / "energy_uj") in str(caught.value)
    assert isinstance(caught.value, SensorError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_energy_file_is_a_permission_error(intel_tree: Path) -> None:
    (intel_tree / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.raises(RaplPermissionError):
        open_rapl_sensors(intel_tree)


def test_missing_powercap_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(RaplUnavailable, match="does not exist"):
        open_rapl_sensors(tmp_path / "nope")


def test_tree_without_a_package_zone_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "psys")
    with pytest.raises(RaplUnavailable, match="no RAPL package zone"):
        open_rapl_sensors(root)


def test_read_failure_and_read_after_close_raise_sensor_errors(intel_tree: Path) -> None:
    package, dram = open_rapl_sensors(intel_tree)
    (intel_tree / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(SensorError, match="cpu:0"):
        package.read()
    dram.close()
    with pytest.raises(SensorError, match="closed"):
        dram.read()

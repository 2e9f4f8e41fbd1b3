"""The CPU load × TDP model: CodeCarbon's curve, TDP lookup by CPU name, honest labelling."""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenprof.errors import SensorError
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.cpu_model import (
    CpuModelSensor,
    CpuTdp,
    codecarbon_cpu_power_csv,
    cpu_load_factor,
    load_tdp_table,
    lookup_tdp,
    match_cpu,
    normalize_cpu_name,
    open_cpu_model_sensor,
)

CpuTimes = namedtuple(
    "CpuTimes",
    "user nice system idle iowait irq softirq steal guest guest_nice",
)


def times(busy_s: float, idle_s: float) -> CpuTimes:
    return CpuTimes(busy_s, 0.0, 0.0, idle_s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class ScriptedPsutil:
    """``cpu_times()`` from a script of (busy s, idle s) totals, and ``cpu_count()``."""

    def __init__(self, totals: list[tuple[float, float]], threads: int = 2) -> None:
        self._totals: Iterator[tuple[float, float]] = iter(totals)
        self._threads = threads

    def cpu_times(self) -> CpuTimes:
        return times(*next(self._totals))

    def cpu_count(self, logical: bool = True) -> int:
        return self._threads


TABLE = {"AMD EPYC 7763": 280.0, "AMD EPYC 7543": 225.0, "Intel Xeon Gold 6248": 150.0}


def write_cpuinfo(tmp_path: Path, name: str, sockets: int = 1) -> Path:
    blocks = [
        f"processor\t: {i}\nmodel name\t: {name}\nphysical id\t: {i % sockets}\n"
        for i in range(2 * sockets)
    ]
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks))
    return path


def write_table(tmp_path: Path) -> Path:
    path = tmp_path / "cpu_power.csv"
    rows = "".join(f'"{name}",{tdp}\n' for name, tdp in TABLE.items())
    path.write_text("Name,TDP\n" + rows)
    return path


@pytest.mark.parametrize(
    ("load_pct", "fraction"),
    [(0.0, 0.1), (50.0, 0.1 + 0.9 * 0.125), (100.0, 1.0), (150.0, 1.0), (-5.0, 0.1)],
)
def test_load_curve_is_codecarbons_cubic(load_pct: float, fraction: float) -> None:
    assert cpu_load_factor(load_pct) == pytest.approx(fraction)


def test_power_follows_system_load_since_the_previous_read() -> None:
    psutil = ScriptedPsutil([(100.0, 100.0), (100.0, 102.0), (102.0, 102.0), (103.0, 103.0)])
    sensor = CpuModelSensor(CpuTdp(200.0, "test"), "Test CPU", psutil_module=psutil)
    idle, busy, half = sensor.read(), sensor.read(), sensor.read()
    assert isinstance(sensor, PowerSensor)
    assert idle.power_w == pytest.approx(20.0)
    assert busy.power_w == pytest.approx(200.0)
    assert half.power_w == pytest.approx(200.0 * (0.1 + 0.9 * 0.125))
    assert half.utilization_pct == pytest.approx(50.0)
    assert half.energy_j is None


def test_reads_closer_than_the_tick_repeat_the_last_load() -> None:
    psutil = ScriptedPsutil([(0.0, 0.0), (1.0, 0.0), (1.0, 0.0)])
    sensor = CpuModelSensor(CpuTdp(100.0, "test"), "Test CPU", psutil_module=psutil)
    assert sensor.read().power_w == pytest.approx(100.0)
    assert sensor.read().power_w == pytest.approx(100.0)


def test_model_is_labelled_as_an_estimate_with_its_tdp_and_source() -> None:
    tdp = CpuTdp(280.0, "CodeCarbon cpu_power.csv: AMD EPYC 7763 (280 W) × 1 socket")
    sensor = CpuModelSensor(
        tdp, "AMD EPYC 7763 64-Core Processor", psutil_module=ScriptedPsutil([(0, 0)])
    )
    assert sensor.info.method == "model"
    assert sensor.info.node_wide
    assert sensor.device == "cpu:0"
    assert "AMD EPYC 7763" in sensor.info.name
    assert "estimated" in sensor.info.name
    assert sensor.info.note.startswith("no RAPL access: CPU power modelled from utilization × TDP")
    assert "280 W" in sensor.info.note
    assert "cpu_power.csv" in sensor.info.note


def test_read_after_close_raises() -> None:
    sensor = CpuModelSensor(CpuTdp(1.0, "x"), "x", psutil_module=ScriptedPsutil([(0, 0)]))
    sensor.close()
    with pytest.raises(SensorError, match="closed"):
        sensor.read()


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "intel xeon gold 6248"),
        ("AMD EPYC 7763 64-Core Processor", "amd epyc 7763"),
        ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "intel core i7-8650u"),
    ],
)
def test_cpu_names_are_normalized_like_codecarbon(raw: str, normalized: str) -> None:
    assert normalize_cpu_name(raw) == normalized


def test_known_cpu_gets_its_table_tdp_times_sockets() -> None:
    tdp = lookup_tdp("AMD EPYC 7763 64-Core Processor", threads=256, sockets=2, table=TABLE)
    assert tdp.tdp_w == pytest.approx(560.0)
    assert tdp.matched_name == "AMD EPYC 7763"
    assert "× 2 sockets" in tdp.source


def test_vague_cpu_name_is_ambiguous_and_gets_the_per_thread_default() -> None:
    row, candidates = match_cpu("AMD EPYC", TABLE)
    tdp = lookup_tdp("AMD EPYC", threads=2, table=TABLE)
    assert row is None
    assert candidates == 2
    assert tdp.tdp_w == pytest.approx(8.0)  # CodeCarbon: 4 W per thread
    assert "ambiguous" in tdp.source
    assert "default 4 W × 2 logical CPUs" in tdp.source


def test_unique_superset_and_unknown_names() -> None:
    assert match_cpu("Xeon Gold 6248", TABLE) == ("Intel Xeon Gold 6248", 1)
    assert match_cpu("Apple M3", TABLE) == (None, 0)
    assert lookup_tdp(None, threads=4, table=TABLE).tdp_w == pytest.approx(16.0)
    assert "not found" in lookup_tdp("AMD EPYC 7763", threads=4, table=None).source


def test_open_reads_cpu_name_and_sockets_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = write_cpuinfo(tmp_path, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", sockets=2)
    sensor = open_cpu_model_sensor(
        cpuinfo_path=cpuinfo,
        cpu_power_csv=write_table(tmp_path),
        psutil_module=ScriptedPsutil([(0, 0)], threads=80),
    )
    assert sensor.tdp.tdp_w == pytest.approx(300.0)
    assert "Intel(R) Xeon(R) Gold 6248" in sensor.info.name


def test_open_without_cpuinfo_uses_the_default_and_says_so(tmp_path: Path) -> None:
    sensor = open_cpu_model_sensor(
        cpuinfo_path=tmp_path / "missing",
        cpu_power_csv=write_table(tmp_path),
        psutil_module=ScriptedPsutil([(0, 0)], threads=2),
        reason="RAPL permission denied",
    )
    assert sensor.tdp.tdp_w == pytest.approx(8.0)
    assert "unknown" in sensor.info.note
    assert sensor.info.note.startswith("RAPL permission denied")


def test_codecarbons_shipped_table_knows_common_server_cpus() -> None:
    path = codecarbon_cpu_power_csv()
    assert path is not None
    table = load_tdp_table(path)
    xeon = lookup_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", threads=80, table=table)
    epyc = lookup_tdp("AMD EPYC 7763 64-Core Processor", threads=128, table=table)
    assert xeon.tdp_w == pytest.approx(150.0)
    assert epyc.tdp_w == pytest.approx(280.0)


def test_finding_the_table_does_not_import_codecarbon() -> None:
    code = (
        "import sys; from greenprof.sensors.cpu_model import codecarbon_cpu_power_csv as f;"
        "assert f() is not None; print(sorted({'codecarbon', 'pandas'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

"""`greenprof export codecarbon`: CodeCarbon's own emissions.csv layout, units and tooling."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

import greenprof
from greenprof.cli import main
from greenprof.exporters._common import ExportError
from greenprof.exporters.codecarbon import EMISSIONS_COLUMNS, TEXT_COLUMNS, export_emissions
from greenprof.records import DeviceInfo
from greenprof.sensors.fake import FakeSensor
from greenprof.store.reader import RunStore
from greenprof.units import J_PER_KWH
from tests.exporters._factory import CARBON, GPU, T0, build_run


def test_columns_match_the_installed_codecarbon() -> None:
    from codecarbon.output_methods.emissions_data import EmissionsData

    assert list(EMISSIONS_COLUMNS) == [f.name for f in dataclasses.fields(EmissionsData)]


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, list[dict[str, str]], float]:
    db = tmp_path / "runs.db"
    built = build_run(db, "resnet18-bs64", tags={"experiment_id": "exp-7"})
    build_run(db, "no-carbon", carbon=None)
    out = tmp_path / "emissions.csv"
    assert main(["export", "codecarbon", "--db", str(db), "-o", str(out)]) == 0
    with out.open(newline="") as handle:
        return out, list(csv.DictReader(handle)), built.energy_j


def test_units_are_codecarbons(exported: tuple[Path, list[dict[str, str]], float]) -> None:
    _, rows, energy_j = exported
    row = rows[0]
    assert row["project_name"] == "resnet18-bs64"
    assert row["experiment_id"] == "exp-7"
    assert float(row["duration"]) == pytest.approx(20.0)  # s
    # CodeCarbon's energies are kWh including PUE; emissions kg; rate kg/s; power W.
    # No DRAM sensor: RAM is CodeCarbon's model for an unknown memory size (10 W x 20 s).
    ram_j = 10.0 * 20.0
    assert float(row["ram_power"]) == pytest.approx(10.0 * CARBON.pue)
    assert float(row["ram_energy"]) == pytest.approx(ram_j / J_PER_KWH * CARBON.pue)
    total_j = energy_j + ram_j
    assert float(row["energy_consumed"]) == pytest.approx(total_j / J_PER_KWH * CARBON.pue)
    assert float(row["emissions"]) == pytest.approx(CARBON.co2_g(total_j) / 1000)
    assert float(row["emissions_rate"]) == pytest.approx(float(row["emissions"]) / 20.0)
    gpu_kwh = float(row["gpu_energy"])
    assert float(row["gpu_power"]) == pytest.approx(gpu_kwh * J_PER_KWH / 20.0)
    parts = float(row["cpu_energy"]) + gpu_kwh + float(row["ram_energy"])
    assert parts == pytest.approx(float(row["energy_consumed"]))
    assert row["country_iso_code"] == "DEU"
    assert row["country_name"] == "Germany"
    assert row["gpu_count"] == "1"
    assert row["gpu_model"] == "1 x NVIDIA H100 80GB HBM3"
    assert float(row["pue"]) == pytest.approx(1.2)
    assert row["timestamp"] == "2025-02-19T21:20:20"
    # A run without grid intensity has no emissions figure rather than a made-up one,
    # and says "unknown" where it has no country (CodeCarbon's dashboard needs text).
    assert rows[1]["emissions"] == ""
    assert (rows[1]["country_name"], rows[1]["country_iso_code"]) == ("unknown", "unknown")


def test_codecarbon_reads_and_appends_to_the_export(
    exported: tuple[Path, list[dict[str, str]], float],
) -> None:
    """CodeCarbon's own file output accepts the file as its emissions.csv (no backup)."""
    from codecarbon.output_methods.emissions_data import EmissionsData
    from codecarbon.output_methods.file import FileOutput

    path, rows, _ = exported
    record = EmissionsData(**{k: (v or 0) for k, v in rows[0].items()})  # type: ignore[arg-type]
    output = FileOutput(path.name, str(path.parent), on_csv_write="append")
    assert output.has_valid_headers(record)
    output.out(record, None)
    files = sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("runs.db"))
    assert files == ["emissions.csv"]  # no backup, no temporary file
    with path.open(newline="") as handle:
        again = list(csv.DictReader(handle))
    assert len(again) == 3
    assert again[2]["run_id"] == rows[0]["run_id"]


def test_run_ids_are_stable_uuids(
    tmp_path: Path, exported: tuple[Path, list[dict[str, str]], float]
) -> None:
    import uuid

    path, rows, _ = exported
    second = tmp_path / "again.csv"
    db = path.parent / "runs.db"
    assert main(["export", "codecarbon", "--db", str(db), "-o", str(second)]) == 0
    with second.open(newline="") as handle:
        assert [r["run_id"] for r in csv.DictReader(handle)] == [r["run_id"] for r in rows]
    assert uuid.UUID(rows[0]["run_id"]).version == 5


def test_ram_model_is_codecarbons() -> None:
    """Without a DRAM sensor, RAM power follows CodeCarbon's own model, size by size."""
    from codecarbon.external.ram import RAM

    from greenprof.exporters.codecarbon import ram_power_w

    model = RAM()
    for arm in (False, True):
        model.is_arm_cpu = arm
        for memory_gb in (1, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 4096):
            expected = model._calculate_ram_power(memory_gb)
            assert ram_power_w(memory_gb, arm=arm) == pytest.approx(expected), memory_gb
    assert ram_power_w(None) == 10.0  # unknown size: CodeCarbon's x86 minimum


def test_a_dram_sensor_is_used_instead_of_the_model(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    dram = DeviceInfo("dram:0", "dram", "counter", name="DDR5")
    built = build_run(db, devices=(GPU, dram), watts={"gpu:0": 250.0, "dram:0": 12.0})
    rows = export_rows(db, tmp_path / "e.csv", memory_gb=512.0)
    ram_kwh = built.device_energy_j["dram:0"] / J_PER_KWH * CARBON.pue
    assert float(rows[0]["ram_energy"]) == pytest.approx(ram_kwh)
    assert rows[0]["ram_total_size"] == "512.0"


def export_rows(db: Path, out: Path, *, memory_gb: float | None = None) -> list[dict[str, str]]:
    """Export every run of ``db`` to ``out`` (appending when it exists) and read it back."""
    with RunStore(db) as store:
        runs = sorted(store.runs(), key=lambda run: run.run_id)
        export_emissions(store, runs, out, memory_of=lambda run: memory_gb)
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_appends_to_an_existing_codecarbon_file(
    exported: tuple[Path, list[dict[str, str]], float],
) -> None:
    """CodeCarbon appends to emissions.csv: so does greenprof, once per run."""
    path, rows, _ = exported
    db = path.parent / "runs.db"
    build_run(db, "third", started_at=T0 + 7200)
    again = export_rows(db, path)
    assert [r["project_name"] for r in again] == ["resnet18-bs64", "no-carbon", "third"]
    assert again[:2] == rows  # the user's rows are kept as they were
    assert len(export_rows(db, path)) == 3  # runs already in the file are not repeated
    with RunStore(db) as store:
        result = export_emissions(store, store.runs(), path, memory_of=lambda run: None)
    assert result.describe("emissions.csv") == (
        "appended 0 runs to emissions.csv (3 already there)"
    )


def test_a_mismatched_header_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db)
    path = tmp_path / "emissions.csv"
    old = "timestamp,project_name,run_id,duration,emissions\n2024-01-01T00:00:00,x,1,2,3\n"
    path.write_text(old, encoding="utf-8")
    with RunStore(db) as store, pytest.raises(ExportError) as error:
        export_emissions(store, store.runs(), path)
    message = str(error.value)
    assert "refusing to append" in message
    assert "column 4 is 'duration' where 'experiment_id' is expected" in message
    assert "-o another.csv" in message
    assert path.read_text(encoding="utf-8") == old


def test_codecarbon_dashboard_reads_the_file(
    exported: tuple[Path, list[dict[str, str]], float],
) -> None:
    """The file through CodeCarbon's dashboard data code (``codecarbon/viz/data.py``).

    ``carbonboard.viz`` reads the file with ``pd.read_csv``; the ``Data`` methods that the
    panels call are taken from the installed codecarbon source and run as they are. The
    module itself needs ``dash`` (not installed here), so its ``Data`` class is compiled
    without the module's dash import; ``get_project_data``'s filter and sort (which only
    wraps the records in a dash table) are the same pandas operations.
    """
    import pandas as pd

    path, _, _ = exported
    frame = pd.read_csv(path)
    for column in TEXT_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[column]), column  # str, not float64 NaN
    data = dashboard_data_class()()
    for project in frame.project_name.unique():
        project_df = frame[frame.project_name == project].sort_values(by="timestamp")
        summary = data.get_project_summary(project_df.to_dict("records"))
        # The two panels that crashed on empty country fields:
        iso = summary["country_iso_code"]
        assert iso.upper() not in ("USA", "CAN")  # update_show_regional_comparison
        regional = data.get_regional_emissions_choropleth_data(
            summary["total"]["energy_consumed"], iso
        )
        assert regional == [{"region_code": "", "region_name": "", "emissions": ""}]
        assert summary["total"]["energy_consumed"] > 0


def dashboard_data_class() -> type:
    """``codecarbon.viz.data.Data`` from the installed source, without ``dash``."""
    import ast
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("codecarbon")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).parent / "viz" / "data.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Data"]
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    cls.body.remove(init)  # its DataSource is only used by the USA/CAN branch
    module = ast.Module(body=[cls], type_ignores=[])
    namespace: dict[str, object] = {"pd": pd, "List": list, "Dict": dict, "Any": object}
    namespace.update(Tuple=tuple)
    exec(compile(module, str(source), "exec"), namespace)
    data_class = namespace["Data"]
    assert isinstance(data_class, type)
    return data_class


def test_memory_size_is_known_only_for_runs_of_this_machine(tmp_path: Path) -> None:
    import socket

    from greenprof.exporters.codecarbon import this_machine_memory_gb

    db = tmp_path / "runs.db"
    build_run(db, "here", host=socket.gethostname())
    build_run(db, "elsewhere", host="some-other-node", started_at=T0 + 60)
    with RunStore(db) as store:
        here, elsewhere = store.run("here"), store.run("elsewhere")
    memory_gb = this_machine_memory_gb(here)
    assert memory_gb is not None and memory_gb > 0.1
    assert this_machine_memory_gb(elsewhere) is None


def test_export_codecarbon_on_the_command_line_appends_to_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    with greenprof.Profiler("first", db=db, sensors=[FakeSensor("cpu:0", 10.0)]) as prof:
        prof.step_end(samples=4)
    out = tmp_path / "emissions.csv"
    assert main(["export", "codecarbon", "-o", str(out), "--db", str(db)]) == 0
    with greenprof.Profiler("second", db=db, sensors=[FakeSensor("cpu:0", 10.0)]) as prof:
        prof.step_end(samples=4)
    assert main(["export", "codecarbon", "-o", str(out), "--db", str(db)]) == 0
    with out.open() as appended:
        rows = list(csv.DictReader(appended))
    assert [row["project_name"] for row in rows] == ["first", "second"]  # appended, not doubled
    capsys.readouterr()
    out.write_text("duration,energy\n1,2\n")
    assert main(["export", "codecarbon", "-o", str(out), "--db", str(db)]) == 1
    assert "write to a new file" in capsys.readouterr().err
    assert out.read_text() == "duration,energy\n1,2\n"

"""`greenprof export codecarbon`: CodeCarbon's own emissions.csv layout, units and tooling."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.exporters.codecarbon import EMISSIONS_COLUMNS
from tests.exporters._factory import CARBON, build_run


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
    assert float(row["energy_consumed"]) == pytest.approx(energy_j / 3.6e6 * CARBON.pue)
    assert float(row["emissions"]) == pytest.approx(CARBON.co2_g(energy_j) / 1000)
    assert float(row["emissions_rate"]) == pytest.approx(float(row["emissions"]) / 20.0)
    gpu_kwh = float(row["gpu_energy"])
    assert float(row["gpu_power"]) == pytest.approx(gpu_kwh * 3.6e6 / 20.0)
    assert float(row["cpu_energy"]) + gpu_kwh == pytest.approx(float(row["energy_consumed"]))
    assert row["country_iso_code"] == "DEU"
    assert row["gpu_count"] == "1"
    assert row["gpu_model"] == "1 x NVIDIA H100 80GB HBM3"
    assert float(row["pue"]) == pytest.approx(1.2)
    assert row["timestamp"] == "2025-02-19T21:20:20"
    # A run without grid intensity has no emissions figure rather than a made-up one.
    assert rows[1]["emissions"] == ""


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

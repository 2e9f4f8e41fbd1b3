"""`greenprof export csv`: columns, units, times, selection, atomic output, bad input."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from greenprof.cli import main
from greenprof.exporters import csv as csv_export
from greenprof.exporters._common import iso_utc
from tests.exporters._factory import CARBON, T0, build_run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    build_run(path, "resnet18-bs64", tags={"team": "vision", "bs": "64"})
    build_run(path, "resnet18-bs64", started_at=T0 + 86_400, tags={"team": "vision", "bs": 128})
    build_run(path, "bert-base", started_at=T0 + 2 * 86_400, steps=10, tags={"team": "nlp"})
    return path


def export(db: Path, *args: str, tmp: Path) -> list[dict[str, str]]:
    out = tmp / "out.csv"
    assert main(["export", "csv", "--db", str(db), "-o", str(out), *args]) == 0
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_steps_carry_energy_carbon_and_both_kinds_of_time(db: Path, tmp_path: Path) -> None:
    rows = export(db, "--table", "steps", "1", tmp=tmp_path)
    assert list(rows[0]) == list(csv_export.STEPS_COLUMNS)
    assert len(rows) == 40
    assert sum(float(r["energy_j"]) for r in rows) == pytest.approx(
        build_run(tmp_path / "again.db").step_energy_j
    )
    third = rows[3]
    assert float(third["start_s"]) == pytest.approx(1.5)
    assert float(third["duration_s"]) == pytest.approx(0.5)
    assert third["started_at"] == iso_utc(T0 + 1.5) == "2025-02-19T21:20:01.500Z"
    assert third["ended_at"] == "2025-02-19T21:20:02.000Z"
    assert float(third["co2_g"]) == pytest.approx(CARBON.co2_g(float(third["energy_j"])))


def test_steps_and_step_devices_carry_each_bound_and_leave_unknown_ones_empty(
    tmp_path: Path,
) -> None:
    from greenprof.store.writer import RunSpec, StoreWriter

    db = tmp_path / "bounds.db"
    writer = StoreWriter(db, flush_interval_s=60, wall_clock=lambda: T0 + 2)
    writer.create_run(RunSpec("bounded", started_at=T0, interval_s=0.1))
    writer.add_steps(
        [
            (0, 0, 0.0, 1.0, 8, 10.0, 0, None, 0, 0.25, 0.5, 0.125),
            (1, 0, 1.0, 2.0, 8, 11.0, 0, None),
        ],
        [(0, "gpu:0", 10.0, 0.875), (1, "gpu:0", 11.0)],
    )
    writer.close()
    steps = export(db, "--table", "steps", tmp=tmp_path)
    assert [r["energy_uncertainty_j"] for r in steps] == ["0.875", ""]
    devices = export(db, "--table", "step-devices", tmp=tmp_path)
    assert [(r["device"], r["energy_uncertainty_j"]) for r in devices] == [
        ("gpu:0", "0.875"),
        ("gpu:0", ""),
    ]


def test_step_devices_is_one_row_per_step_and_device_summing_to_device_totals(
    db: Path, tmp_path: Path
) -> None:
    rows = export(db, "--table", "step-devices", "1", tmp=tmp_path)
    assert len(rows) == 40 * 2
    by_device: dict[str, float] = {}
    for row in rows:
        by_device[row["device"]] = by_device.get(row["device"], 0.0) + float(row["energy_j"])
    devices = {r["device"]: r for r in export(db, "--table", "devices", "1", tmp=tmp_path)}
    for device, joules in by_device.items():
        assert float(devices[device]["energy_j"]) == pytest.approx(joules)
    assert {r["method"] for r in rows} == {"counter", "model"}


def test_epochs_and_samples(db: Path, tmp_path: Path) -> None:
    epochs = export(db, "--table", "epochs", "bert-base", tmp=tmp_path)
    assert [int(r["epoch"]) for r in epochs] == [0, 1]
    assert sum(int(r["steps"]) for r in epochs) == 10
    assert float(epochs[0]["j_per_sample"]) == pytest.approx(
        float(epochs[0]["energy_j"]) / int(epochs[0]["samples"])
    )
    samples = export(db, "--table", "samples", "bert-base", tmp=tmp_path)
    assert {r["device"] for r in samples} == {"gpu:0", "cpu:0"}
    assert samples[0]["time"].endswith("Z")
    assert float(samples[-1]["power_w"]) > 0


def test_runs_table_has_units_and_iso_times(db: Path, tmp_path: Path) -> None:
    rows = export(db, "--table", "runs", tmp=tmp_path)
    assert [r["run_id"] for r in rows] == ["1", "2", "3"]  # oldest first
    first = rows[0]
    assert first["started_at"] == "2025-02-19T21:20:00.000Z"
    assert float(first["energy_kwh"]) == pytest.approx(float(first["energy_j"]) / 3.6e6)
    assert float(first["co2_g"]) == pytest.approx(CARBON.co2_g(float(first["energy_j"])))
    assert first["intensity_source"] == "test grid data, 2023"
    assert first["devices"] == "cpu:0=model;gpu:0=counter"


def test_runs_table_has_the_setup_phase(tmp_path: Path) -> None:
    """Issue 9: the time and energy before the first step are in the runs table."""
    db = tmp_path / "setup.db"
    built = build_run(db, "slow-start", setup_s=12.0, steps=20)
    (row,) = export(db, "--table", "runs", tmp=tmp_path)
    assert list(row) == list(csv_export.RUNS_COLUMNS)
    assert float(row["setup_s"]) == pytest.approx(12.0)
    assert float(row["setup_energy_j"]) == pytest.approx((250.0 + 40.0) * 12.0)
    assert float(row["duration_s"]) == pytest.approx(built.duration_s) == 22.0
    outside_j = float(row["energy_j"]) - float(row["step_energy_j"])
    assert outside_j == pytest.approx(float(row["setup_energy_j"]))  # no gap between steps
    assert float(row["j_per_sample"]) == pytest.approx(built.energy_j / built.samples)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (["resnet18-bs64"], ["1", "2"]),  # a name selects every run with it
        (["3", "1"], ["1", "3"]),
        (["--tag", "team=vision", "--tag", "bs=128"], ["2"]),
        (["--since", "2025-02-20"], ["2", "3"]),
        (["--until", "2025-02-20"], ["1", "2"]),  # a bare date includes that day
        (["--since", "2025-02-20T00:00:00Z", "--until", "2025-02-20T23:00"], ["2"]),
    ],
)
def test_run_selection(db: Path, tmp_path: Path, selection: list[str], expected: list[str]) -> None:
    rows = export(db, "--table", "runs", *selection, tmp=tmp_path)
    assert [r["run_id"] for r in rows] == expected


def test_stdout_without_output(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "csv", "--db", str(db), "--table", "runs", "bert-base"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["bert-base"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no run 'nope'"),
        (["--tag", "team=robotics"], "no runs in"),
        (["--tag", "novalue"], "KEY=VALUE"),
        (["--since", "yesterday"], "ISO-8601"),
    ],
)
def test_bad_selection_is_one_line_and_leaves_no_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out.csv"
    assert main(["export", "csv", "--db", str(db), "-o", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("greenprof: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_unwritable_directory(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "out.csv"
    assert main(["export", "csv", "--db", str(db), "-o", str(target)]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert not target.parent.exists()


def test_foreign_database_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello")
    assert main(["export", "csv", "--db", str(foreign), "-o", str(tmp_path / "o.csv")]) == 1
    assert "not a SQLite database" in capsys.readouterr().err
    assert foreign.read_text() == "hello"
    assert not (tmp_path / "o.csv").exists()


def test_failure_mid_export_keeps_the_previous_file(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "steps.csv"
    out.write_text("previous export\n")
    from greenprof.store.reader import RunStore

    real = RunStore.export_batches

    def half_then_fail(
        store: RunStore, table: str, run_id: int, **kwargs: Any
    ) -> Iterator[list[tuple[object, ...]]]:
        if run_id == 3:
            raise RuntimeError("disk on fire")
        return real(store, table, run_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RunStore, "export_batches", half_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["export", "csv", "--db", str(db), "-o", str(out)])
    assert out.read_text() == "previous export\n"
    assert _exports_in(tmp_path) == ["steps.csv"]  # no temporary file left behind


def test_streams_in_bounded_batches(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps are fetched in batches, never all at once (flat memory on huge runs)."""
    monkeypatch.setattr(csv_export, "_FETCH", 7)
    from greenprof.store.reader import RunStore

    sink = io.StringIO()
    with RunStore(db) as store:
        runs = store.runs()
        assert csv_export.write_csv(store, runs, "steps", sink) == 90
    assert sink.getvalue().count("\n") == 91


def _iso_or_empty(unix_s: float) -> str:
    try:
        return iso_utc(unix_s)
    except (ValueError, OverflowError, OSError):
        return ""


def test_streamed_rows_are_what_csv_writer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast formatter of steps and step-devices matches csv.writer on awkward input:
    a name that needs quoting and holds '%', NULLs, no carbon settings, times that tie
    at half a millisecond, a device that needs quoting, a time out of range."""
    monkeypatch.setattr(csv_export, "_FETCH", 7)
    db = tmp_path / "odd.db"
    build_run(db, 'odd, "name" 100%', started_at=T0 + 0.0004, step_s=0.0137, steps=60)
    build_run(db, "no-carbon", carbon=None, steps=12)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE steps SET samples = NULL, loss = 1e-300 WHERE step % 7 = 0")
        conn.execute(
            "INSERT INTO step_energy (run_id, step, device, energy_j)"
            " VALUES (1, 3, 'odd,dev\"x', 1.5)"
        )
        conn.execute(  # bounds on some steps and devices (NULL on the others: not known)
            "UPDATE steps SET uncertainty_start_j = 0.25, uncertainty_end_j = 0.5,"
            " uncertainty_interior_j = step * 0.001, energy_uncertainty_j = 0.75 + step * 0.001"
            " WHERE step % 3 = 1"
        )
        conn.execute("UPDATE step_energy SET energy_uncertainty_j = 0.1 + step WHERE step % 3 = 1")
        conn.execute(
            "INSERT INTO steps (run_id, step, epoch, start_s, end_s, samples, energy_j,"
            " interpolated, loss) VALUES (2, 99, 9, 1e300, 1e300, NULL, 5.0, 0, NULL)"
        )
    conn.close()
    from greenprof.store.reader import RunStore

    with RunStore(db) as store:
        runs = store.runs()
        for table in ("steps", "step-devices"):
            got = io.StringIO()
            count = csv_export.write_csv(store, runs, table, got)
            expected = io.StringIO()
            writer = csv.writer(expected, lineterminator="\n")
            writer.writerow(csv_export.TABLES[table])
            for run in runs:
                factor = csv_export.co2_factor(run)
                if table == "steps":
                    for rec in store.iter_steps(run.run_id):
                        step, ep, s0, s1 = rec.step, rec.epoch, rec.start_s, rec.end_s
                        n, e, interp, loss = (
                            rec.samples,
                            rec.energy_j,
                            int(rec.interpolated),
                            rec.loss,
                        )
                        writer.writerow(
                            (run.run_id, run.name, step, ep, s0, s1, s1 - s0,
                             _iso_or_empty(run.started_at + s0),
                             _iso_or_empty(run.started_at + s1),
                             n, e, None if factor is None else e * factor, interp, loss,
                             rec.energy_uncertainty_j)
                        )  # fmt: skip
                else:
                    methods = {d.device: d.method for d in run.devices}
                    for step, ep, dev, s0, s1, e, u in (
                        (
                            rec.step,
                            rec.epoch,
                            dev,
                            rec.start_s,
                            rec.end_s,
                            e,
                            rec.device_uncertainty_j.get(dev),
                        )
                        for rec in store.iter_steps(run.run_id)
                        for dev, e in sorted(rec.device_energy_j.items())
                    ):
                        writer.writerow(
                            (run.run_id, run.name, step, ep, dev, methods.get(dev), s0, s1,
                             _iso_or_empty(run.started_at + s0),
                             e, None if factor is None else e * factor, u)
                        )  # fmt: skip
            assert got.getvalue() == expected.getvalue()
            assert count == expected.getvalue().count("\n") - 1


def test_step_and_epoch_times_agree_to_the_millisecond(tmp_path: Path) -> None:
    """Streamed and small tables round times alike, even at half-millisecond ties."""
    db = tmp_path / "ties.db"
    build_run(db, started_at=T0 + 0.0004, step_s=0.0137, steps=300, epochs=30)
    steps = export(db, "--table", "steps", tmp=tmp_path)
    epochs = export(db, "--table", "epochs", tmp=tmp_path)
    first = {}
    for row in steps:
        first.setdefault(row["epoch"], row["started_at"])
    assert len(epochs) == 30
    for epoch in epochs:
        assert epoch["started_at"] == first[epoch["epoch"]]
    for row in steps:
        assert row["started_at"] == iso_utc(T0 + 0.0004 + float(row["start_s"]))


def _exports_in(directory: Path) -> list[str]:
    """The files in ``directory`` other than the database (and its -wal / -shm files)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("runs.db"))

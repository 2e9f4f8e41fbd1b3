"""A job id stands for every rank of the job in ``export``, ``report`` and ``compare``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import greenprof
from greenprof.cli import main
from greenprof.refs import expand_jobs
from greenprof.sensors.fake import FakeSensor


def _run(db: Path, name: str, env: dict[str, str]) -> int:
    with greenprof.Profiler(name, db=db, sensors=[FakeSensor("cpu:0", 20.0)], env=env) as prof:
        for _ in range(3):
            with prof.step(samples=8):
                pass
    assert prof.run_id is not None
    return prof.run_id


def _rank(db: Path, rank: int) -> int:
    env = {"TORCHELASTIC_RUN_ID": "j7", "RANK": str(rank), "WORLD_SIZE": "2"}
    return _run(db, "ddp", env)


@pytest.fixture
def job_db(db_path: Path) -> tuple[Path, int, int, int]:
    lone = _run(db_path, "lone", {})
    second = _rank(db_path, 1)  # rank 1 happens to start first
    first = _rank(db_path, 0)
    return db_path, lone, first, second


def test_a_job_id_expands_to_its_ranks_in_rank_order(job_db: tuple[Path, int, int, int]) -> None:
    db, lone, first, second = job_db
    with greenprof.RunStore(db) as store:
        assert expand_jobs(store, ["torchrun-j7"]) == [str(first), str(second)]
        # run ids, names and unknown references pass through for the store to resolve
        assert expand_jobs(store, [str(lone), "lone", "torchrun-j7", str(first)]) == [
            str(lone),
            "lone",
            str(first),
            str(second),
        ]
        assert expand_jobs(store, ["nothing-here"]) == ["nothing-here"]


def test_export_of_a_job_has_every_rank(
    job_db: tuple[Path, int, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, first, second = job_db
    assert main(["export", "csv", "--table", "runs", "torchrun-j7", "--db", str(db)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(int(row["run_id"]) for row in rows) == sorted([first, second])


def test_report_of_a_job_covers_each_rank(
    job_db: tuple[Path, int, int, int], tmp_path: Path
) -> None:
    db, _, first, second = job_db
    out = tmp_path / "job.md"
    assert main(["report", "torchrun-j7", "-o", str(out), "--db", str(db)]) == 0
    text = out.read_text()
    assert text.startswith("# Energy and carbon report: 2 runs")
    assert f"ddp #{first}" in text and f"ddp #{second}" in text
    assert "lone" not in text


def test_compare_resolves_a_job_to_its_ranks(job_db: tuple[Path, int, int, int]) -> None:
    from greenprof.tui.commands import _resolve

    db, _, first, second = job_db
    assert _resolve(str(db), ["torchrun-j7"])[1] == [str(first), str(second)]


def test_compare_of_a_single_run_is_refused(
    job_db: tuple[Path, int, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    db, lone, _, _ = job_db
    assert main(["compare", str(lone), "--db", str(db)]) == 2
    assert "two or more runs" in capsys.readouterr().err

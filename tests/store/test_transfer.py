"""`greenprof merge` and `greenprof push`: runs move whole, once, with ids unique in the target."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.errors import SchemaTooNew, StoreError
from greenprof.records import DeviceInfo
from greenprof.store.schema import SCHEMA_VERSION
from greenprof.store.transfer import transfer
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter, open_writer

GPU = DeviceInfo("gpu:0", "gpu", "counter", power_window_s=1.0)


def _node(path: Path, names: list[str], *, steps: int = 30, running: str | None = None) -> None:
    """A node's database: finished runs with steps, energies, samples and a pending step."""
    for name in [*names, *([running] if running else [])]:
        writer = StoreWriter(path, flush_interval_s=3600)
        writer.create_run(RunSpec(name, started_at=1000.0, interval_s=0.1, devices=[GPU]))
        writer.add_steps(
            [
                (i, 0, 0.1 * i, 0.1 * (i + 1), 8, 2.0, 0, 0.5, 0, 0.25, 0.25, 0.5)
                for i in range(steps)
            ],
            [(i, "gpu:0", 2.0, 1.0) for i in range(steps)],
        )
        writer.add_pending_steps([(steps, 0, 0.1 * steps, 0.1 * steps + 0.1, 8, None)])
        writer.add_samples([("gpu:0", 0.1 * k, 2.0 * k, 20.0, None, None, None) for k in range(10)])
        writer.set_totals(
            RunTotals(steps, 8 * steps, 2.0 * steps, 2.0 * steps, 3.0, {"gpu:0": 60.0})
        )
        if name == running:
            writer.flush()
            writer.sink.conn.close()  # still running, as far as the file says
        else:
            writer.close()


def _table(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_merge_copies_every_run_whole_with_new_unique_ids(tmp_path: Path) -> None:
    a, b, job = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "job.db"
    _node(a, ["rank0", "rank0-eval"])
    _node(b, ["rank1"], steps=50)
    assert main(["merge", str(a), str(b), "-o", str(job)]) == 0
    runs = _table(job, "SELECT run_id, name, status, steps, energy_j, uid FROM runs ORDER BY name")
    assert [r[1:5] for r in runs] == [
        ("rank0", "completed", 30, 60.0),
        ("rank0-eval", "completed", 30, 60.0),
        ("rank1", "completed", 50, 100.0),
    ]
    assert sorted(r[0] for r in runs) == [1, 2, 3]
    sources = {u for (u,) in _table(a, "SELECT uid FROM runs") + _table(b, "SELECT uid FROM runs")}
    assert {r[5] for r in runs} == sources
    per_run = _table(
        job,
        "SELECT r.name, (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id),"
        " (SELECT count(*) FROM step_energy e WHERE e.run_id = r.run_id),"
        " (SELECT count(*) FROM samples m WHERE m.run_id = r.run_id),"
        " (SELECT count(*) FROM devices d WHERE d.run_id = r.run_id),"
        " (SELECT count(*) FROM pending_steps p WHERE p.run_id = r.run_id)"
        " FROM runs r ORDER BY r.name",
    )
    assert per_run == [
        ("rank0", 30, 30, 10, 1, 1),
        ("rank0-eval", 30, 30, 10, 1, 1),
        ("rank1", 50, 50, 10, 1, 1),
    ]
    bounds = _table(  # the steps' error bounds and the devices' power window come along
        job,
        "SELECT DISTINCT s.energy_uncertainty_j, s.uncertainty_start_j, s.uncertainty_end_j,"
        " s.uncertainty_interior_j, e.energy_uncertainty_j, d.power_window_s FROM steps s"
        " JOIN step_energy e USING (run_id, step) JOIN devices d USING (run_id)",
    )
    assert bounds == [(1.0, 0.25, 0.25, 0.5, 1.0, 1.0)]


def test_merging_twice_copies_nothing_twice(tmp_path: Path) -> None:
    a, job = tmp_path / "a.db", tmp_path / "job.db"
    _node(a, ["r1", "r2"])
    first = transfer([a], job)
    second = transfer([a], job)
    assert (first.copied_runs, second.copied_runs, second.already_there) == (2, 0, 2)
    assert _table(job, "SELECT count(*) FROM runs") == [(2,)]
    assert _table(job, "SELECT count(*) FROM steps") == [(60,)]


def test_runs_inserted_without_a_uid_are_copied_once_each(tmp_path: Path) -> None:
    a, job = tmp_path / "a.db", tmp_path / "job.db"
    _node(a, ["r1"])
    conn = sqlite3.connect(a)
    for name in ("by-hand-1", "by-hand-2"):
        conn.execute(
            "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
            " greenprof_version) VALUES (?, 'completed', 1, 1, 'h', 1, 0.1, '')",
            (name,),
        )
    conn.commit()
    conn.close()
    assert transfer([a], job).copied_runs == 3
    assert transfer([a], job).copied_runs == 0
    assert _table(job, "SELECT name FROM runs ORDER BY name") == [
        ("by-hand-1",),
        ("by-hand-2",),
        ("r1",),
    ]


def test_a_run_still_running_is_not_copied(tmp_path: Path) -> None:
    a, job = tmp_path / "a.db", tmp_path / "job.db"
    _node(a, ["done"], running="live")
    lines: list[str] = []
    report = transfer([a], job, progress=lines.append)
    assert (report.copied_runs, report.still_running) == (1, 1)
    assert _table(job, "SELECT name FROM runs") == [("done",)]
    assert any("live is still running" in line for line in lines)


def test_a_source_written_by_a_newer_greenprof_is_refused(tmp_path: Path) -> None:
    a, job = tmp_path / "a.db", tmp_path / "job.db"
    _node(a, ["r1"])
    conn = sqlite3.connect(a)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        transfer([a], job)
    assert _table(job, "SELECT count(*) FROM runs") == [(0,)]


def test_the_target_cannot_be_a_source(tmp_path: Path) -> None:
    a = tmp_path / "a.db"
    _node(a, ["r1"])
    with pytest.raises(StoreError, match="both a source and the target"):
        transfer([a], a)


def test_push_to_a_server_twice_copies_nothing_twice(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    from tests.pg_cluster import TEST_PASSWORD

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _node(a, ["rank0"])
    _node(b, ["rank1"], steps=40)
    writer = open_writer(pg_url)  # a run profiled straight into the server
    writer.create_run(RunSpec("server", started_at=1.0, interval_s=0.1))
    writer.close()
    assert main(["push", str(a), str(b), "--to", pg_url]) == 0
    assert main(["push", str(a), str(b), "--to", pg_url]) == 0
    err = capsys.readouterr().err
    assert "2 run(s) copied" in err and "0 run(s) copied" in err and "2 already there" in err
    assert TEST_PASSWORD not in err
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT run_id, name, steps FROM runs ORDER BY name").fetchall()
        steps = conn.execute("SELECT run_id, count(*) FROM steps GROUP BY run_id").fetchall()
        samples = conn.execute("SELECT count(*) FROM samples").fetchone()
        bounds = conn.execute(
            "SELECT DISTINCT s.energy_uncertainty_j, e.energy_uncertainty_j FROM steps s"
            " JOIN step_energy e USING (run_id, step)"
        ).fetchall()
    assert [r[1:] for r in runs] == [("rank0", 30), ("rank1", 40), ("server", 0)]
    assert len({r[0] for r in runs}) == 3
    assert sorted(n for _r, n in steps) == [30, 40]
    assert samples == (20,)
    assert bounds == [(1.0, 1.0)]


def test_runs_of_a_server_merge_into_a_file_whole_in_chunks(tmp_path: Path, pg_url: str) -> None:
    node = tmp_path / "node.db"
    _node(node, ["rank0"], steps=45)
    transfer([node], pg_url)
    out = tmp_path / "out.db"
    report = transfer([pg_url], out, chunk_rows=7)  # every table read in several chunks
    assert (report.copied_runs, report.rows) == (1, 1 + 45 + 45 + 10 + 1)
    assert _table(out, "SELECT name, steps FROM runs") == [("rank0", 45)]
    assert _table(out, "SELECT count(*), min(step), max(step), total(energy_j) FROM steps") == [
        (45, 0, 44, 90.0)
    ]
    assert _table(
        out, "SELECT DISTINCT s.uncertainty_interior_j, e.energy_uncertainty_j FROM steps AS s"
        " JOIN step_energy AS e USING (run_id, step)"
    ) == [(0.5, 1.0)]  # fmt: skip
    assert transfer([pg_url], out, chunk_rows=7).copied_runs == 0


def test_nodes_pushing_the_same_runs_at_once_store_each_run_once(
    tmp_path: Path, pg_url: str
) -> None:
    import multiprocessing

    import psycopg

    a = tmp_path / "a.db"
    _node(a, [f"r{k}" for k in range(6)], steps=200)
    copies = [tmp_path / f"copy{k}.db" for k in range(3)]
    for copy in copies:  # the same runs (same uids) on three nodes
        transfer([a], copy)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=transfer, args=([c], pg_url)) for c in copies]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (6,)
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (1200,)

"""The PostgreSQL backend against a real server (``tests/pg_cluster.py``): writing, identity,
errors that name the fix and never the password, outages, many processes, recovery."""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any

import pytest

from greenprof.errors import NotAGreenprofDatabase, StoreError
from greenprof.records import STEP_RECOVERED, DeviceInfo
from greenprof.store.recovery import repair
from greenprof.store.schema import MIGRATIONS
from greenprof.store.writer import RunSpec, RunTotals, mark_run_ended, open_writer
from tests.pg_cluster import TEST_PASSWORD, PgCluster, free_port

psycopg = pytest.importorskip("psycopg")

GPU = DeviceInfo("gpu:0", "gpu", "counter")
DEAD_PID = 2**31 - 7  # no such process here


def _steps(first: int, count: int) -> list[tuple[object, ...]]:
    return [(i, 0, i * 0.1, (i + 1) * 0.1, 4, 1.5, 0, 0.25) for i in range(first, first + count)]


def _energies(first: int, count: int) -> list[tuple[int, str, float]]:
    return [(i, "gpu:0", 1.5) for i in range(first, first + count)]


def _query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_run_written_through_the_writer_is_stored_whole(pg_url: str) -> None:
    writer = open_writer(pg_url, flush_interval_s=0.05)
    run_id = writer.create_run(
        RunSpec("resnet", started_at=1000.0, interval_s=0.1, devices=[GPU], tags={"bs": "64"})
    )
    writer.add_steps(_steps(0, 500), _energies(0, 500))
    writer.add_samples([("gpu:0", 0.1 * k, 10.0 * k, 100.0, 50.0, 2**33, 60.0) for k in range(20)])
    writer.add_pending_steps([(500, 0, 50.0, 50.1, 4, None)])
    writer.set_totals(RunTotals(500, 2000, 800.0, 750.0, 50.0, {"gpu:0": 800.0}))
    writer.rename("resnet-final", {"lr": "0.1"})
    writer.record_error("gpu:0 was throttled")
    writer.update_device("gpu:0", note="shared", idle_power_w=30.0, rejected_readings=2)
    writer.close()
    assert TEST_PASSWORD not in str(writer.path) and "***" in str(writer.path)
    (run,) = _query(
        pg_url,
        "SELECT name, status, steps, energy_j, tags, error, lost_steps, uid FROM runs"
        " WHERE run_id = %s",
        (run_id,),
    )
    assert run[:4] == ("resnet-final", "completed", 500, 800.0)
    assert '"bs": "64"' in run[4] and '"lr": "0.1"' in run[4]
    assert run[5] == "gpu:0 was throttled"
    assert run[6] == 0 and len(run[7]) == 32
    assert _query(pg_url, "SELECT count(*), sum(energy_j) FROM steps") == [(500, 750.0)]
    assert _query(pg_url, "SELECT count(*) FROM step_energy") == [(500,)]
    assert _query(pg_url, "SELECT max(memory_used_bytes) FROM samples") == [(2**33,)]
    assert _query(
        pg_url, "SELECT note, idle_power_w, rejected_readings, energy_j FROM devices"
    ) == [("shared", 30.0, 2, 800.0)]


def test_a_retried_batch_replaces_its_rows_instead_of_failing(pg_url: str) -> None:
    """A commit whose acknowledgement was lost is retried: the rows are upserted."""
    writer = open_writer(pg_url, flush_interval_s=3600)
    writer.create_run(RunSpec("retry", started_at=1.0, interval_s=0.1))
    writer.add_steps(_steps(0, 100), _energies(0, 100))
    writer.flush()
    writer.add_steps(_steps(50, 100), _energies(50, 100))
    writer.flush()
    writer.close()
    assert _query(pg_url, "SELECT count(*) FROM steps") == [(150,)]
    assert _query(pg_url, "SELECT status, lost_steps FROM runs") == [("completed", 0)]


def test_a_database_of_another_application_is_refused_and_left_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total NUMERIC)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.99)")
    with pytest.raises(NotAGreenprofDatabase, match="untouched") as caught:
        open_writer(pg_url)
    assert TEST_PASSWORD not in str(caught.value)
    tables = _query(
        pg_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert tables == [("invoices",)]


def test_a_server_that_is_down_is_one_line_naming_the_fix(pg_cluster: PgCluster) -> None:
    url = f"postgresql://gptest:{TEST_PASSWORD}@127.0.0.1:{free_port()}/greenprof"
    with pytest.raises(StoreError) as caught:
        open_writer(url)
    message = str(caught.value)
    assert "not reachable" in message and "start it" in message
    assert "\n" not in message and TEST_PASSWORD not in message


def test_bad_credentials_are_one_line_without_the_password(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("postgres", password="wrong-" + TEST_PASSWORD)
    with pytest.raises(StoreError) as caught:
        open_writer(url)
    message = str(caught.value)
    assert "refused the credentials of gptest" in message
    assert "\n" not in message and TEST_PASSWORD not in message and "wrong-" not in message


def test_a_missing_database_is_one_line_saying_how_to_create_it(pg_cluster: PgCluster) -> None:
    with pytest.raises(StoreError) as caught:
        open_writer(pg_cluster.url("no_such_db"))
    message = str(caught.value)
    assert "'no_such_db' does not exist" in message and "createdb no_such_db" in message
    assert "\n" not in message and TEST_PASSWORD not in message


def test_a_server_stopped_mid_run_loses_nothing_and_never_blocks_the_caller(
    pg_cluster: PgCluster, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    writer = open_writer(pg_url, flush_interval_s=0.05)
    run_id = writer.create_run(RunSpec("outage", started_at=1.0, interval_s=0.1, devices=[GPU]))
    writer.add_steps(_steps(0, 100), _energies(0, 100))
    writer.flush()
    pg_cluster.stop()
    try:
        for first in range(100, 1100, 100):  # the caller keeps going while the server is down
            writer.add_steps(_steps(first, 100), _energies(first, 100))
            writer.add_samples([("gpu:0", first * 0.1, first * 1.0, 100.0, None, None, None)])
        deadline = time.monotonic() + 30
        while writer.health().failing_since_s is None and time.monotonic() < deadline:
            time.sleep(0.05)
        health = writer.health()
        assert health.failing_since_s is not None
        assert health.pending_rows >= 2000 and health.lost_steps == 0
    finally:
        pg_cluster.start()
    writer.close()
    assert _query(pg_url, "SELECT count(*), min(step), max(step) FROM steps") == [(1100, 0, 1099)]
    assert _query(pg_url, "SELECT status, lost_steps, coalesce(error, '') FROM runs") == [
        ("completed", 0, "")
    ]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not reachable" in messages and "nothing queued was lost" in messages
    assert TEST_PASSWORD not in messages
    assert run_id == 1


def _profile_process(url: str, rank: int, steps: int) -> None:
    writer = open_writer(url, flush_interval_s=0.05)
    writer.create_run(RunSpec(f"rank{rank}", started_at=1.0, interval_s=0.1, rank=rank))
    for first in range(0, steps, 50):
        writer.add_steps(_steps(first, 50), _energies(first, 50))
        time.sleep(0.01)
    writer.close()


def test_several_processes_write_into_one_fresh_server_database_at_once(pg_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_profile_process, args=(pg_url, rank, 400)) for rank in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    runs = _query(pg_url, "SELECT run_id, name, status, rank FROM runs ORDER BY rank")
    assert [r[1:] for r in runs] == [(f"rank{r}", "completed", r) for r in range(4)]
    assert len({r[0] for r in runs}) == 4
    counts = _query(pg_url, "SELECT run_id, count(*) FROM steps GROUP BY run_id ORDER BY run_id")
    assert [c[1] for c in counts] == [400] * 4


def test_a_dead_runs_pending_steps_are_recovered_on_the_server(pg_url: str) -> None:
    writer = open_writer(pg_url, flush_interval_s=3600, wall_clock=lambda: 1001.0)
    run_id = writer.create_run(
        RunSpec("killed", started_at=1000.0, interval_s=0.1, devices=[GPU], pid=DEAD_PID)
    )
    writer.add_steps(_steps(0, 3), _energies(0, 3))
    writer.add_pending_steps([(i, 0, 0.1 * i, 0.1 * (i + 1), 4, 0.5) for i in range(8)])
    writer.add_samples([("gpu:0", 0.1 * k, 10.0 * k, 100.0, None, None, None) for k in range(11)])
    writer.flush()
    writer.sink.close()  # the process dies: no close(), nothing more written
    (done,) = repair(pg_url, wall_clock=lambda: 1100.0)
    assert (done.run_id, done.recovered_steps, done.steps) == (run_id, 5, 8)
    flags = _query(pg_url, "SELECT step, flags FROM steps WHERE step >= 3 ORDER BY step")
    assert all(f & STEP_RECOVERED for _s, f in flags) and len(flags) == 5
    assert _query(pg_url, "SELECT status FROM runs") == [("interrupted",)]
    assert _query(pg_url, "SELECT count(*) FROM pending_steps") == [(0,)]


def test_mark_run_ended_records_the_exit_cause_on_the_server(pg_url: str) -> None:
    writer = open_writer(pg_url)
    run_id = writer.create_run(RunSpec("child", started_at=1.0, interval_s=0.1))
    writer.close()
    mark_run_ended(pg_url, run_id, "failed", "exit code 2")
    mark_run_ended(pg_url, run_id, "interrupted", "killed by SIGTERM")
    assert _query(pg_url, "SELECT status, error FROM runs") == [("failed", "exit code 2")]


def test_the_server_schema_has_the_same_versions_as_sqlite_and_migrates_forward(
    pg_url: str,
) -> None:
    from greenprof.store.postgres.schema import PG_MIGRATIONS, PG_SCHEMA_VERSION
    from greenprof.store.reader import RunStore

    assert len(PG_MIGRATIONS) == len(MIGRATIONS)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a database left at version 3
        conn.execute("CREATE TABLE greenprof_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO greenprof_meta VALUES ('application', 'greenprof'),"
            " ('schema_version', '3')"
        )
        for script in PG_MIGRATIONS[:3]:
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
            " greenprof_version) VALUES ('old', 'completed', 1, 1, 'h', 1, 0.1, '0.1')"
        )
        conn.execute(
            "INSERT INTO steps (run_id, step, start_s, end_s, energy_j) SELECT run_id, 0, 0, 1, 5"
            " FROM runs"
        )
    writer = open_writer(pg_url)
    writer.create_run(RunSpec("new", started_at=2.0, interval_s=0.1))
    writer.close()
    assert _query(pg_url, "SELECT value FROM greenprof_meta WHERE key = 'schema_version'") == [
        (str(PG_SCHEMA_VERSION),)
    ]
    uids = _query(pg_url, "SELECT uid FROM runs")
    assert len({u for (u,) in uids}) == 2 and all(uids)
    with RunStore(pg_url) as store:  # steps recorded before v5 have no bound (not 0 J)
        (old,) = store.step_batch(store.run("old").run_id, after_step=-1, size=5)
    assert (old.energy_j, old.bounds, old.energy_uncertainty_j) == (5.0, None, None)


def _write_runs(db: object, *, wall_clock: float) -> None:
    """The same three runs into any store: varied steps, devices, samples, flags, a live run."""
    cpu = DeviceInfo("cpu:0", "cpu", "model", node_wide=True)
    for name, steps, status in (
        ("alpha", 40, "completed"),
        ("beta", 25, "failed"),
        ("live", 5, ""),
    ):
        writer = open_writer(db, flush_interval_s=3600, wall_clock=lambda: wall_clock)  # type: ignore[arg-type]
        writer.create_run(
            RunSpec(name, started_at=1000.0, interval_s=0.1, devices=[GPU, cpu], job_id="j1",
                    tags={"bs": "8"}, pid=DEAD_PID if name == "beta" else 1)
        )  # fmt: skip
        writer.add_steps(
            [(i, i // 10, 0.5 * i, 0.5 * i + 0.5, 8 if i % 3 else None, 2.5, i % 2,
              None if i % 4 == 0 else 0.25 * i, 4 if i == 3 else 0) for i in range(steps)],
            [(i, d, e) for i in range(steps) for d, e in (("gpu:0", 2.0), ("cpu:0", 0.5))],
        )  # fmt: skip
        writer.add_samples(
            [(d, 0.25 * k, 0.5 * k, p if k % 2 else None, 50.0 if d == "gpu:0" else None,
              2**32 + k, None) for k in range(30) for d, p in (("gpu:0", 100.0), ("cpu:0", 20.0))]
        )  # fmt: skip
        writer.add_pending_steps([(steps, 0, 0.5 * steps, 0.5 * steps + 0.5, 8, None)])
        writer.set_totals(
            RunTotals(steps, 8 * steps, 2.5 * steps, 2.5 * steps, 0.5 * steps, {"gpu:0": 2.0})
        )
        if status:
            writer.close(status=status)  # type: ignore[arg-type]
        else:
            writer.flush()
            writer.sink.close()


def test_the_server_reads_exactly_what_the_sqlite_file_reads(pg_url: str, tmp_path: Any) -> None:
    """Every read of the store contract, on the same runs written into both backends."""
    from greenprof.store.reader import RunStore

    path = tmp_path / "same.db"
    _write_runs(path, wall_clock=2000.0)
    _write_runs(pg_url, wall_clock=2000.0)
    world = {"wall_clock": lambda: 2010.0, "alive": lambda pid: pid == 1}

    def reads(store: RunStore) -> list[object]:
        out: list[object] = [
            store.runs(),
            store.runs(status="running"),
            store.runs(status="interrupted"),
            store.runs(status="completed", limit=1),
            store.runs(name="beta"),
            store.runs(job="j1", limit=2),
            store.run("alpha"),
            store.run(2),
            store.stored_status(3),
            store.stored_status(99),
            store.devices([1, 2, 3]),
            store.device_energy_j(1),
            store.device_energies([1, 2]),
            store.metric_runs(),
            store.metric_runs([2]),
        ]
        for run_id in (1, 2, 3, 99):
            out += [
                store.step_batch(run_id, after_step=2, size=7),
                store.step_flag_counts(run_id),
                store.pending_steps(run_id),
                store.epochs(run_id),
                store.step_aggregate(run_id),
                store.step_range(run_id),
                store.step_columns(run_id),
                store.step_buckets(run_id, width=7, head=3),
                store.samples(run_id),
                store.samples(run_id, device="cpu:0", after_s=3.0),
                store.last_sample_time_s(run_id),
                store.last_sample_time_s(run_id, "gpu:0"),
                store.latest_power_w(run_id, ["gpu:0", "cpu:0", "none"]),
                store.sample_timeline(run_id, width_s=1.5, points=4),
                store.step_timeline(run_id, width_s=2.0, points=5),
                store.utilization_by_kind(run_id),
            ]
            for table in ("steps", "step-devices", "samples"):
                for co2 in (None, 0.1):
                    out.append(
                        list(
                            store.export_batches(
                                table, run_id, started_at=1000.0005, co2_g_per_j=co2, batch_rows=9
                            )
                        )
                    )
        return out

    with RunStore(path, **world) as lite, RunStore(pg_url, **world) as pg:  # type: ignore[arg-type]
        expected, got = reads(lite), reads(pg)
    assert [r.name for r in expected[0]] == ["live", "beta", "alpha"]  # type: ignore[attr-defined]
    assert [r.status for r in expected[1]] == ["running"]  # type: ignore[attr-defined]
    assert all(expected[15 + 16 : 15 + 22])  # run 1's six exports have rows
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, index


def _profiled_process(url: str, rank: int, steps: int) -> None:
    import greenprof
    from greenprof.sensors.fake import FakeSensor

    sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02)]
    with greenprof.Profiler(f"rank{rank}", db=url, sensors=sensors, tags={"rank": str(rank)}) as p:
        for _ in range(steps):
            with p.step(samples=rank + 1):
                time.sleep(0.002)


def test_several_profiled_processes_share_one_server(pg_url: str) -> None:
    """End to end: real Profilers in separate processes, one PostgreSQL database."""
    from greenprof.store.reader import RunStore

    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_profiled_process, args=(pg_url, rank, 60)) for rank in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(180)
        assert child.exitcode == 0
    with RunStore(pg_url) as store:
        runs = sorted(store.runs(), key=lambda r: r.name)
        assert [(r.name, r.status, r.steps) for r in runs] == [
            (f"rank{k}", "completed", 60) for k in range(3)
        ]
        for k, run in enumerate(runs):
            steps = store.steps(run.run_id)
            assert [s.step for s in steps] == list(range(60))
            assert {s.samples for s in steps} == {k + 1}
            assert all(s.bounds is not None for s in steps)  # each step's error bound
            assert all(s.device_uncertainty_j.keys() == {"gpu:0"} for s in steps)
            assert run.energy_j > 0 and TEST_PASSWORD not in (run.error or "")


@pytest.mark.parametrize("problem", ["down", "password", "database"])
def test_readers_get_the_same_one_line_errors(pg_cluster: PgCluster, problem: str) -> None:
    from greenprof.store.reader import RunStore

    url = {
        "down": f"postgresql://gptest:{TEST_PASSWORD}@127.0.0.1:{free_port()}/greenprof",
        "password": pg_cluster.url("postgres", password="wrong-" + TEST_PASSWORD),
        "database": pg_cluster.url("no_such_db"),
    }[problem]
    with pytest.raises(StoreError) as caught:
        RunStore(url)
    message = str(caught.value)
    assert "\n" not in message and TEST_PASSWORD not in message
    assert {"down": "start it", "password": "credentials", "database": "createdb"}[
        problem
    ] in message


def test_past_the_backlog_bound_during_an_outage_steps_are_counted_lost(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    writer = open_writer(pg_url, flush_interval_s=3600, max_backlog_steps=100, close_timeout_s=5)
    writer.create_run(RunSpec("bounded", started_at=1.0, interval_s=0.1))
    pg_cluster.stop()
    try:
        writer.add_steps(_steps(0, 80), _energies(0, 80))
        with pytest.raises(psycopg.OperationalError):
            writer.flush()
        writer.add_steps(_steps(80, 70), _energies(80, 70))
        assert writer.health().lost_steps == 50
    finally:
        pg_cluster.start()
    writer.close()
    assert _query(pg_url, "SELECT count(*) FROM steps") == [(100,)]
    ((status, lost, error),) = _query(pg_url, "SELECT status, lost_steps, error FROM runs")
    assert (status, lost) == ("incomplete", 50)
    assert "50 step(s) not stored" in error and TEST_PASSWORD not in error


def test_a_profiled_loop_rides_out_a_server_restart_and_loses_no_step(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    import greenprof
    from greenprof.sensors.fake import FakeSensor
    from greenprof.store.reader import RunStore

    sensors = [FakeSensor("gpu:0", 150.0, update_period_s=0.02)]
    with greenprof.Profiler("restart", db=pg_url, sensors=sensors) as prof:
        for _ in range(40):
            with prof.step(samples=2):
                time.sleep(0.002)
        pg_cluster.stop()
        try:
            for _ in range(80):  # the loop goes on while the server is gone
                with prof.step(samples=2):
                    time.sleep(0.002)
            time.sleep(0.5)  # a few failed flushes
        finally:
            pg_cluster.start()
        for _ in range(40):
            with prof.step(samples=2):
                time.sleep(0.002)
    with RunStore(pg_url) as store:
        (run,) = store.runs()
        assert (run.status, run.steps, run.lost_steps) == ("completed", 160, 0)
        assert [s.step for s in store.steps(run.run_id)] == list(range(160))


def test_repair_takes_a_server_url(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from greenprof.cli import main

    writer = open_writer(pg_url, flush_interval_s=3600, wall_clock=lambda: 1001.0)
    writer.create_run(RunSpec("killed", started_at=1000.0, interval_s=0.1, pid=DEAD_PID))
    writer.add_pending_steps([(0, 0, 0.0, 0.1, 4, None)])
    writer.flush()
    writer.sink.close()
    assert main(["repair", "--db", pg_url]) == 0
    out = capsys.readouterr().out
    assert "1 step(s) recovered" in out and TEST_PASSWORD not in out
    assert main(["repair", "--db", pg_url]) == 0
    assert "nothing to repair in postgresql://gptest:***@" in capsys.readouterr().out

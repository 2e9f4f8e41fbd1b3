"""The writer never drops what it accepted without counting it, and says why."""

import itertools
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from greenprof.store.reader import RunStore
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter


def _deny_step_inserts(action: int, table: str | None, *_: object) -> int:
    """An authorizer: the next commit fails with a real SQLite error, as a full disk would."""
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_INSERT and table == "steps" else 0


def _steps(first: int, count: int) -> list[tuple[object, ...]]:
    return [(i, 0, i * 0.1, (i + 1) * 0.1, 4, 1.5, 0, 0.25) for i in range(first, first + count)]


def _writer(path: Path, **options: object) -> StoreWriter:
    writer = StoreWriter(path, flush_interval_s=3600, **options)  # type: ignore[arg-type]
    writer.create_run(RunSpec("faults", started_at=1.0, interval_s=0.1))
    return writer


def test_a_failed_commit_keeps_its_rows_and_logs_the_real_error(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _writer(db_path)
    writer.sink.conn.set_authorizer(_deny_step_inserts)
    writer.add_steps(_steps(0, 50))
    with pytest.raises(sqlite3.DatabaseError):
        writer.flush()
    writer.add_steps(_steps(50, 50))
    with pytest.raises(sqlite3.DatabaseError):
        writer.flush()
    health = writer.health()
    assert health.pending_rows == 100
    assert health.failing_since_s is not None
    writer.sink.conn.set_authorizer(None)
    writer.flush()
    writer.close()
    assert [s.step for s in RunStore(db_path).steps(1)] == list(range(100))
    assert RunStore(db_path).run(1).status == "completed"
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not authorized" in messages
    assert "cannot rollback" not in messages
    assert "again after" in messages


def test_past_the_backlog_bound_steps_are_counted_lost_and_the_run_says_so(
    db_path: Path,
) -> None:
    writer = _writer(db_path, max_backlog_steps=100, close_timeout_s=0.3)
    writer.sink.conn.set_authorizer(_deny_step_inserts)
    writer.add_steps(_steps(0, 80))
    writer.add_steps(_steps(80, 70))  # 50 over the bound
    assert writer.health().lost_steps == 50
    writer.sink.conn.set_authorizer(None)
    writer.close(status="completed")
    run = RunStore(db_path).run(1)
    assert run.status == "incomplete"
    assert run.error is not None and "50 step(s) not stored" in run.error
    assert len(RunStore(db_path).steps(1)) == 100
    assert sqlite3.connect(db_path).execute("SELECT lost_steps FROM runs").fetchone() == (50,)


def test_samples_are_thinned_not_lost_without_bound_during_an_outage(db_path: Path) -> None:
    writer = _writer(db_path, max_backlog_samples=1000)
    writer.add_samples([("gpu:0", i * 0.1, float(i), 10.0, None, None, None) for i in range(1500)])
    health = writer.health()
    assert health.pending_rows <= 1000
    assert health.thinned_samples == 1500 - health.pending_rows
    writer.close()
    times = [s.time_s for s in RunStore(db_path).samples(1)]
    assert times[0] == 0.0
    assert max(b - a for a, b in itertools.pairwise(times)) == pytest.approx(0.2)


def test_unstorable_values_are_repaired_or_counted_never_blocking_the_rest(
    db_path: Path,
) -> None:
    class Scalar:  # what a 0-d tensor or a numpy float offers
        def __float__(self) -> float:
            return 0.75

    writer = _writer(db_path)
    rows = _steps(0, 4)
    rows[1] = (1, 0, 0.1, 0.2, 4, float("nan"), 0, None)  # no energy: cannot be stored
    rows[2] = (2, 0, 0.2, 0.3, 4, 1.5, 0, Scalar())
    rows[3] = (3, 0, 0.3, 0.4, 4, 1.5, 0, float("inf"))
    writer.add_steps(rows)
    writer.set_totals(RunTotals(4, 16, float("nan"), 4.5, 0.4, {}))  # skipped, not fatal
    writer.close()
    steps = {s.step: s for s in RunStore(db_path).steps(1)}
    assert sorted(steps) == [0, 2, 3]
    assert (steps[2].loss, steps[3].loss) == (0.75, None)
    run = RunStore(db_path).run(1)
    assert run.status == "incomplete"
    assert run.error is not None and "not a finite number" in run.error


def test_a_database_deleted_during_the_run_is_restored_with_everything(db_path: Path) -> None:
    writer = _writer(db_path)
    writer.add_steps(_steps(0, 10))
    writer.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    writer.add_steps(_steps(10, 10))
    writer.close()
    assert [s.step for s in RunStore(db_path).steps(1)] == list(range(20))
    assert RunStore(db_path).run(1).status == "completed"
    assert os.stat(db_path).st_mode & 0o777 == 0o600


def test_close_gives_up_within_its_bound_and_reports_what_was_not_stored(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _writer(db_path, close_timeout_s=0.3)
    writer.sink.conn.set_authorizer(
        lambda action, *_: (
            sqlite3.SQLITE_DENY
            if action not in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_TRANSACTION)
            else 0
        )
    )
    writer.add_steps(_steps(0, 7))
    with caplog.at_level(logging.ERROR, logger="greenprof"):
        writer.close()
    assert any("7 step(s) of run 1 could not be stored" in r.getMessage() for r in caplog.records)
    assert RunStore(db_path).steps(1) == []


def test_open_writer_without_a_db_writes_the_default_database(tmp_path: Path) -> None:
    """``$GREENPROF_DB`` (set per test by conftest) is the default, as for RunStore."""
    from greenprof.store.writer import open_writer

    writer = open_writer(None)
    run_id = writer.create_run(RunSpec("default", started_at=1.0, interval_s=0.1))
    writer.close()
    assert writer.path == tmp_path / "default-runs.db"
    assert RunStore().run(run_id).name == "default"

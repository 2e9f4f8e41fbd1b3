import sqlite3
from pathlib import Path

import pytest

from greenprof.errors import NotAGreenprofDatabase, SchemaTooNew, StoreError
from greenprof.records import Bounds, DeviceInfo
from greenprof.store.reader import RunStore
from greenprof.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, connect, migrate
from greenprof.store.writer import RunSpec, open_writer


def test_new_database_is_created_in_wal_mode_with_our_identity(db_path: Path) -> None:
    conn = connect(db_path, create=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "devices", "steps", "step_energy", "samples"} <= tables


def test_a_text_file_is_refused_and_left_untouched(db_path: Path) -> None:
    db_path.write_text("my notes, not a database\n")
    with pytest.raises(NotAGreenprofDatabase, match="not a SQLite database"):
        connect(db_path, create=True)
    assert db_path.read_text() == "my notes, not a database\n"


def test_another_applications_sqlite_file_is_refused_and_left_untouched(db_path: Path) -> None:
    foreign = sqlite3.connect(db_path)
    foreign.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    foreign.commit()
    foreign.close()
    before = db_path.read_bytes()
    with pytest.raises(NotAGreenprofDatabase, match="another application"):
        RunStore(db_path)
    with pytest.raises(NotAGreenprofDatabase):
        connect(db_path, create=True)
    assert db_path.read_bytes() == before
    assert not Path(f"{db_path}-wal").exists()


def test_reading_a_missing_database_says_how_to_create_one(db_path: Path) -> None:
    with pytest.raises(StoreError, match="greenprof demo"):
        RunStore(db_path)
    assert not db_path.exists()


def test_database_from_a_newer_greenprof_is_refused(db_path: Path) -> None:
    connect(db_path, create=True).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaTooNew, match="upgrade greenprof"):
        RunStore(db_path)


def test_forward_migration_keeps_existing_rows(db_path: Path) -> None:
    conn = connect(db_path, create=True)
    conn.execute(
        "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
        " greenprof_version) VALUES ('old', 'completed', 1, 1, 'h', 1, 0.1, '0')"
    )
    upgrade = "ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '';"
    assert migrate(conn, (*MIGRATIONS, upgrade)) == SCHEMA_VERSION + 1
    assert conn.execute("SELECT name, notes FROM runs").fetchall() == [("old", "")]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_failed_migration_rolls_back_completely(db_path: Path) -> None:
    conn = connect(db_path, create=True)
    broken = "ALTER TABLE runs ADD COLUMN a TEXT; ALTER TABLE no_such_table ADD COLUMN b TEXT;"
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (*MIGRATIONS, broken))
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert "a" not in columns
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_v4_gives_every_existing_run_its_own_uid(db_path: Path) -> None:
    """A file written before v4 gets a distinct uid per run, so merge/push can tell runs apart."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    migrate(conn, MIGRATIONS[:3])
    for name in ("a", "b", "c"):
        conn.execute(
            "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
            " greenprof_version) VALUES (?, 'completed', 1, 1, 'h', 1, 0.1, '0')",
            (name,),
        )
    conn.close()
    upgraded = connect(db_path, create=False)
    uids = [uid for (uid,) in upgraded.execute("SELECT uid FROM runs ORDER BY name")]
    assert len(set(uids)) == 3 and all(len(uid) == 32 for uid in uids)
    with pytest.raises(sqlite3.IntegrityError):
        upgraded.execute("UPDATE runs SET uid = ? WHERE name = 'b'", (uids[0],))


def test_a_v4_file_gains_step_bounds_as_not_known_and_new_steps_store_theirs(
    db_path: Path,
) -> None:
    """Runs recorded before v5 read back without bounds (None, not 0 J) and without a power
    window; a run written after the upgrade stores and reads its bounds."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    assert migrate(conn, MIGRATIONS[:4]) == 4
    conn.execute(
        "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
        " greenprof_version, uid) VALUES ('old', 'completed', 1, 1, 'h', 1, 0.1, '0', 'u1')"
    )
    conn.execute(
        "INSERT INTO devices (run_id, device, kind, method) VALUES (1, 'gpu:0', 'gpu', 'counter')"
    )
    conn.execute(
        "INSERT INTO steps (run_id, step, start_s, end_s, energy_j) VALUES (1, 0, 0, 1, 5)"
    )
    conn.execute("INSERT INTO step_energy VALUES (1, 0, 'gpu:0', 5)")
    conn.close()
    writer = open_writer(str(db_path))
    run_id = writer.create_run(
        RunSpec(
            "new",
            started_at=2.0,
            interval_s=0.1,
            devices=[DeviceInfo("gpu:0", "gpu", "counter", power_window_s=1.0)],
        )
    )
    writer.add_steps(
        [(0, 0, 0.0, 1.0, 8, 4.0, 0, None, 0, 0.25, 0.5, 0.125)], [(0, "gpu:0", 4.0, 0.875)]
    )
    writer.close()
    with RunStore(db_path) as store:
        (old,) = store.step_batch(1, after_step=-1, size=5)
        assert (old.energy_j, old.bounds, old.device_uncertainty_j) == (5.0, None, {})
        assert store.run(1).devices[0].power_window_s is None
        (new,) = store.step_batch(run_id, after_step=-1, size=5)
        assert new.bounds == Bounds(0.25, 0.5, 0.125)
        assert new.energy_uncertainty_j == 0.875 and new.device_uncertainty_j == {"gpu:0": 0.875}
        assert store.run(run_id).devices[0].power_window_s == 1.0

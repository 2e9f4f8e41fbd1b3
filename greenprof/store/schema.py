"""The SQLite schema, its migrations, and how a greenprof database is opened.

A greenprof database carries ``PRAGMA application_id = APPLICATION_ID`` and its schema
version in ``PRAGMA user_version``. A file that is not ours is never modified: it is
checked before anything is written. Migrations only go forward.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from greenprof.errors import NotAGreenprofDatabase, SchemaTooNew, StoreError

APPLICATION_ID = 0x47505246  # "GPRF"
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5000

SCHEMA_V1 = """
CREATE TABLE runs (
    run_id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL,
    status              TEXT NOT NULL,      -- running | completed | failed | interrupted
    started_at          REAL NOT NULL,      -- Unix seconds (UTC)
    ended_at            REAL,
    heartbeat_at        REAL NOT NULL,      -- last write by the run's process (Unix seconds)
    host                TEXT NOT NULL,
    pid                 INTEGER NOT NULL,
    rank                INTEGER,
    world_size          INTEGER,
    framework           TEXT NOT NULL DEFAULT '',
    tags                TEXT NOT NULL DEFAULT '{}',   -- JSON object of strings
    interval_s          REAL NOT NULL,
    expected_steps      INTEGER,
    country             TEXT,
    region              TEXT,
    pue                 REAL NOT NULL DEFAULT 1.0,
    intensity_g_per_kwh REAL,
    intensity_source    TEXT,
    steps               INTEGER NOT NULL DEFAULT 0,
    samples             INTEGER,            -- training samples over all steps
    energy_j            REAL NOT NULL DEFAULT 0,    -- all devices, whole run
    step_energy_j       REAL NOT NULL DEFAULT 0,    -- sum of step energies
    duration_s          REAL NOT NULL DEFAULT 0,
    error               TEXT,
    greenprof_version   TEXT NOT NULL
);
CREATE INDEX runs_by_name ON runs (name, started_at);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE devices (
    run_id        INTEGER NOT NULL,
    device        TEXT NOT NULL,                -- gpu:0, cpu:0, dram:0
    kind          TEXT NOT NULL,                -- gpu | cpu | dram | other
    method        TEXT NOT NULL,                -- counter | power_integration | model | simulated
    name          TEXT NOT NULL DEFAULT '',
    uuid          TEXT,
    power_limit_w REAL,
    idle_power_w  REAL,
    node_wide     INTEGER NOT NULL DEFAULT 0,
    note          TEXT NOT NULL DEFAULT '',
    energy_j      REAL NOT NULL DEFAULT 0,      -- this device, whole run
    PRIMARY KEY (run_id, device)
) WITHOUT ROWID;

CREATE TABLE steps (
    run_id       INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    epoch        INTEGER NOT NULL DEFAULT 0,
    start_s      REAL NOT NULL,                 -- seconds since the run started
    end_s        REAL NOT NULL,
    samples      INTEGER,
    energy_j     REAL NOT NULL,                 -- all devices
    interpolated INTEGER NOT NULL DEFAULT 0,
    loss         REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

CREATE TABLE step_energy (
    run_id   INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    device   TEXT NOT NULL,
    energy_j REAL NOT NULL,
    PRIMARY KEY (run_id, step, device)
) WITHOUT ROWID;

CREATE TABLE samples (
    run_id            INTEGER NOT NULL,
    device            TEXT NOT NULL,
    time_s            REAL NOT NULL,            -- seconds since the run started
    energy_j          REAL,                     -- cumulative since the run started
    power_w           REAL,
    utilization_pct   REAL,
    memory_used_bytes INTEGER,
    temperature_c     REAL,
    PRIMARY KEY (run_id, device, time_s)
) WITHOUT ROWID;

CREATE VIEW epochs AS
    SELECT run_id, epoch, COUNT(*) AS steps, MIN(start_s) AS start_s, MAX(end_s) AS end_s,
           SUM(samples) AS samples, SUM(energy_j) AS energy_j
    FROM steps GROUP BY run_id, epoch;
"""

MIGRATIONS: tuple[str, ...] = (SCHEMA_V1,)
"""``MIGRATIONS[i]`` takes a database from user_version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


def check_file(path: Path) -> bool:
    """Whether ``path`` may hold a greenprof database; True if it exists with content.

    Raises :class:`NotAGreenprofDatabase` for a file that is not SQLite at all.
    """
    if not path.exists():
        return False
    if path.is_dir():
        raise NotAGreenprofDatabase(f"{path} is a directory, not a greenprof database file")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return False
    if header != SQLITE_HEADER:
        raise NotAGreenprofDatabase(
            f"{path} is not a SQLite database, so not a greenprof one; it was left untouched. "
            "Pick another path with --db or $GREENPROF_DB."
        )
    return True


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open (and if ``create``, initialise or migrate) the database at ``path``.

    The file's identity is checked before anything is written to it.
    """
    existed = check_file(path)
    if not existed and not create:
        raise StoreError(
            f"no greenprof database at {path}: profile a run first (e.g. `greenprof demo`), "
            "or point --db / $GREENPROF_DB at an existing one"
        )
    if not existed:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        _check_identity(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise NotAGreenprofDatabase(
            f"{path} cannot be read as SQLite ({exc}); left untouched"
        ) from exc
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{path} has schema version {version}, newer than this greenprof understands "
                f"({SCHEMA_VERSION}): upgrade greenprof (`pip install -U greenprof`)"
            )
        return
    if tables:
        raise NotAGreenprofDatabase(
            f"{path} is a SQLite database of another application (application_id={app_id}); "
            "greenprof left it untouched. Pick another path with --db or $GREENPROF_DB."
        )


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Apply the missing forward migrations in one transaction each; return the new version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    while version < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(migrations):
                conn.execute("COMMIT")
                break
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
    return version


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    text = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    statements, buffer = [], ""
    for piece in text.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements

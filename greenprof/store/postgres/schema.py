"""The PostgreSQL schema: the SQLite schema's tables, columns and migrations, and its identity.

A greenprof database holds ``greenprof_meta`` with ``application = greenprof`` and the
schema version (the same numbering as SQLite's ``user_version``). A database that has
tables but no marker is not ours and is never modified. Initialising and migrating run
in one transaction under an advisory lock, so many ranks starting at once on an empty
database create the schema once. ``run_id`` comes from a sequence: unique across every
process on every host.
"""

from __future__ import annotations

from typing import Any

from greenprof.errors import NotAGreenprofDatabase, SchemaTooNew, StoreError
from greenprof.store.postgres.connect import redact
from greenprof.store.schema import APPLICATION_ID, REQUIRED_COLUMNS

APPLICATION = "greenprof"
META_TABLE = "greenprof_meta"

PG_V1 = """
CREATE TABLE runs (
    run_id              BIGSERIAL PRIMARY KEY,
    name                TEXT NOT NULL,
    status              TEXT NOT NULL,
    started_at          DOUBLE PRECISION NOT NULL,
    ended_at            DOUBLE PRECISION,
    heartbeat_at        DOUBLE PRECISION NOT NULL,
    host                TEXT NOT NULL,
    pid                 BIGINT NOT NULL,
    rank                INTEGER,
    world_size          INTEGER,
    framework           TEXT NOT NULL DEFAULT '',
    tags                TEXT NOT NULL DEFAULT '{}',
    interval_s          DOUBLE PRECISION NOT NULL,
    expected_steps      BIGINT,
    country             TEXT,
    region              TEXT,
    pue                 DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    intensity_g_per_kwh DOUBLE PRECISION,
    intensity_source    TEXT,
    steps               BIGINT NOT NULL DEFAULT 0,
    samples             BIGINT,
    energy_j            DOUBLE PRECISION NOT NULL DEFAULT 0,
    step_energy_j       DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_s          DOUBLE PRECISION NOT NULL DEFAULT 0,
    error               TEXT,
    greenprof_version   TEXT NOT NULL
);
CREATE INDEX runs_by_name ON runs (name, started_at);
CREATE INDEX runs_by_status ON runs (status);
CREATE TABLE devices (
    run_id        BIGINT NOT NULL,
    device        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    method        TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    uuid          TEXT,
    power_limit_w DOUBLE PRECISION,
    idle_power_w  DOUBLE PRECISION,
    node_wide     INTEGER NOT NULL DEFAULT 0,
    note          TEXT NOT NULL DEFAULT '',
    energy_j      DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, device)
);
CREATE TABLE steps (
    run_id       BIGINT NOT NULL,
    step         BIGINT NOT NULL,
    epoch        BIGINT NOT NULL DEFAULT 0,
    start_s      DOUBLE PRECISION NOT NULL,
    end_s        DOUBLE PRECISION NOT NULL,
    samples      BIGINT,
    energy_j     DOUBLE PRECISION NOT NULL,
    interpolated INTEGER NOT NULL DEFAULT 0,
    loss         DOUBLE PRECISION,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE step_energy (
    run_id   BIGINT NOT NULL,
    step     BIGINT NOT NULL,
    device   TEXT NOT NULL,
    energy_j DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, step, device)
);
CREATE TABLE samples (
    run_id            BIGINT NOT NULL,
    device            TEXT NOT NULL,
    time_s            DOUBLE PRECISION NOT NULL,
    energy_j          DOUBLE PRECISION,
    power_w           DOUBLE PRECISION,
    utilization_pct   DOUBLE PRECISION,
    memory_used_bytes BIGINT,
    temperature_c     DOUBLE PRECISION,
    PRIMARY KEY (run_id, device, time_s)
);
CREATE VIEW epochs AS
    SELECT run_id, epoch, COUNT(*) AS steps, MIN(start_s) AS start_s, MAX(end_s) AS end_s,
           SUM(samples) AS samples, SUM(energy_j) AS energy_j
    FROM steps GROUP BY run_id, epoch;
"""

PG_V2 = """
ALTER TABLE steps ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lost_steps BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN rejected_readings BIGINT NOT NULL DEFAULT 0;
CREATE TABLE pending_steps (
    run_id  BIGINT NOT NULL,
    step    BIGINT NOT NULL,
    epoch   BIGINT NOT NULL DEFAULT 0,
    start_s DOUBLE PRECISION NOT NULL,
    end_s   DOUBLE PRECISION NOT NULL,
    samples BIGINT,
    loss    DOUBLE PRECISION,
    PRIMARY KEY (run_id, step)
);
"""

PG_V3 = """
ALTER TABLE runs ADD COLUMN job_id TEXT;
ALTER TABLE runs ADD COLUMN local_rank INTEGER;
ALTER TABLE runs ADD COLUMN setup_s DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN setup_energy_j DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX runs_by_job ON runs (job_id, rank);
"""

PG_V4 = """
ALTER TABLE runs ADD COLUMN uid TEXT;
UPDATE runs SET uid = md5(random()::text || clock_timestamp()::text || run_id::text);
ALTER TABLE runs ALTER COLUMN uid SET NOT NULL;
CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
"""

PG_V5 = """
ALTER TABLE steps ADD COLUMN energy_uncertainty_j DOUBLE PRECISION;
ALTER TABLE steps ADD COLUMN uncertainty_start_j DOUBLE PRECISION;
ALTER TABLE steps ADD COLUMN uncertainty_end_j DOUBLE PRECISION;
ALTER TABLE steps ADD COLUMN uncertainty_interior_j DOUBLE PRECISION;
ALTER TABLE step_energy ADD COLUMN energy_uncertainty_j DOUBLE PRECISION;
ALTER TABLE devices ADD COLUMN power_window_s DOUBLE PRECISION;
"""

PG_MIGRATIONS: tuple[str, ...] = (PG_V1, PG_V2, PG_V3, PG_V4, PG_V5)
"""``PG_MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``: the same versions
and meanings as :data:`greenprof.store.schema.MIGRATIONS` (checked by a test)."""

PG_SCHEMA_VERSION = len(PG_MIGRATIONS)


def prepare_database(conn: Any, url: str, *, create: bool = True) -> int:
    """Check that the database is greenprof's (or empty: then initialise it, if ``create``)
    and migrate it forward; return the schema version. Errors name the database, never
    the password."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))
        version = _version(conn, url, create=create)
        while version < PG_SCHEMA_VERSION:
            for statement in _statements(PG_MIGRATIONS[version]):
                conn.execute(statement)
            version += 1
            conn.execute(
                f"UPDATE {META_TABLE} SET value = %s WHERE key = 'schema_version'", (str(version),)
            )
    check_columns(conn, url)
    return version


def _version(conn: Any, url: str, *, create: bool) -> int:
    where = redact(url)
    has_meta = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (META_TABLE,)).fetchone()[0]
    if has_meta:
        meta = dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
        if meta.get("application") != APPLICATION:
            raise NotAGreenprofDatabase(
                f"{where} has a {META_TABLE} table that is not greenprof's; greenprof left the "
                "database untouched. Use another database."
            )
        version = int(meta.get("schema_version", "0"))
        if version > PG_SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{where} has schema version {version}, newer than this greenprof understands "
                f"({PG_SCHEMA_VERSION}): upgrade greenprof (`pip install -U greenprof`)"
            )
        return version
    (tables,) = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchone()
    if tables:
        raise NotAGreenprofDatabase(
            f"{where} holds {tables} table(s) of another application and no greenprof marker; "
            "greenprof left it untouched. Create a database for greenprof (createdb greenprof)."
        )
    if not create:
        raise StoreError(f"{where} has no greenprof runs yet: profile a run into it first")
    conn.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        f"INSERT INTO {META_TABLE} (key, value) VALUES ('application', %s),"
        " ('schema_version', '0')",
        (APPLICATION,),
    )
    return 0


def check_columns(conn: Any, url: str) -> None:
    """A greenprof database whose tables were altered gets one clear error."""
    columns: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        columns.setdefault(table, set()).add(column)
    for table, required in REQUIRED_COLUMNS.items():
        missing = sorted(required - columns.get(table, set()))
        if missing:
            what = "is missing" if table not in columns else f"lacks {', '.join(missing)}"
            raise StoreError(
                f"{redact(url)} is a greenprof database whose table {table} {what}: it was "
                "altered; restore it from a backup or use another database"
            )


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]

"""The SQLite schema of a greenprof database: its tables, forward migrations and the
columns the readers rely on. Kept apart from how a file is opened (``schema``), which
re-exports every name here. The README documents these tables: they are a user interface
(people query them with SQL, sqlite-utils or Datasette).
"""

from __future__ import annotations

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
    tags                TEXT NOT NULL DEFAULT '{}',   -- JSON object: text, number, boolean values
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

SCHEMA_V2 = """
ALTER TABLE steps ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;  -- records.STEP_* bits
ALTER TABLE runs ADD COLUMN lost_steps INTEGER NOT NULL DEFAULT 0; -- accepted, never stored
ALTER TABLE devices ADD COLUMN rejected_readings INTEGER NOT NULL DEFAULT 0;
CREATE TABLE pending_steps (
    run_id  INTEGER NOT NULL,
    step    INTEGER NOT NULL,
    epoch   INTEGER NOT NULL DEFAULT 0,
    start_s REAL NOT NULL,
    end_s   REAL NOT NULL,
    samples INTEGER,
    loss    REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""
"""v2: step flags, lost-step counts, rejected readings, and ``pending_steps``: step
boundaries stored as soon as the sampler sees them, before their energy is known, so that
a crashed run can be attributed afterwards from its stored readings."""

SCHEMA_V3 = """
ALTER TABLE runs ADD COLUMN job_id TEXT;          -- the job a rank belongs to (greenprof.jobs)
ALTER TABLE runs ADD COLUMN local_rank INTEGER;
ALTER TABLE runs ADD COLUMN setup_s REAL NOT NULL DEFAULT 0;        -- start to first step
ALTER TABLE runs ADD COLUMN setup_energy_j REAL NOT NULL DEFAULT 0; -- all devices, setup
CREATE INDEX runs_by_job ON runs (job_id, rank);
"""
"""v3: jobs (``job_id``, ``local_rank``; ``rank``, ``world_size`` and ``host`` exist) and the
setup phase (time and energy before the first step: imports, data loading, compilation)."""

SCHEMA_V4 = """
ALTER TABLE runs ADD COLUMN uid TEXT;             -- unique across stores (merge, push)
UPDATE runs SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
"""
"""v4: a run's ``uid``, the same in every store it is copied to: ``greenprof merge`` and
``greenprof push`` skip a run the target already holds (copying twice copies nothing twice),
while ``run_id`` stays each store's own."""

SCHEMA_V5 = """
ALTER TABLE steps ADD COLUMN energy_uncertainty_j REAL;   -- bound on |energy_j - truth| (95 %)
ALTER TABLE steps ADD COLUMN uncertainty_start_j REAL;    -- its part at the step's start
ALTER TABLE steps ADD COLUMN uncertainty_end_j REAL;      -- its part at the step's end
ALTER TABLE steps ADD COLUMN uncertainty_interior_j REAL; -- its part inside the step
ALTER TABLE step_energy ADD COLUMN energy_uncertainty_j REAL; -- this device's bound
ALTER TABLE devices ADD COLUMN power_window_s REAL;       -- what a power reading averages over
"""
"""v5: each step's energy carries a bound on its error (``energy_uncertainty_j``, per device
in ``step_energy``), and its parts, because a sum over contiguous steps cancels the
boundaries they share (:func:`greenprof.energy.window_uncertainty_j`): summing the column
overstates a window's bound. NULL where no bound is known (runs recorded before v5, steps
recovered after a crash). ``devices.power_window_s``: what the device's power readings
average over (NULL: instantaneous, or not known)."""

MIGRATIONS: tuple[str, ...] = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5)
"""``MIGRATIONS[i]`` takes a database from user_version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)

REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "runs": frozenset(
        [
            "run_id",
            "name",
            "status",
            "started_at",
            "ended_at",
            "heartbeat_at",
            "host",
            "pid",
            "rank",
            "world_size",
            "framework",
            "tags",
            "interval_s",
            "expected_steps",
            "country",
            "region",
            "pue",
            "intensity_g_per_kwh",
            "intensity_source",
            "steps",
            "samples",
            "energy_j",
            "step_energy_j",
            "duration_s",
            "error",
            "greenprof_version",
            "lost_steps",
            "job_id",
            "local_rank",
            "setup_s",
            "setup_energy_j",
            "uid",
        ]
    ),
    "devices": frozenset(
        [
            "run_id",
            "device",
            "kind",
            "method",
            "name",
            "uuid",
            "power_limit_w",
            "idle_power_w",
            "node_wide",
            "note",
            "energy_j",
            "rejected_readings",
            "power_window_s",
        ]
    ),
    "steps": frozenset(
        [
            "run_id",
            "step",
            "epoch",
            "start_s",
            "end_s",
            "samples",
            "energy_j",
            "interpolated",
            "loss",
            "flags",
            "energy_uncertainty_j",
            "uncertainty_start_j",
            "uncertainty_end_j",
            "uncertainty_interior_j",
        ]
    ),
    "step_energy": frozenset(["run_id", "step", "device", "energy_j", "energy_uncertainty_j"]),
    "pending_steps": frozenset(["run_id", "step", "epoch", "start_s", "end_s", "samples", "loss"]),
    "samples": frozenset(
        [
            "run_id",
            "device",
            "time_s",
            "energy_j",
            "power_w",
            "utilization_pct",
            "memory_used_bytes",
            "temperature_c",
        ]
    ),
}
"""What the read API relies on (every version's columns; checked after migrating)."""

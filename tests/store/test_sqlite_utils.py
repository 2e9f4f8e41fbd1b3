"""The database is a user interface: it opens cleanly in sqlite-utils (and so Datasette)."""

from __future__ import annotations

import time
from pathlib import Path

from greenprof.records import CarbonSettings, DeviceInfo
from greenprof.store.reader import RunStore
from greenprof.store.schema import SCHEMA_VERSION
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

GPU = DeviceInfo("gpu:0", "gpu", "counter", name="Test GPU")


def _write(path: Path) -> int:
    writer = StoreWriter(path, flush_interval_s=60)
    run_id = writer.create_run(
        RunSpec(
            "resnet",
            started_at=time.time(),
            interval_s=0.1,
            devices=[GPU],
            carbon=CarbonSettings(400.0, 1.2, "test", "DEU"),
            tags={"bs": "64"},
        )
    )
    writer.add_steps(
        [(i, i // 5, 0.1 * i, 0.1 * i + 0.1, 32, 2.0, 0, 1.0 / (i + 1)) for i in range(12)],
        [(i, "gpu:0", 2.0) for i in range(12)],
    )
    writer.add_samples([("gpu:0", 0.5, 1.0, 100.0, 50.0, None, 60.0)])
    writer.set_totals(RunTotals(12, 384, 30.0, 24.0, 1.2, {"gpu:0": 30.0}))
    writer.close(status="completed")
    return run_id


def test_a_greenprof_database_reads_cleanly_in_sqlite_utils(db_path: Path) -> None:
    import sqlite_utils

    run_id = _write(db_path)
    db = sqlite_utils.Database(db_path)
    try:
        assert {"runs", "devices", "steps", "step_energy", "samples"} <= set(db.table_names())
        assert "epochs" in db.view_names()
        (run,) = db["runs"].rows
        assert (run["run_id"], run["name"], run["status"], run["steps"]) == (
            run_id,
            "resnet",
            "completed",
            12,
        )
        steps = list(db["steps"].rows_where("run_id = ?", [run_id], order_by="step"))
        assert [s["step"] for s in steps] == list(range(12))
        assert sum(s["energy_j"] for s in steps) == 24.0
        assert db["steps"].pks == ["run_id", "step"]
        assert [e["steps"] for e in db["epochs"].rows] == [5, 5, 2]
        assert db["devices"].get((run_id, "gpu:0"))["method"] == "counter"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()
    with RunStore(db_path) as store:  # untouched: greenprof still reads it
        assert store.run(run_id).steps == 12

"""The in-memory SQLite store: what the writer stores, RunStore reads; no file anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenprof.errors import StoreError
from greenprof.store.memory import memory_store
from greenprof.store.reader import RunStore
from greenprof.store.writer import RunSpec, RunTotals, open_writer


def test_the_writer_and_the_reader_share_an_in_memory_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with memory_store("shared") as location:
        writer = open_writer(location, flush_interval_s=0.05)
        run_id = writer.create_run(RunSpec("in-memory", started_at=1.0, interval_s=0.1))
        writer.add_steps(
            [(i, 0, 0.1 * i, 0.1 * i + 0.1, 2, 1.0, 0, None) for i in range(20)],
            [(i, "cpu:0", 1.0) for i in range(20)],
        )
        writer.set_totals(RunTotals(20, 40, 20.0, 20.0, 2.0, {}))
        writer.close()
        with RunStore(location) as store:
            (run,) = store.runs()
            assert (run.run_id, run.name, run.status, run.steps) == (
                run_id,
                "in-memory",
                "completed",
                20,
            )
            assert [s.step for s in store.steps(run_id)] == list(range(20))
        assert str(location) == "memory://shared"
    assert os.listdir(tmp_path) == []


def test_two_in_memory_stores_are_apart_and_gone_after_the_block() -> None:
    with memory_store("one") as one, memory_store("two") as two:
        writer = open_writer(one)
        writer.create_run(RunSpec("only-in-one", started_at=1.0, interval_s=0.1))
        writer.close()
        open_writer(two).close()
        with RunStore(one) as first, RunStore(two) as second:
            assert [r.name for r in first.runs()] == ["only-in-one"]
            assert second.runs() == []
    with memory_store("one") as again, pytest.raises(StoreError, match="no greenprof runs"):
        RunStore(again)

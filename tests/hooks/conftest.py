"""Shared helpers of the hook tests: deterministic sensors, reading a run back."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dataclasses import dataclass
from pathlib import Path

import pytest

from greenprof.records import EpochRecord, RunInfo, StepRecord
from greenprof.sensors.fake import FakeSensor
from greenprof.store.reader import RunStore


def fake_sensors() -> list[FakeSensor]:
    """One simulated CPU at 50 W: energies without hardware or detection."""
    return [FakeSensor("cpu:0", 50.0)]


@dataclass
class StoredRun:
    run: RunInfo
    steps: list[StepRecord]
    epochs: list[EpochRecord]


def read_runs(db: Path) -> list[StoredRun]:
    """Every run in ``db``, oldest first, with its steps and epochs."""
    with RunStore(db) as store:
        runs = sorted(store.runs(), key=lambda r: r.run_id)
        return [StoredRun(r, store.steps(r.run_id), store.epochs(r.run_id)) for r in runs]


def only_run(db: Path) -> StoredRun:
    runs = read_runs(db)
    assert len(runs) == 1, [r.run.name for r in runs]
    return runs[0]


def assert_consistent(stored: StoredRun) -> None:
    """Per-step energies sum to the run's step energy; every step has some energy."""
    total = sum(s.energy_j for s in stored.steps)
    assert total == pytest.approx(stored.run.step_energy_j, rel=1e-6, abs=1e-9)
    assert stored.run.steps == len(stored.steps)
    assert [s.step for s in stored.steps] == list(range(len(stored.steps)))
    assert all(s.energy_j >= 0 for s in stored.steps)

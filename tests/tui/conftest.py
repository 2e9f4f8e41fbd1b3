"""Fixtures of the terminal-UI tests: realistic databases written with StoreWriter."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from greenprof.records import CarbonSettings, DeviceInfo, RunStatus
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

T = TypeVar("T")

T0 = 1_700_000_000.0
"""A fixed wall-clock start (2023-11-14), so screens are deterministic."""

CARBON = CarbonSettings(
    intensity_g_per_kwh=400.0, pue=1.2, source="test grid data, 2023", country="DEU"
)
DEVICES = (
    DeviceInfo("cpu:0", "cpu", "model", name="Test CPU", node_wide=True),
    DeviceInfo("gpu:0", "gpu", "counter", name="NVIDIA H100", idle_power_w=60.0),
)


def write_run(
    path: Path,
    name: str,
    *,
    steps: int = 200,
    batch_size: int = 64,
    step_j: float = 50.0,
    step_s: float = 0.25,
    status: RunStatus = "completed",
    started_at: float = T0,
    epochs: int = 2,
    loss: bool = True,
    tags: dict[str, str] | None = None,
    expected_steps: int | None = None,
    bounds: bool = False,
) -> int:
    """Write one finished run: steps with per-device energy (GPU 80 %, CPU 20 %), samples;
    with ``bounds``, each step's error bound as greenprof states it (1 % of the step at
    each boundary, contiguous steps sharing theirs, and a 0.5 % interior term)."""
    writer = StoreWriter(path, flush_interval_s=60, wall_clock=lambda: started_at + steps * step_s)
    run_id = writer.create_run(
        RunSpec(
            name,
            started_at=started_at,
            interval_s=0.1,
            devices=DEVICES,
            carbon=CARBON,
            framework="torch",
            tags=tags if tags is not None else {"batch_size": str(batch_size)},
            expected_steps=expected_steps,
            host="testhost",
            pid=4242,
            greenprof_version="0.1.0",
        )
    )
    rows, energies = [], []
    samples: list[tuple[str, float, float, float, float | None, int | None, float | None]] = []
    per_epoch = max(1, steps // epochs)
    for step in range(steps):
        energy = step_j * (1.0 + 0.1 * math.sin(step))
        value = (2.0 * math.exp(-step * batch_size / 4000) + 0.2) if loss else None
        row = (step, step // per_epoch, step * step_s, (step + 1) * step_s, batch_size)
        if not bounds:
            rows.append((*row, energy, 0, value))
            energies += [(step, "gpu:0", energy * 0.8), (step, "cpu:0", energy * 0.2)]
            continue
        edge_j, interior_j = 0.01 * step_j, 0.005 * energy
        rows.append((*row, energy, 0, value, 0, edge_j, edge_j, interior_j))
        bound_j = 2 * edge_j + interior_j
        energies += [
            (step, "gpu:0", energy * 0.8, bound_j * 0.8),
            (step, "cpu:0", energy * 0.2, bound_j * 0.2),
        ]
    for tick in range(int(steps * step_s / 0.5)):
        t = tick * 0.5
        samples.append(
            ("gpu:0", t, t * step_j / step_s * 0.8, step_j / step_s * 0.8, 90.0, 8 << 30, 61.0)
        )
        samples.append(
            ("cpu:0", t, t * step_j / step_s * 0.2, step_j / step_s * 0.2, None, None, None)
        )
    writer.add_steps(rows, energies)
    writer.add_samples(samples)
    total = sum(row[5] for row in rows)
    writer.set_totals(
        RunTotals(
            steps,
            steps * batch_size,
            total * 1.02,
            total,
            steps * step_s,
            {"gpu:0": total * 0.82, "cpu:0": total * 0.2},
        )
    )
    writer.close(status=status)
    return run_id


@pytest.fixture
def two_runs_db(tmp_path: Path) -> Path:
    """Two finished runs of one model at batch sizes 64 and 128 (bs128 cheaper per sample)."""
    path = tmp_path / "runs.db"
    write_run(path, "resnet-bs64", batch_size=64, step_j=50.0, started_at=T0, bounds=True)
    write_run(path, "resnet-bs128", batch_size=128, step_j=80.0, step_s=0.4, started_at=T0 + 600)
    return path


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    """A valid greenprof database without runs."""
    from greenprof.store.schema import connect

    path = tmp_path / "empty.db"
    connect(path, create=True).close()
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never touch the home directory's database; stable colours and time zone."""
    monkeypatch.setenv("GREENPROF_DB", str(tmp_path / "default.db"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body (the suite does not depend on pytest-asyncio)."""

    async def main() -> T:
        return await factory()

    return asyncio.run(main())

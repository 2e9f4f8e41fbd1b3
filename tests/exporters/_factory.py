"""Realistic run databases for the exporter tests, written through the store's writer."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from greenprof.records import CarbonSettings, DeviceInfo, TagValue
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

T0 = 1_740_000_000.0  # 2025-02-19T21:20:00Z
CARBON = CarbonSettings(
    intensity_g_per_kwh=380.0,
    pue=1.2,
    source="test grid data, 2023",
    country="DEU",
)
GPU = DeviceInfo("gpu:0", "gpu", "counter", name="NVIDIA H100 80GB HBM3", idle_power_w=60.0)
CPU = DeviceInfo(
    "cpu:0", "cpu", "model", name="AMD EPYC 9454", node_wide=True, note="CPU-load x TDP model"
)


@dataclass
class Built:
    """What a test needs to check exports against."""

    run_id: int
    name: str
    started_at: float
    device_energy_j: dict[str, float] = field(default_factory=dict)
    step_energy_j: float = 0.0
    energy_j: float = 0.0
    steps: int = 0
    samples: int = 0
    duration_s: float = 0.0


def build_run(
    db: Path,
    name: str = "resnet18-bs64",
    *,
    started_at: float = T0,
    steps: int = 40,
    epochs: int = 2,
    step_s: float = 0.5,
    batch: int = 64,
    devices: tuple[DeviceInfo, ...] = (GPU, CPU),
    watts: dict[str, float] | None = None,
    carbon: CarbonSettings | None = CARBON,
    tags: dict[str, TagValue] | None = None,
    rank: int | None = None,
    host: str = "node-a",
    status: str = "completed",
    sample_every_s: float = 0.25,
    setup_s: float = 0.0,
) -> Built:
    """One run with ``steps`` steps, per-device energies and sensor samples; the steps
    start after ``setup_s`` of setup at the devices' full power."""
    watts = watts or {"gpu:0": 250.0, "cpu:0": 40.0}
    end_at = started_at + setup_s + steps * step_s
    writer = StoreWriter(db, flush_interval_s=60, wall_clock=lambda: end_at)
    run_id = writer.create_run(
        RunSpec(
            name,
            started_at=started_at,
            interval_s=sample_every_s,
            devices=devices,
            carbon=carbon,
            framework="torch",
            tags=tags or {},
            rank=rank,
            host=host,
            pid=4242,
            greenprof_version="0.1.0",
        )
    )
    built = Built(run_id, name, started_at)
    per_epoch = max(1, steps // epochs)
    step_rows, energy_rows = [], []
    for step in range(steps):
        start, end = setup_s + step * step_s, setup_s + (step + 1) * step_s
        # Power varies a little between steps, like real training.
        per_device = {
            dev.device: watts[dev.device] * (end - start) * (1 + 0.1 * ((step % 3) - 1))
            for dev in devices
        }
        total = sum(per_device.values())
        step_rows.append((step, step // per_epoch, start, end, batch, total, 0, 2.0 / (step + 1)))
        energy_rows += [(step, device, joules) for device, joules in per_device.items()]
        built.step_energy_j += total
        for device, joules in per_device.items():
            built.device_energy_j[device] = built.device_energy_j.get(device, 0.0) + joules
    writer.add_steps(step_rows, energy_rows)
    setup_energy_j = sum(watts[dev.device] for dev in devices) * setup_s
    for dev in devices:
        built.device_energy_j[dev.device] = (
            built.device_energy_j.get(dev.device, 0.0) + watts[dev.device] * setup_s
        )
    duration = setup_s + steps * step_s
    sample_rows = []
    for dev in devices:
        count = int(duration / sample_every_s) + 1
        for i in range(count):
            t = i * sample_every_s
            sample_rows.append(
                (dev.device, t, watts[dev.device] * t, watts[dev.device], 55.0, None, 61.0)
            )
    writer.add_samples(sample_rows)
    built.energy_j = sum(built.device_energy_j.values())
    built.steps, built.samples, built.duration_s = steps, steps * batch, duration
    writer.set_totals(
        RunTotals(
            steps=steps,
            samples=steps * batch,
            energy_j=built.energy_j,
            step_energy_j=built.step_energy_j,
            duration_s=duration,
            device_energy_j=dict(built.device_energy_j),
            setup_s=setup_s,
            setup_energy_j=setup_energy_j,
        )
    )
    writer.close(status="completed" if status == "running" else status)  # type: ignore[arg-type]
    if status == "running":
        mark_running(db, run_id, heartbeat_at=started_at + duration)
    return built


def mark_running(db: Path, run_id: int, *, heartbeat_at: float) -> None:
    """Make a finished run look like one still being written (heartbeat at ``heartbeat_at``)."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE runs SET status = 'running', ended_at = NULL, heartbeat_at = ?"
            " WHERE run_id = ?",
            (heartbeat_at, run_id),
        )
    conn.close()

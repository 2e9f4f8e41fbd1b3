"""Regenerate the example exports in this directory from a SYNTHETIC database.

    .venv/bin/python docs/examples/make_examples.py

Two simulated training runs (sensors of method ``simulated``, not measurements) are
written through greenprof's store writer into a temporary database; then the real
exporters produce ``emissions.csv``, ``steps.csv`` (first rows), ``runs.csv``,
``metrics.prom``, ``report.md`` and ``report.html`` next to this script. The steps start
after 2 s of setup; the report's "generated" time is fixed, so that regenerating changes
a file only when the exporters changed.
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from greenprof.exporters._common import open_output  # noqa: E402
from greenprof.exporters.codecarbon import write_emissions_csv  # noqa: E402
from greenprof.exporters.csv import write_csv  # noqa: E402
from greenprof.exporters.prometheus import exposition  # noqa: E402
from greenprof.exporters.report import write_report  # noqa: E402
from greenprof.records import CarbonSettings, DeviceInfo  # noqa: E402
from greenprof.store.reader import RunStore  # noqa: E402
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter  # noqa: E402

T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z
CARBON = CarbonSettings(
    intensity_g_per_kwh=344.0,
    pue=1.2,
    source="CodeCarbon global_energy_mix (Our World in Data), 2023",
    country="DEU",
)
DEVICES = (
    DeviceInfo("cpu:0", "cpu", "simulated", name="simulated 16-core CPU", node_wide=True),
    DeviceInfo(
        "gpu:0", "gpu", "simulated", name="simulated NVIDIA A100", idle_power_w=55.0,
        note="synthetic trace for documentation",
    ),
)  # fmt: skip


def synthetic_run(
    db: Path, name: str, *, batch: int, step_s: float, gpu_w: float, start: float
) -> None:
    """3 epochs of steps, with a warm-up and an evaluation pause after each epoch."""
    writer = StoreWriter(db, flush_interval_s=3600, wall_clock=lambda: start + 200)
    writer.create_run(
        RunSpec(name, started_at=start, interval_s=0.1, devices=DEVICES, carbon=CARBON,
                framework="torch", tags={"dataset": "synthetic-cifar10", "batch_size": str(batch)},
                host="example-node", pid=1, greenprof_version="0.1.0")
    )  # fmt: skip
    t, step, steps, energy = 2.0, 0, [], {"cpu:0": 0.0, "gpu:0": 0.0}
    step_energy, samples = [], []

    def power(now: float, training: bool) -> dict[str, float]:
        warm = min(1.0, now / 10)
        wobble = 1 + 0.06 * math.sin(now * 1.7)
        gpu = (55 + (gpu_w - 55) * warm * wobble) if training else 70.0
        return {"cpu:0": 45.0 if training else 30.0, "gpu:0": gpu}

    for epoch in range(3):
        for _ in range(int(40 / step_s)):
            watts = power(t, True)
            joules = {d: w * step_s for d, w in watts.items()}
            steps.append((step, epoch, t, t + step_s, batch, sum(joules.values()), 0, None))
            step_energy += [(step, d, j) for d, j in joules.items()]
            step, t = step + 1, t + step_s
        t += 8.0  # evaluation: no training steps, low power
    duration = t
    now, setup_j = 0.0, 0.0
    while now <= duration:
        training = now >= 2.0 and not any(
            40 + k * 48 + 2 <= now < 48 + k * 48 + 2 for k in range(3)
        )
        for device, watts in power(now, training).items():
            energy[device] += watts * 0.1
            setup_j += watts * 0.1 if now < 2.0 else 0.0
            samples.append((device, round(now, 1), energy[device], watts, None, None, None))
        now += 0.1
    writer.add_steps(steps, step_energy)
    writer.add_samples(samples)
    writer.set_totals(
        RunTotals(len(steps), len(steps) * batch, sum(energy.values()),
                  sum(row[5] for row in steps), duration, dict(energy),
                  setup_s=2.0, setup_energy_j=setup_j)
    )  # fmt: skip
    writer.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "synthetic.db"
        synthetic_run(db, "synthetic-resnet18-bs64", batch=64, step_s=0.25, gpu_w=240, start=T0)
        synthetic_run(
            db, "synthetic-resnet18-bs128", batch=128, step_s=0.4, gpu_w=290, start=T0 + 3600
        )
        with RunStore(db) as store:
            runs = sorted(store.runs(), key=lambda r: r.run_id)
            with open_output(HERE / "emissions.csv") as out:
                write_emissions_csv(store, runs, out)
            buffer = io.StringIO()
            write_csv(store, runs[:1], "steps", buffer)
            with open_output(HERE / "steps.csv") as out:
                out.write("".join(buffer.getvalue().splitlines(keepends=True)[:11]))
            with open_output(HERE / "runs.csv") as out:
                write_csv(store, runs, "runs", out)
            for fmt in ("md", "html"):
                with open_output(HERE / f"report.{fmt}") as out:
                    write_report(store, runs, out, fmt=fmt, clock=lambda: T0 + 7200)
        with open_output(HERE / "metrics.prom") as out:
            out.write("# SYNTHETIC example data (simulated sensors), not a measurement.\n")
            out.write(exposition(db))


if __name__ == "__main__":
    main()

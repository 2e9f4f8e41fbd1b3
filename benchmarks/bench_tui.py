"""Terminal-UI benchmarks: first paint, compare query, live-screen CPU under a 1 kHz writer.

    .venv/bin/python benchmarks/bench_tui.py [--runs 100] [--steps 100000] [--db PATH]
        [--live-s 20]

Targets (DESIGN.md / issue 4), on a database of 100 runs × 100,000 steps (1 device):
first paint of history and compare ≤ 1 s, the compare query ≤ 100 ms, and the live
screen ≤ 5 % of one core at 1 Hz while a run writes 1,000 steps/s.

The database is built once (runs through the store's writer, bulk step rows with plain
executemany) and reused from --db when it already has the requested size. First paint is
measured headless (``App.run_test``) from app construction until the data is on screen,
with Textual already imported (its import time is printed separately). The live CPU share
is this process's CPU time over wall time while the writer runs in a separate process, so
the writer's own cost is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from greenprof.records import CarbonSettings, DeviceInfo  # noqa: E402
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter  # noqa: E402

T0 = 1_740_000_000.0
DEVICES = (DeviceInfo("gpu:0", "gpu", "counter", name="NVIDIA H100", idle_power_w=60.0),)
CARBON = CarbonSettings(380.0, 1.2, "benchmark", "DEU")

WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from greenprof.records import DeviceInfo
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter
writer = StoreWriter(Path({db!r}), flush_interval_s=0.2)
writer.create_run(RunSpec("bench-live", started_at=time.time(), interval_s=0.1,
    devices=(DeviceInfo("gpu:0", "gpu", "counter", idle_power_w=60.0),), expected_steps=10**6))
step, energy, start = 0, 0.0, time.monotonic()
while time.monotonic() - start < {seconds}:
    rows = [(step + i, 0, (step + i) / 1000, (step + i + 1) / 1000, 32, 0.25, 0, None)
            for i in range(100)]
    writer.add_steps(rows, [(r[0], "gpu:0", 0.25) for r in rows])
    t = time.monotonic() - start
    writer.add_samples([("gpu:0", t, energy, 250.0, 95.0, 1 << 30, 70.0)])
    step += 100
    energy += 25.0
    writer.set_totals(RunTotals(step, step * 32, energy, energy, t, {{"gpu:0": energy}}))
    time.sleep(max(0.0, step / 1000 - (time.monotonic() - start)))
writer.close()
print(step)
"""


def build(db: Path, runs: int, steps: int) -> None:
    """Write ``runs`` completed runs of ``steps`` steps each (one device)."""
    if db.exists():
        conn = sqlite3.connect(db)
        count = conn.execute(
            "SELECT count(*), min(steps) FROM runs WHERE name LIKE 'bench-%'"
            " AND name != 'bench-live'"
        ).fetchone()
        conn.close()
        if count == (runs, steps):
            print(f"reusing {db} ({runs} runs × {steps} steps)")
            return
        db.unlink()
    started = time.perf_counter()
    for index in range(runs):
        batch = 32 * (1 + index % 4)
        writer = StoreWriter(db, flush_interval_s=60, wall_clock=lambda: T0)
        run_id = writer.create_run(
            RunSpec(
                f"bench-bs{batch}-{index}",
                started_at=T0 + index * 3600,
                interval_s=0.1,
                devices=DEVICES,
                carbon=CARBON,
                tags={"batch_size": str(batch)},
                framework="torch",
                expected_steps=steps,
            )
        )
        total = steps * batch * 0.01
        writer.set_totals(
            RunTotals(steps, steps * batch, total, total, steps * 0.05, {"gpu:0": total})
        )
        writer.close()
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        energy = [batch * 0.01 * (1 + 0.1 * math.sin(i)) for i in range(steps)]
        conn.executemany(
            "INSERT INTO steps (run_id, step, epoch, start_s, end_s, samples, energy_j,"
            " interpolated, loss) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                (
                    run_id,
                    i,
                    i // 10_000,
                    i * 0.05,
                    (i + 1) * 0.05,
                    batch,
                    energy[i],
                    2.0 / (1 + i * batch / 50_000),
                )
                for i in range(steps)
            ),
        )
        conn.executemany(
            "INSERT INTO step_energy (run_id, step, device, energy_j) VALUES (?, ?, 'gpu:0', ?)",
            ((run_id, i, energy[i]) for i in range(steps)),
        )
        conn.execute("COMMIT")
        conn.close()
        if index % 10 == 9:
            print(f"  built {index + 1}/{runs} runs ({time.perf_counter() - started:.0f} s)")


async def first_paint(app_factory: Callable[[], object], ready: Callable[[object], bool]) -> float:
    """Seconds from constructing the app until ``ready(app)`` holds (headless, 120×40)."""
    start = time.perf_counter()
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:  # type: ignore[attr-defined]
        while not ready(app):
            await pilot.pause(0.005)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/greenprof-bench-tui.db"))
    parser.add_argument("--live-s", type=float, default=20.0, help="0: skip the live screen")
    args = parser.parse_args()
    build(args.db, args.runs, args.steps)

    import_s = float(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t=time.perf_counter(); import textual.app,"
                " textual.widgets; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    from greenprof.store import RunStore
    from greenprof.tui.app import GreenprofApp
    from greenprof.tui.comparison import summarize
    from greenprof.tui.queries import step_columns, step_digest
    from greenprof.tui.screens.compare import CompareScreen
    from greenprof.tui.screens.history import HistoryScreen
    from greenprof.tui.snapshot import screen_text

    with RunStore(args.db) as store:
        ids = [run.run_id for run in store.runs() if run.name != "bench-live"][:2]
        query_ms, exact_ms = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            for run_id in ids:  # what the compare screen's worker does
                digest = step_digest(store, run_id)
                summarize(store.run(run_id), digest, store.device_energy_j(run_id))
            t1 = time.perf_counter()
            for run_id in ids:  # for reference: reading every step into Python
                step_columns(store, run_id)
            t2 = time.perf_counter()
            query_ms.append((t1 - t0) * 1e3)
            exact_ms.append((t2 - t1) * 1e3)
        t0 = time.perf_counter()
        store.runs()
        history_query_ms = (time.perf_counter() - t0) * 1e3

    def history_ready(app: object) -> bool:
        screen = app.screen  # type: ignore[attr-defined]
        return isinstance(screen, HistoryScreen) and len(screen.rows) > 0

    def compare_ready(app: object) -> bool:
        screen = app.screen  # type: ignore[attr-defined]
        return isinstance(screen, CompareScreen) and screen.comparison is not None

    refs = [str(i) for i in ids]
    history_s = [
        asyncio.run(first_paint(lambda: GreenprofApp(args.db, "history"), history_ready))
        for _ in range(3)
    ]
    compare_s = [
        asyncio.run(first_paint(lambda: GreenprofApp(args.db, "compare", refs), compare_ready))
        for _ in range(3)
    ]

    live_row: tuple[str, str, str] | None = None
    if args.live_s > 0:  # --live-s 0: first paint and queries only
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER.format(root=str(ROOT), db=str(args.db), seconds=args.live_s + 8),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)

        async def live() -> tuple[float, float, int, str]:
            app = GreenprofApp(args.db, "live", refresh_s=1.0)
            async with app.run_test(size=(120, 40)) as pilot:
                while "bench-live" not in screen_text(app):
                    await pilot.pause(0.05)
                await pilot.pause(2.0)  # attached and warm
                screen = app.screen
                polls0 = screen.polls  # type: ignore[attr-defined]
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await pilot.pause(args.live_s)
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                return cpu, wall, screen.polls - polls0, screen_text(app)  # type: ignore[attr-defined]

        cpu_s, wall_s, polls, text = asyncio.run(live())
        writer.wait()
        written = int((writer.stdout.read() if writer.stdout else "0").strip() or 0)
        live_pct = 100 * cpu_s / wall_s
        assert "bench-live" in text
        live_row = (
            f"live CPU at 1 Hz, writer {written / (args.live_s + 8):.0f} steps/s",
            f"{live_pct:.1f} % of a core ({polls} polls in {wall_s:.0f} s)",
            "≤ 5 %",
        )

    rows = [
        ("textual import (subprocess)", f"{import_s * 1e3:.0f} ms", "—"),
        (
            "history first paint (median of 3)",
            f"{statistics.median(history_s) * 1e3:.0f} ms",
            "≤ 1000 ms",
        ),
        (
            "compare first paint (median of 3)",
            f"{statistics.median(compare_s) * 1e3:.0f} ms",
            "≤ 1000 ms",
        ),
        (
            "compare query + summaries, 2 runs (median of 5)",
            f"{statistics.median(query_ms):.0f} ms",
            "≤ 100 ms",
        ),
        ("  reference: every step into Python", f"{statistics.median(exact_ms):.0f} ms", "—"),
        ("history query (runs table)", f"{history_query_ms:.1f} ms", "≤ 100 ms"),
    ]
    if live_row is not None:
        rows.append(live_row)
    print(
        f"\ndatabase: {args.db} ({args.db.stat().st_size / 1e9:.2f} GB), "
        f"{args.runs} runs × {args.steps} steps\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'result':<40} target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:<40} {target}")


if __name__ == "__main__":
    main()

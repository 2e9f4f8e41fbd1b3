"""Store ingest, database size and concurrent writers.

1. Ingest through ``StoreWriter.add_steps`` (N step rows with one device each: N steps +
   N step_energy rows, committed by the writer thread) against raw ``sqlite3``
   ``executemany`` of the same rows into the same schema (WAL, synchronous=NORMAL),
   interleaved repetitions, same run.
2. Database size per step row per device (file size after a WAL checkpoint).
3. Commit latency of small flushes (100 steps) from one writer.
4. Four processes, one writer each, on one file at once: rows lost (must be 0) and
   commit latency p50/p99 under contention.
5. Read queries over 100 runs × 100,000 steps (one GPU each; seeded with raw executemany
   into the same schema), through ``RunStore`` as the screens call it: the history
   listing, the live screen's running-run poll, a run by name, the compare screen's
   digest of two runs, and (for reference) every step of one run.

Run: ``python benchmarks/bench_store.py [--quick] [--reads-only]`` (about 2 min; --quick
about 30 s with 20 runs × 20,000 steps).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Benchmark the checkout this file lives in, whatever the install state of the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import Row, percentile, print_table

from greenprof.store.schema import connect
from greenprof.store.writer import RunSpec, StepEnergyRow, StepRow, StoreWriter

CHUNK = 10_000  # rows handed to add_steps at a time (a poll's worth of very short steps)


def make_rows(
    n: int, devices: int = 1, *, bounds: bool = True
) -> tuple[list[StepRow], list[StepEnergyRow]]:
    """Realistic step rows as the profiler queues them: 50 ms steps, varied energies, a
    loss, contiguous times, flags and (``bounds``) the error bound's three parts per step
    and a bound per device (schema v5)."""
    names = [f"gpu:{d}" for d in range(devices)]
    if not bounds:
        steps: list[StepRow] = [
            (i, i // 10_000, 0.05 * i, 0.05 * i + 0.05, 64, 12.5 + (i % 97) * 0.013, 0,
             2.3 - i * 1e-6)
            for i in range(n)
        ]  # fmt: skip
        return steps, [(i, name, 12.5 + (i % 89) * 0.017) for i in range(n) for name in names]
    steps = [
        (i, i // 10_000, 0.05 * i, 0.05 * i + 0.05, 64, 12.5 + (i % 97) * 0.013, 0,
         2.3 - i * 1e-6, 0, 0.0123 + (i % 7) * 1e-4, 0.0119 + (i % 5) * 1e-4,
         0.0031 + (i % 3) * 1e-4)
        for i in range(n)
    ]  # fmt: skip
    energy: list[StepEnergyRow] = [
        (i, name, 12.5 + (i % 89) * 0.017, 0.027 + (i % 11) * 1e-4)
        for i in range(n)
        for name in names
    ]
    return steps, energy


RAW_STEP_SQL = (
    "INSERT INTO steps (run_id, step, epoch, start_s, end_s, samples, energy_j, interpolated,"
    " loss, flags, energy_uncertainty_j, uncertainty_start_j, uncertainty_end_j,"
    " uncertainty_interior_j) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RAW_STEP_ENERGY_SQL = (
    "INSERT INTO step_energy (run_id, step, device, energy_j, energy_uncertainty_j)"
    " VALUES (?, ?, ?, ?, ?)"
)


def raw_step_params(run_id: int, rows: list[StepRow]) -> list[tuple[object, ...]]:
    """The bound values raw executemany inserts (the total bound is the parts' sum)."""
    return [(run_id, *r[:9], r[9] + r[10] + r[11], *r[9:12]) for r in rows]


def spec(name: str) -> RunSpec:
    return RunSpec(name=name, started_at=time.time(), interval_s=0.1)


# 1. Ingest ----------------------------------------------------------------------------


def ingest_writer(db: Path, steps: list[StepRow], energy: list[StepEnergyRow]) -> float:
    """Seconds from the first add_steps to the last row committed (the writer thread's work)."""
    writer = StoreWriter(db)
    writer.create_run(spec("bench-ingest"))
    per_step = len(energy) // len(steps)
    t0 = time.perf_counter()
    for a in range(0, len(steps), CHUNK):
        writer.add_steps(steps[a : a + CHUNK], energy[a * per_step : (a + CHUNK) * per_step])
    writer.close()  # joins the writer thread after its last flush
    return time.perf_counter() - t0


def ingest_raw(db: Path, steps: list[StepRow], energy: list[StepEnergyRow]) -> float:
    """The same rows through sqlite3 executemany, one transaction per CHUNK, same schema and
    the same bound values (the writer's own preparation of the rows is what it adds)."""
    conn = connect(db, create=True)
    conn.execute(
        "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
        " greenprof_version) VALUES ('raw', 'running', 0, 0, 'h', 0, 0.1, '')"
    )
    run_id = 1
    per_step = len(energy) // len(steps)
    t0 = time.perf_counter()
    for a in range(0, len(steps), CHUNK):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_STEP_SQL, raw_step_params(run_id, steps[a : a + CHUNK]))
        conn.executemany(
            RAW_STEP_ENERGY_SQL,
            [(run_id, *r) for r in energy[a * per_step : (a + CHUNK) * per_step]],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def file_size_after_checkpoint(db: Path) -> int:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db.stat().st_size


def count_rows(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def bench_ingest(tmp: Path, n: int, reps: int) -> list[Row]:
    steps, energy = make_rows(n)
    writer_s, raw_s = [], []
    writer_db = tmp / "missing.db"
    for rep in range(reps):
        writer_db = tmp / f"writer-{rep}.db"
        writer_s.append(ingest_writer(writer_db, steps, energy))
        raw_s.append(ingest_raw(tmp / f"raw-{rep}.db", steps, energy))
    stored = count_rows(writer_db, "steps"), count_rows(writer_db, "step_energy")
    w_rate, r_rate = n / statistics.median(writer_s), n / statistics.median(raw_s)
    size = file_size_after_checkpoint(writer_db)
    return [
        Row(
            "StoreWriter.add_steps → writer thread",
            f"{w_rate:>11,.0f} step rows/s  (+ as many step_energy rows)",
            "≥ 200,000 step rows/s",
            w_rate >= 200_000,
        ),
        Row("raw sqlite3 executemany, same schema", f"{r_rate:>11,.0f} step rows/s", "(baseline)"),
        Row("  writer / raw", f"{100 * w_rate / r_rate:>11.0f} %", ""),
        Row("  rows stored (last writer rep)", f"{stored[0]:,} steps, {stored[1]:,} energies", ""),
        Row(
            "database size, 1 device",
            f"{size / n:>11.1f} B per step row",
            "≤ 100 B per step row per device",
            size / n <= 100,
        ),
    ]


def bench_size_devices(tmp: Path, n: int, devices: int) -> list[Row]:
    steps, energy = make_rows(n, devices)
    db = tmp / f"size-{devices}.db"
    ingest_writer(db, steps, energy)
    size = file_size_after_checkpoint(db)
    per = size / (n * devices)
    return [
        Row(
            f"database size, {devices} devices",
            f"{per:>11.1f} B per step row per device",
            "≤ 100 B per step row per device",
            per <= 100,
        )
    ]


# 3. Commit latency, one writer --------------------------------------------------------


def flush_latencies(db: Path, flushes: int, batch: int, name: str) -> list[float]:
    """Seconds per explicit flush() of ``batch`` steps (+ one device each)."""
    writer = StoreWriter(db, flush_interval_s=3600.0)  # the thread stays idle: we flush
    writer.create_run(spec(name))
    steps, energy = make_rows(flushes * batch)
    latencies = []
    for a in range(0, flushes * batch, batch):
        writer.add_steps(steps[a : a + batch], energy[a : a + batch])
        t0 = time.perf_counter()
        writer.flush()
        latencies.append(time.perf_counter() - t0)
    writer.close()
    return latencies


def bench_commit_latency(tmp: Path, flushes: int) -> list[Row]:
    lat = flush_latencies(tmp / "latency.db", flushes, 100, "bench-latency")
    p50, p99 = 1e3 * statistics.median(lat), 1e3 * percentile(lat, 99)
    return [
        Row(
            f"one writer, {flushes} flushes of 100 steps",
            f"p50 {p50:.2f} ms  p99 {p99:.2f} ms",
            "p99 ≤ 5 ms",
            p99 <= 5,
        )
    ]


# 4. Four processes ---------------------------------------------------------------------


def worker(db: str, index: int, *, flushes: int, batch: int, start: float, out: mp.Queue) -> None:
    time.sleep(max(0.0, start - time.time()))  # all processes begin together
    try:
        out.put((index, flush_latencies(Path(db), flushes, batch, f"proc-{index}"), None))
    except Exception as exc:
        out.put((index, [], f"{type(exc).__name__}: {exc}"))


def bench_processes(tmp: Path, processes: int, flushes: int, batch: int) -> list[Row]:
    db = tmp / "multi.db"
    connect(db, create=True).close()  # schema first, so the workers race on rows only
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = time.time() + 3.0  # spawn start-up takes a while
    procs = [
        ctx.Process(
            target=worker,
            args=(str(db), i),
            kwargs={"flushes": flushes, "batch": batch, "start": start, "out": out},
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [f"proc {i}: {err}" for i, _, err in results if err]
    latencies = [x for _, lat, _ in results for x in lat]
    expected = processes * flushes * batch
    stored = count_rows(db, "steps"), count_rows(db, "step_energy")
    lost = 2 * expected - sum(stored)
    rows = [
        Row(
            f"{processes} processes × {flushes} flushes × {batch} steps, one file",
            f"{lost} rows lost of {2 * expected:,}" + (f"; errors: {errors}" if errors else ""),
            "0 lost",
            lost == 0 and not errors,
        )
    ]
    if latencies:
        p50, p99 = 1e3 * statistics.median(latencies), 1e3 * percentile(latencies, 99)
        rows.append(
            Row(
                "  commit latency under contention",
                f"p50 {p50:.2f} ms  p99 {p99:.1f} ms  max {1e3 * max(latencies):.0f} ms",
                "p99 ≤ 200 ms",
                p99 <= 200,
            )
        )
    return rows


# 5. Read queries -----------------------------------------------------------------------


def seed_runs(db: Path, runs: int, steps: int) -> list[int]:
    """``runs`` completed runs of ``steps`` steps (one GPU), raw executemany, one
    transaction per run; returns their ids (the last one is left ``running``)."""
    conn = connect(db, create=True)
    step_rows, energy_rows = make_rows(steps, bounds=False)
    ids = []
    for index in range(runs):
        status = "running" if index == runs - 1 else "completed"
        heartbeat = time.time() if status == "running" else 1e9 + index
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(
            "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, interval_s,"
            " greenprof_version, steps, samples, energy_j, step_energy_j, duration_s)"
            " VALUES (?, ?, ?, ?, 'bench', 1, 0.1, '', ?, ?, ?, ?, ?)",
            (f"run-{index % 10}", status, 1e9 + index, heartbeat, steps, 64 * steps, 1e6, 1e6, 1e4),
        )
        run_id = int(cursor.lastrowid or 0)
        conn.execute(
            "INSERT INTO devices (run_id, device, kind, method, energy_j)"
            " VALUES (?, 'gpu:0', 'gpu', 'counter', 1e6)",
            (run_id,),
        )
        conn.executemany(
            "INSERT INTO steps (run_id, step, epoch, start_s, end_s, samples, energy_j,"
            " interpolated, loss) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *r) for r in step_rows],
        )
        conn.executemany(
            "INSERT INTO step_energy (run_id, step, device, energy_j) VALUES (?, ?, ?, ?)",
            [(run_id, *r) for r in energy_rows],
        )
        conn.execute("COMMIT")
        ids.append(run_id)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ids


def timed_ms(action: Callable[[], object], reps: int) -> float:
    """Median wall time of ``action`` in ms (after one warm-up call)."""
    action()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_reads(tmp: Path, runs: int, steps: int, reps: int) -> list[Row]:
    from greenprof.store.reader import RunStore
    from greenprof.tui.comparison import summarize
    from greenprof.tui.queries import step_digest

    db = tmp / "reads.db"
    t0 = time.perf_counter()
    ids = seed_runs(db, runs, steps)
    seed_s = time.perf_counter() - t0
    pair = ids[:2]

    def compare(store: RunStore) -> None:  # what the compare screen's worker does
        for run_id in pair:
            run = store.run(run_id)
            summarize(run, step_digest(store, run_id), store.device_energy_j(run_id))

    with RunStore(db) as store:
        queries: list[tuple[str, Callable[[], object]]] = [
            (f"history: runs() ({runs} runs)", store.runs),
            (
                "live poll: runs(status='running', limit=1)",
                lambda: store.runs(status="running", limit=1),
            ),
            ("show: run(name)", lambda: store.run("run-3")),
            ("compare: one run's step digest", lambda: step_digest(store, ids[0])),
            ("compare: 2 runs (run, digest, summary each)", lambda: compare(store)),
            ("live start: step_aggregate(run)", lambda: store.step_aggregate(ids[0])),
        ]
        rows = []
        for label, action in queries:
            ms = timed_ms(action, reps)
            rows.append(Row(label, f"{ms:>9.1f} ms", "≤ 100 ms", ms <= 100))
        every = timed_ms(lambda: store.step_columns(ids[0]), reps)
    rows.append(Row(f"  (reference: every step of one run, {steps:,})", f"{every:>9.1f} ms", ""))
    conn = sqlite3.connect(db)
    scan = timed_ms(
        lambda: conn.execute(
            "SELECT total(energy_j) FROM steps WHERE run_id = ?", (ids[0],)
        ).fetchone(),
        reps,
    )
    conn.close()
    rows.append(Row("  (reference: one SQL scan of a run's steps)", f"{scan:>9.1f} ms", ""))
    size = db.stat().st_size
    rows.append(
        Row(
            "  seeded with raw executemany",
            f"{runs * steps:,} steps in {seed_s:.0f} s, {size / 2**30:.2f} GiB",
            "",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (about 15 s)")
    parser.add_argument("--rows", type=int, help="step rows per ingest repetition")
    parser.add_argument("--reads-only", action="store_true", help="only the read queries")
    args = parser.parse_args()
    n = args.rows or (200_000 if args.quick else 1_000_000)
    reps = 2 if args.quick else 3
    flushes = 100 if args.quick else 400
    print(f"bench_store: Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="greenprof-bench-") as tmp_name:
        tmp = Path(tmp_name)
        runs, steps = (20, 20_000) if args.quick else (100, 100_000)
        print_table(
            f"read queries, {runs} runs × {steps:,} steps (median of 5)",
            bench_reads(tmp, runs, steps, 5),
        )
        if args.reads_only:
            return
        rows = bench_ingest(tmp, n, reps)
        rows += bench_size_devices(tmp, n // 10, 4)
        print_table(f"ingest of {n:,} step rows, 1 device (median of {reps}, interleaved)", rows)
        print_table("commit latency", bench_commit_latency(tmp, flushes))
        print_table("concurrent writers", bench_processes(tmp, 4, flushes // 2, 500))


if __name__ == "__main__":
    main()

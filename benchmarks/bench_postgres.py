"""PostgreSQL ingest through the batching writer (COPY), against a raw COPY baseline.

1. Ingest through ``open_writer(url).add_steps`` (N step rows with one device each: N steps
   + N step_energy rows, committed by the writer thread with binary COPY), against a raw
   psycopg binary COPY of the same rows into the same schema, interleaved repetitions.
2. Four processes, one writer each, into one database at once: rows lost (must be 0) and
   the aggregate rate.

The server is a throwaway local PostgreSQL 15 cluster (``tests/pg_cluster.py``: initdb as
the ``postgres`` user, fsync off as in the tests), or ``--url`` for an existing one (a fresh
database: the benchmark creates tables in it).

Run: ``python benchmarks/bench_postgres.py [--quick] [--url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Benchmark the checkout this file lives in, whatever the install state of the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import Row, print_table
from bench_store import CHUNK, make_rows, spec

from greenprof.store.postgres.sink import STAGED
from greenprof.store.writer import StepEnergyRow, StepRow, open_writer

TARGET_ROWS_S = 100_000


def ingest_writer(url: str, steps: list[StepRow], energy: list[StepEnergyRow]) -> float:
    """Seconds from the first add_steps to the last row committed (the writer thread's work)."""
    writer = open_writer(url)
    writer.create_run(spec("bench-ingest"))
    t0 = time.perf_counter()
    for a in range(0, len(steps), CHUNK):
        writer.add_steps(steps[a : a + CHUNK], energy[a : a + CHUNK])
    writer.close()  # joins the writer thread after its last flush
    return time.perf_counter() - t0


def ingest_raw(url: str, steps: list[StepRow], energy: list[StepEnergyRow]) -> float:
    """The same rows by binary COPY straight from psycopg, one transaction per CHUNK."""
    import psycopg

    writer = open_writer(url)  # the schema and a run row
    run_id = writer.create_run(spec("bench-raw"))
    writer.close()
    (_, step_columns, _, step_types), (_, energy_columns, _, energy_types) = STAGED[:2]
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for a in range(0, len(steps), CHUNK):
            # flags 0; the error-bound columns (schema v5) NULL, as the writer stores them
            step_pad = (None,) * (len(step_columns) - 2 - len(steps[0]))
            energy_pad = (None,) * (len(energy_columns) - 1 - len(energy[0]))
            step_rows = [(run_id, *r, 0, *step_pad) for r in steps[a : a + CHUNK]]
            energy_rows = [(run_id, *r, *energy_pad) for r in energy[a : a + CHUNK]]
            with conn.transaction():
                for table, columns, types, rows in (
                    ("steps", step_columns, step_types, step_rows),
                    ("step_energy", energy_columns, energy_types, energy_rows),
                ):
                    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
                    with conn.cursor().copy(sql) as copy:
                        copy.set_types(list(types))
                        for row in rows:
                            copy.write_row(row)
    return time.perf_counter() - t0


def count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def bench_ingest(new_db: Callable[[], str], n: int, reps: int) -> list[Row]:
    steps, energy = make_rows(n, bounds=False)
    writer_s, raw_s = [], []
    url = ""
    for _rep in range(reps):
        url = new_db()
        writer_s.append(ingest_writer(url, steps, energy))
        raw_s.append(ingest_raw(new_db(), steps, energy))
    stored = (
        count(url, "SELECT count(*) FROM steps"),
        count(url, "SELECT count(*) FROM step_energy"),
    )
    w_rate, r_rate = n / statistics.median(writer_s), n / statistics.median(raw_s)
    best = n / min(writer_s)
    return [
        Row(
            "open_writer(url).add_steps → writer thread (COPY)",
            f"{w_rate:>11,.0f} step rows/s  (+ as many step_energy rows; best {best:,.0f})",
            f"≥ {TARGET_ROWS_S:,} step rows/s",
            w_rate >= TARGET_ROWS_S,
        ),
        Row("raw psycopg binary COPY, same schema", f"{r_rate:>11,.0f} step rows/s", "(baseline)"),
        Row("  writer / raw", f"{100 * w_rate / r_rate:>11.0f} %", ""),
        Row("  rows stored (last writer rep)", f"{stored[0]:,} steps, {stored[1]:,} energies", ""),
    ]


def _child(url: str, rank: int, n: int) -> None:
    steps, energy = make_rows(n, bounds=False)
    writer = open_writer(url)
    writer.create_run(spec(f"rank{rank}"))
    for a in range(0, n, 1000):  # a training loop's pace: a poll's worth at a time
        writer.add_steps(steps[a : a + 1000], energy[a : a + 1000])
        time.sleep(0.001)
    writer.close()


def bench_processes(url: str, n: int, procs: int = 4) -> list[Row]:
    context = mp.get_context("spawn")
    children = [context.Process(target=_child, args=(url, r, n)) for r in range(procs)]
    t0 = time.perf_counter()
    for child in children:
        child.start()
    for child in children:
        child.join()
    elapsed = time.perf_counter() - t0
    stored = count(url, "SELECT count(*) FROM steps")
    lost = procs * n - stored + count(url, "SELECT coalesce(sum(lost_steps), 0) FROM runs")
    return [
        Row(
            f"{procs} processes x {n:,} steps into one database",
            f"{stored:,} stored, {lost} lost, {procs * n / elapsed:,.0f} step rows/s overall",
            "0 lost",
            lost == 0,
        )
    ]


def _fill(db: str | Path, runs: int, n: int) -> None:
    steps, energy = make_rows(n, bounds=False)
    for k in range(runs):
        writer = open_writer(db, flush_interval_s=3600)
        writer.create_run(spec(f"run{k}"))
        writer.add_steps(steps, energy)
        writer.close()


def _best_ms(action: Callable[[], object], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def bench_queries(url: str, sqlite_path: Path, runs: int, n: int) -> list[Row]:
    """The history and compare screens' reads on both backends, same runs (best of 5)."""
    from greenprof.store.reader import RunStore
    from greenprof.tui.queries import step_digest

    rows = []
    for label, db in (("PostgreSQL", url), ("SQLite", str(sqlite_path))):
        _fill(db, runs, n)
        with RunStore(db) as store:
            ids = [run.run_id for run in store.runs()]
            history = _best_ms(store.runs)
            compare = _best_ms(lambda: [step_digest(store, i) for i in ids[:2]])  # noqa: B023
            aggregate = _best_ms(lambda: store.step_aggregate(ids[0]))  # noqa: B023
        rows += [
            Row(f"{label}: history (runs(), {runs} runs)", f"{history:>8.1f} ms", "≤ 100 ms",
                history <= 100),
            Row(f"{label}: compare 2 runs x {n:,} steps (digest)", f"{compare:>8.1f} ms",
                "≤ 100 ms", compare <= 100),
            Row(f"{label}: step aggregate of one run", f"{aggregate:>8.1f} ms", ""),
        ]  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repetitions")
    parser.add_argument("--url", help="an existing empty database (default: a throwaway cluster)")
    parser.add_argument("--runs", type=int, default=10, help="runs for the query benchmark")
    args = parser.parse_args()
    n, reps = (50_000, 2) if args.quick else (200_000, 3)
    cluster = None
    if args.url:
        url: str = args.url

        def new_db() -> str:
            return url
    else:
        from tests.pg_cluster import destroy, start_cluster

        cluster = start_cluster()
        names = iter(range(1000))

        def new_db() -> str:
            assert cluster is not None
            return cluster.create_database(f"bench{next(names)}")

    try:
        rows = bench_ingest(new_db, n, reps)
        rows += bench_processes(new_db(), n // 4)
        with tempfile.TemporaryDirectory() as tmp:
            queries = bench_queries(new_db(), Path(tmp) / "q.db", args.runs, n // 2)
    finally:
        if cluster is not None:
            destroy(cluster)
    print_table(f"PostgreSQL ingest ({n:,} step rows, {reps} reps)", rows)
    print_table(f"Queries, both backends ({args.runs} runs x {n // 2:,} steps)", queries)


if __name__ == "__main__":
    main()

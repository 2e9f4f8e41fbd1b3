"""Copying runs between stores: ``greenprof merge A.db B.db -o job.db`` and ``greenprof push
A.db --to postgresql://...`` (nodes that had no access to the server while training).

A run is copied with its devices, steps, per-device step energies, samples and pending
steps, in one transaction of the target: it is there whole or not at all. Runs are known
by their ``uid`` (schema v4), the same in every store; a run the target already holds is
skipped, so copying twice copies nothing twice. The target gives each copied run its own
``run_id`` (its autoincrement or sequence), so ids stay unique in the target. Both stores'
identities and schema versions are checked when they are opened. A run still marked
``running`` is not copied (it may still be written; ``greenprof repair`` closes a dead one).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprof.errors import StoreError
from greenprof.store.dialect import Db
from greenprof.store.location import StoreLocation, parse_location
from greenprof.store.schema import REQUIRED_COLUMNS

CHUNK_ROWS = 50_000
"""Rows read and written at a time (memory stays bounded on runs of millions of steps)."""
PROGRESS_ROWS = 200_000
"""A progress line at least every this many rows of one run."""

CHILD_TABLES = ("devices", "steps", "step_energy", "samples", "pending_steps")
RUN_COLUMNS = tuple(sorted(REQUIRED_COLUMNS["runs"] - {"run_id"}))

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TransferReport:
    """What one transfer did."""

    copied_runs: int
    already_there: int
    """Runs the target held already (by uid): not copied again."""
    still_running: int
    """Runs marked running in a source: not copied."""
    rows: int
    """Rows copied (devices, steps, step energies, samples, pending steps)."""


def transfer(
    sources: Sequence[str | os.PathLike[str] | StoreLocation],
    target: str | os.PathLike[str] | StoreLocation,
    *,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> TransferReport:
    """Copy every finished run of ``sources`` into ``target`` (a SQLite file, created if
    missing, or a ``postgresql://`` URL), reading and writing ``chunk_rows`` rows at a time.
    Failures are one-line StoreErrors."""
    say = progress or (lambda _line: None)
    destination = parse_location(target)
    origins = [parse_location(s) for s in sources]
    for origin in origins:
        if origin.kind == destination.kind and origin.target == destination.target:
            raise StoreError(f"{origin.display} is both a source and the target: pick another -o")
    copied = there = running = rows = 0
    with _open(destination, write=True) as out:
        for origin in origins:
            with _open(origin, write=False) as src:
                known = {uid for (uid,) in out.execute("SELECT uid FROM runs")}
                for run in _runs(src):
                    uid, status, run_id, name = (
                        run["uid"],
                        run["status"],
                        run["run_id"],
                        run["name"],
                    )
                    if status == "running":
                        running += 1
                        say(f"{origin.display}: run {run_id} {name} is still running: not copied")
                    elif uid in known:
                        there += 1
                    else:
                        added = _copy_new_run(
                            src, out, run, say=say, where=origin.display, chunk_rows=chunk_rows
                        )
                        known.add(uid)
                        copied += added is not None
                        there += added is None
                        rows += added or 0
    say(
        f"{copied} run(s) copied into {destination.display} ({rows} rows); "
        f"{there} already there, {running} still running"
    )
    return TransferReport(copied, there, running, rows)


def _runs(src: Db) -> Iterator[dict[str, Any]]:
    cursor = src.execute(f"SELECT run_id, {', '.join(RUN_COLUMNS)} FROM runs ORDER BY run_id")
    for values in cursor.fetchall():
        run = dict(zip(("run_id", *RUN_COLUMNS), values, strict=True))
        if not run["uid"]:
            run["uid"] = stable_uid(run)
        yield run


def stable_uid(run: dict[str, Any]) -> str:
    """A uid for a run inserted without one (by hand, by another tool): derived from what
    identifies it (host, pid, start, name), so copying it twice still copies it once."""
    key = "\x1f".join(str(run[c]) for c in ("host", "pid", "started_at", "name"))
    return "derived-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _copy_new_run(
    src: Db, out: Db, run: dict[str, Any], *, say: Progress, where: str, chunk_rows: int
) -> int | None:
    """Copy the run unless another transfer (a node pushing at the same time) stored it
    meanwhile: then None (its transaction rolled back, nothing doubled)."""
    try:
        return _copy_run(src, out, run, say=say, where=where, chunk_rows=chunk_rows)
    except _integrity_errors(out):
        if out.execute("SELECT 1 FROM runs WHERE uid = ?", (run["uid"],)).fetchone() is None:
            raise
        return None


def _integrity_errors(out: Db) -> tuple[type[Exception], ...]:
    if out.sqlite:
        return (sqlite3.IntegrityError,)
    import psycopg

    return (psycopg.IntegrityError,)


def _copy_run(
    src: Db, out: Db, run: dict[str, Any], *, say: Progress, where: str, chunk_rows: int
) -> int:
    """Copy one run in one transaction of the target; the number of rows copied."""
    copied = 0
    with out.transaction():
        values = [run[c] for c in RUN_COLUMNS]
        marks = ", ".join("?" * len(RUN_COLUMNS))
        (new_id,) = out.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks}) RETURNING run_id",
            values,
        ).fetchone()
        for table in CHILD_TABLES:
            columns = tuple(sorted(REQUIRED_COLUMNS[table] - {"run_id"}))
            sql = f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ?"
            next_report = PROGRESS_ROWS
            for chunk in _chunks(src, sql, run["run_id"], chunk_rows):
                _insert(out, table, ("run_id", *columns), [(new_id, *row) for row in chunk])
                copied += len(chunk)
                if copied >= next_report:
                    say(f"{where}: run {run['run_id']} {run['name']}: {copied} rows copied")
                    next_report += PROGRESS_ROWS
    return copied


def _chunks(src: Db, sql: str, run_id: int, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` for one run, ``size`` at a time. From a server: through a
    server-side cursor (a client cursor holds a run's whole result, millions of rows, in
    memory before the first chunk), in its own read transaction of the source."""
    if src.sqlite:
        cursor = src.conn.cursor()
        try:
            cursor.execute(src.sql(sql), (run_id,))
            while chunk := cursor.fetchmany(size):
                yield [tuple(row) for row in chunk]
        finally:
            cursor.close()
        return
    conn = src.conn
    with conn.transaction(), conn.cursor(f"greenprof_transfer_{run_id}", binary=True) as cursor:
        cursor.itersize = size
        cursor.execute(src.sql(sql), (run_id,))
        while chunk := cursor.fetchmany(size):
            yield [tuple(row) for row in chunk]


def _insert(out: Db, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    if out.sqlite:
        from greenprof.store.sqlite_sink import insert_rows

        insert_rows(out.conn, table, columns, rows)
        return
    with out.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@contextmanager
def _open(location: StoreLocation, *, write: bool) -> Iterator[Db]:
    """A checked, migrated connection to a store; driver errors as one-line StoreErrors."""
    if location.kind == "postgresql":
        from greenprof.store.postgres.connect import connect_url, describe_error
        from greenprof.store.postgres.schema import prepare_database

        url = location.target
        conn = connect_url(url)
        import psycopg

        try:
            prepare_database(conn, url, create=write)
            yield Db.of(conn)
        except psycopg.Error as exc:
            raise StoreError(describe_error(url, exc)) from None
        finally:
            conn.close()
        return
    from greenprof.store.schema import connect, connect_read_only, describe_sqlite_error

    path = Path(location.target)
    sqlite_conn = connect(path, create=True) if write else connect_read_only(path)
    try:
        yield Db.of(sqlite_conn)
    except sqlite3.Error as exc:
        raise StoreError(describe_sqlite_error(path, exc)) from exc
    finally:
        sqlite_conn.close()

"""Marking a run ended from outside its process (``greenprof run`` when the child exits
non-zero, the zero-code hook's no-step warning), on either backend."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from greenprof.errors import StoreError
from greenprof.records import RunStatus
from greenprof.store.dialect import Db
from greenprof.store.location import StoreLocation
from greenprof.store.sink import is_url

MARK_ENDED_SQL = (
    "UPDATE runs SET status = ?, error = ? || coalesce('; ' || error, ''),"
    " ended_at = coalesce(ended_at, ?)"
    " WHERE run_id = ? AND status IN ('running', 'completed')"
)


def mark_ended(
    db: str | os.PathLike[str] | StoreLocation,
    run_id: int,
    status: RunStatus,
    error: str,
    *,
    now: float,
) -> None:
    """A run already marked failed or interrupted keeps its status; the cause goes first in
    ``error``, before what the run had recorded. Failures are one-line StoreErrors."""
    params = (status, error, now, run_id)
    if is_url(db):
        from greenprof.store.postgres.connect import connect_url, describe_error

        url = db.target if isinstance(db, StoreLocation) else str(db)
        conn = connect_url(url)
        import psycopg

        try:
            Db.of(conn).execute(MARK_ENDED_SQL, params)
        except psycopg.Error as exc:
            raise StoreError(describe_error(url, exc)) from exc
        finally:
            conn.close()
        return
    from greenprof.store.schema import connect, describe_sqlite_error

    path = db.path if isinstance(db, StoreLocation) else Path(db)
    sqlite_conn = connect(path, create=False)
    try:
        Db.of(sqlite_conn).execute(MARK_ENDED_SQL, params)
    except sqlite3.Error as exc:
        raise StoreError(describe_sqlite_error(path, exc)) from exc
    finally:
        sqlite_conn.close()

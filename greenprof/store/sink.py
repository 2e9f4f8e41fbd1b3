"""Where the writer's rows go: the :class:`Sink` Protocol, and the sink for a ``db`` argument.

The writer (``writer.py``) owns every reliability guarantee (the queue, the flush thread,
the bounded backlog, requeueing a failed batch, health, the close timeout); a sink only
stores one prepared batch in one transaction, or raises one of its ``errors`` and stores
nothing. The SQLite sink is ``sqlite_sink.py``, the PostgreSQL one ``postgres/sink.py``
(imported only when a ``postgresql://`` URL is used, so ``import greenprof`` never loads
psycopg).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from greenprof.records import RunStatus
from greenprof.store.location import StoreLocation, is_server_url
from greenprof.store.rows import PreparedBatch, RunSpec


class Sink(Protocol):
    """Stores one run's rows. Called from one thread at a time (the writer serialises)."""

    name: str
    """The store as named in messages: a path, or a URL without its password."""
    errors: tuple[type[Exception], ...]
    """Failures after which the batch stays queued and is retried (locked, server down)."""

    def create_run(self, spec: RunSpec, uid: str) -> int:
        """Insert the run and its devices; its id. Raises a one-line StoreError."""
        ...

    def write(self, run_id: int, batch: PreparedBatch) -> None:
        """Store ``batch`` in one transaction (all of it or nothing)."""
        ...

    def end_run(
        self, run_id: int, *, status: RunStatus, error: str | None, lost_steps: int, now: float
    ) -> None:
        """Record how the run ended."""
        ...

    def repair_dead_runs(self, *, exclude: int, now: float) -> None:
        """Attribute and close this host's runs whose process died (not ``exclude``)."""
        ...

    def describe(self, exc: BaseException) -> str:
        """One line for a failure: the store, what is wrong, what to do."""
        ...

    def close(self) -> None: ...


def is_url(db: object) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than a SQLite file."""
    if isinstance(db, StoreLocation):
        return db.kind == "postgresql"
    return isinstance(db, str) and is_server_url(db)


def open_sink(db: str | os.PathLike[str] | StoreLocation) -> Sink:
    """The sink for a SQLite path or a ``postgresql://`` URL (connected, schema checked)."""
    if is_url(db):
        from greenprof.store.postgres.connect import require_psycopg

        require_psycopg()
        from greenprof.store.postgres.sink import PostgresSink

        return PostgresSink(db.target if isinstance(db, StoreLocation) else str(db))
    from greenprof.store.sqlite_sink import SqliteSink

    return SqliteSink(db.path if isinstance(db, StoreLocation) else Path(db))

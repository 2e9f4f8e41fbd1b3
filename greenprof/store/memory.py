"""An in-memory SQLite store for tests: the writer and ``RunStore`` open the same database.

A named in-memory SQLite database with a shared cache is visible to every connection of
the process that opens the same URI, and lives while one of them is open::

    with memory_store("t1") as location:
        writer = open_writer(location)        # or StoreWriter(location.path)
        ...
        with RunStore(location) as store:
            ...

:func:`memory_store` holds that connection for the block, so the runs survive the writer's
close. No file is created; WAL and the deleted-file rescue do not apply. Readers use
``read_uncommitted`` so that a test reading while the writer commits is not refused by
the shared cache's table locks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from greenprof.store.location import StoreLocation

PREFIX = "file:greenprof-memory-"
SUFFIX = "?mode=memory&cache=shared"


def memory_uri(name: str) -> str:
    """The SQLite URI of the in-memory store ``name``."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"an in-memory store name is letters, digits, - and _; got {name!r}")
    return f"{PREFIX}{name}{SUFFIX}"


def is_memory(path: str | Path) -> bool:
    """Whether ``path`` (a StoreLocation's path) names an in-memory store."""
    text = str(path)
    return text.startswith(PREFIX) and text.endswith(SUFFIX)


def memory_location(name: str) -> StoreLocation:
    return StoreLocation("sqlite", memory_uri(name), f"memory://{name}")


def open_memory(path: str | Path) -> sqlite3.Connection:
    """A connection to the in-memory store at ``path`` (autocommit, any thread)."""
    conn = sqlite3.connect(str(path), uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA read_uncommitted=1")
    return conn


@contextmanager
def memory_store(name: str) -> Iterator[StoreLocation]:
    """An empty in-memory store that lives for the ``with`` block (see the module docstring)."""
    location = memory_location(name)
    anchor = open_memory(location.target)
    try:
        yield location
    finally:
        anchor.close()

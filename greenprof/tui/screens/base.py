"""What every screen shares: its own store (one read connection) and a help text."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import ClassVar, TypeVar

from textual.css.query import NoMatches
from textual.screen import Screen

from greenprof.store import RunStore
from greenprof.store.location import StoreLocation, parse_location

T = TypeVar("T")

StoreRef = str | os.PathLike[str] | StoreLocation | None
"""What names a store: a path, a ``postgresql://`` URL, a parsed location, or None (the
default). Never a ``Path`` made from a URL: ``Path("postgresql://h/db")`` drops a slash."""


class StoreScreen(Screen[None]):
    """A screen that reads the database through its own :class:`RunStore`.

    Each screen's connection is used by that screen's worker threads one at a time,
    under ``store_lock``: a worker Textual has "cancelled" (``exclusive=True``) keeps
    running to its end, and closing the connection under a running query would crash the
    process. Queries are short: no read transaction stays open between refreshes.
    """

    HELP: ClassVar[str] = ""

    def __init__(self, location: StoreRef) -> None:
        super().__init__()
        self.location = parse_location(location)
        """Where the store lives (a SQLite file or a server); ``display`` is printable."""
        self._store: RunStore | None = None
        self.store_lock = threading.RLock()
        """Held by every worker while it reads, and to close the store."""

    @property
    def store(self) -> RunStore:
        """The screen's store, opened on first use (in its worker thread)."""
        if self._store is None:
            self._store = RunStore(self.location)
        return self._store

    def deliver(self, draw: Callable[[T], None], result: T) -> None:
        """From a worker thread: ``draw(result)`` on the UI thread. A result that arrives
        while the app is closing, or after this screen's widgets are gone, draws nothing
        (the worker is not failed for it: Textual would end the app with its error)."""

        def guarded() -> None:
            with contextlib.suppress(NoMatches):
                draw(result)

        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(guarded)

    def on_unmount(self) -> None:
        """Close the screen's store."""
        with self.store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

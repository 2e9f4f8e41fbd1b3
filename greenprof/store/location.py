"""Where a run store lives: a SQLite file (the embedded default) or a PostgreSQL server.

``db`` is a path or a ``postgresql://`` / ``postgres://`` URL everywhere (``Profiler(db=)``,
``RunStore(...)``, ``--db``, ``$GREENPROF_DB``). :func:`parse_location` decides which, once,
so no caller tests strings for ``://``; :attr:`StoreLocation.display` is what messages
and logs may show (a URL's password is never in it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from greenprof.store.paths import ENV_VAR, default_db_path

StoreKind = Literal["sqlite", "postgresql"]

_URL_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A run store's address: ``kind``, and ``target`` (a file path or a server URL).

    ``display`` is safe to print: the path, or the URL with any password replaced by
    ``***``. ``repr`` shows only ``display`` too, so a location in a traceback or a log
    line never leaks a credential.
    """

    kind: StoreKind
    target: str
    """The absolute-or-relative file path (SQLite) or the full URL (PostgreSQL)."""
    display: str

    @property
    def path(self) -> Path:
        """The SQLite file; a :class:`ValueError` for a server store (it has none)."""
        if self.kind != "sqlite":
            raise ValueError(f"{self.display} is a {self.kind} store, not a file")
        return Path(self.target)

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"StoreLocation({self.kind!r}, {self.display!r})"


def sqlite_location(path: str | os.PathLike[str]) -> StoreLocation:
    """The location of a SQLite file."""
    text = str(Path(path).expanduser())
    return StoreLocation("sqlite", text, text)


def is_server_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in _URL_SCHEMES


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***``, in the user part or a ``password=``
    query parameter (libpq accepts both); the rest unchanged."""
    parts = urlsplit(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        parts = parts._replace(netloc=f"{name}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(key, "***" if key == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


def parse_location(
    db: str | os.PathLike[str] | StoreLocation | None, env: Mapping[str, str] = os.environ
) -> StoreLocation:
    """The store that ``db`` names, else ``$GREENPROF_DB``, else the user data directory.

    A ``postgresql://`` / ``postgres://`` URL (from ``db`` or the environment) is a server
    store; anything else is a SQLite file path with ``~`` expanded (the semantics of
    :func:`~greenprof.store.paths.resolve_db_path`). A :class:`StoreLocation` passes
    through unchanged.
    """
    if isinstance(db, StoreLocation):
        return db
    text = os.fspath(db) if db is not None else env.get(ENV_VAR) or ""
    if is_server_url(text):
        return StoreLocation("postgresql", text, redact_url(text))
    if text:
        return sqlite_location(text)
    return sqlite_location(default_db_path(env))

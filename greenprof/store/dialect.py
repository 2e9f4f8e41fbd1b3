"""One SQL text for both backends where the statements are the same.

SQLite and PostgreSQL agree on nearly all of greenprof's statements (``INSERT ... ON
CONFLICT ... DO UPDATE``, ``coalesce``, ``||``); they differ in the parameter marker
(``?`` and ``%s``), the way a writing transaction starts, and the two-argument maximum.
:class:`Db` wraps an autocommit connection of either (``sqlite3`` with
``isolation_level=None``, ``psycopg`` with ``autocommit=True``) and smooths those over, so
recovery, ``mark_run_ended`` and transfers are written once.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

Dialect = Literal["sqlite", "postgresql"]

_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


@functools.cache
def in_dialect(text: str, dialect: Dialect) -> str:
    """``text``, written for SQLite (``?`` and ``:name`` parameters, ``greatest(a, b)`` for
    the two-argument maximum), in ``dialect``. No statement here holds a literal ``?``,
    ``%``, ``:`` before a name, or ``greatest(``; PostgreSQL casts (``::bigint``) are kept."""
    if dialect == "sqlite":
        return text.replace("greatest(", "max(")
    return _NAMED.sub(r"%(\1)s", text.replace("?", "%s"))


@dataclass(frozen=True, slots=True)
class Db:
    """An autocommit connection and its dialect (``sqlite`` or ``postgresql``)."""

    conn: Any
    dialect: str

    @classmethod
    def of(cls, conn: Any) -> Db:
        return cls(conn, "sqlite" if isinstance(conn, sqlite3.Connection) else "postgresql")

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def sql(self, text: str) -> str:
        """``text`` in this dialect (:func:`in_dialect`)."""
        return in_dialect(text, "sqlite" if self.sqlite else "postgresql")

    def execute(self, text: str, params: Sequence[object] = ()) -> Any:
        return self.conn.execute(self.sql(text), params)

    def executemany(self, text: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self.conn.cursor().executemany(self.sql(text), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A writing transaction (SQLite: ``BEGIN IMMEDIATE``, taking the write lock first)."""
        self.conn.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        # The database may have rolled back by itself (disk full, a lost server).
        with contextlib.suppress(Exception):
            self.conn.execute("ROLLBACK")

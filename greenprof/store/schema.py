"""The SQLite schema, its migrations, and how a greenprof database is opened.

A greenprof database carries ``PRAGMA application_id = APPLICATION_ID`` and its schema
version in ``PRAGMA user_version``. A file that is not ours is never modified: it is
checked before anything is written. Migrations only go forward.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from greenprof.errors import NotAGreenprofDatabase, SchemaTooNew, StoreError
from greenprof.store.memory import is_memory, open_memory
from greenprof.store.sqlite_ddl import (
    MIGRATIONS,
    REQUIRED_COLUMNS,
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    SCHEMA_V4,
    SCHEMA_V5,
    SCHEMA_VERSION,
)

APPLICATION_ID = 0x47505246  # "GPRF"
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5000

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "REQUIRED_COLUMNS",
    "SCHEMA_V1",
    "SCHEMA_V2",
    "SCHEMA_V3",
    "SCHEMA_V4",
    "SCHEMA_V5",
    "SCHEMA_VERSION",
    "check_file",
    "connect",
    "connect_read_only",
    "describe_sqlite_error",
    "migrate",
]


DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
"""New databases are private: runs hold host names, command lines and tags."""


def check_file(path: Path) -> bool:
    """Whether ``path`` may hold a greenprof database; True if it exists with content.

    Raises :class:`NotAGreenprofDatabase` for a file that is not SQLite at all.
    """
    try:
        if not path.exists():
            return False
        if path.is_dir():
            raise NotAGreenprofDatabase(f"{path} is a directory, not a greenprof database file")
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not header:
        return False
    if header != SQLITE_HEADER:
        raise NotAGreenprofDatabase(
            f"{path} is not a SQLite database, so not a greenprof one; it was left untouched. "
            "Pick another path with --db or $GREENPROF_DB."
        )
    return True


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open a database for writing: initialise or migrate it (``create``: make it if missing).

    The file's identity is checked before anything is written to it. A file greenprof
    creates is ``0600`` in directories it creates ``0700``; if creating it fails, nothing
    is left behind. Every failure is a :class:`StoreError` naming the file and the cause.
    """
    if is_memory(path):
        return _connect_memory(path, create=create)
    existed = check_file(path)
    if not existed and not create:
        raise StoreError(
            f"no greenprof database at {path}: profile a run first (e.g. `greenprof demo`), "
            "or point --db / $GREENPROF_DB at an existing one"
        )
    # A missing or 0-byte file holds nothing to protect: it is ours to initialise, also
    # when another process (a rank of the same job) has just created it.
    created = False if existed else _create_private_file(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not existed:
            _claim(conn)
        _check_identity(conn, path, ours=not existed)
        _set_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(conn)
        _check_columns(conn, path)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if created and _size(path) == 0:  # never a file another process has written to
            _remove_database_files(path)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(describe_sqlite_error(path, exc)) from exc
        raise
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open a database for reading without ever writing to it.

    Works on a read-only mount too: where SQLite cannot open the WAL index there, the
    file is opened immutable (nothing can be changing it). A database written by an
    older greenprof is migrated first, by a separate writing connection, only when the
    file is ours and writable.
    """
    if is_memory(path):
        return _connect_memory(path, create=False)
    if not check_file(path):
        raise StoreError(
            f"no greenprof database at {path}: profile a run first (e.g. `greenprof demo`), "
            "or point --db / $GREENPROF_DB at an existing one"
        )
    try:
        conn = _open_read_only(path)
        try:
            version = _check_identity(conn, path, ours=False, reading=True)
            if version < SCHEMA_VERSION:
                conn.close()
                if not (_writable_dir(path) and os.access(path, os.W_OK)):
                    raise StoreError(
                        f"{path} was written by an older greenprof (schema {version}) and is "
                        "read-only here: open it once with write access to upgrade it"
                    )
                connect(path, create=False).close()
                conn = _open_uri(path, immutable=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _check_columns(conn, path)
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        raise StoreError(describe_sqlite_error(path, exc)) from exc
    return conn


def _connect_memory(path: Path, *, create: bool) -> sqlite3.Connection:
    """An in-memory store (``greenprof.store.memory``): initialised on first use when
    ``create``, identity and schema checked as for a file."""
    conn = open_memory(path)
    try:
        empty = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if empty and not create:
            raise StoreError(f"the in-memory store {path} holds no greenprof runs yet")
        if empty:
            _claim(conn)
        _check_identity(conn, path, ours=empty)
        migrate(conn)
        _check_columns(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(describe_sqlite_error(path, exc)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def describe_sqlite_error(path: Path, exc: sqlite3.Error) -> str:
    """One line for a SQLite failure: the file, what is wrong, what to do."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "malformed" in text:
        return f"{path} is damaged ({text}): restore it from a backup or use another file"
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another process ({text}): try again when it is done"
    if "readonly" in text or "read-only" in text:
        return f"{path} cannot be written ({text}): check its permissions, or use another --db"
    if "disk is full" in text or "disk I/O" in text:
        return f"{path} cannot be written ({text}): free space on its disk, or use another --db"
    return f"{path}: {text}"


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. The switch needs the file to itself, and SQLite may refuse it at once
    (without its busy handler) while another process of the same job is initialising
    the file: retry within the busy timeout."""
    deadline_s = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline_s:
                raise
            time.sleep(0.02)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _claim(conn: sqlite3.Connection) -> None:
    """Stamp an empty file as greenprof's before anything else is written to it, so that a
    process that finds it meanwhile sees whose it is (and waits for the schema)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _open_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro`` (which reads a WAL that has not been checkpointed yet), else immutable
    where the WAL index cannot be opened (a read-only mount without ``-shm``)."""
    conn = _open_uri(path, immutable=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        if _writable_dir(path):
            raise
        return _open_uri(path, immutable=True)
    return conn


def _open_uri(path: Path, *, immutable: bool) -> sqlite3.Connection:
    query = "immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(
        f"{path.absolute().as_uri()}?{query}",
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )


def _writable_dir(path: Path) -> bool:
    """Whether SQLite can create the WAL index beside the file (not a read-only mount)."""
    parent = path.absolute().parent
    try:
        return not os.statvfs(parent).f_flag & os.ST_RDONLY and os.access(parent, os.W_OK)
    except OSError:
        return False


def _create_private_file(path: Path) -> bool:
    """Create ``path`` (and missing directories) privately; False if it appeared meanwhile."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(
            f"cannot create the database {path}: {exc.strerror or exc}; "
            "pick a writable place with --db or $GREENPROF_DB"
        ) from exc
    os.close(fd)
    return True


def _remove_database_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


def _check_identity(
    conn: sqlite3.Connection, path: Path, *, ours: bool, reading: bool = False
) -> int:
    """Refuse files that are not ours; return the schema version.

    A SQLite file without tables is claimed only when greenprof just created it (``ours``):
    an empty database another tool made is not ours to convert.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if "unable to open" in str(exc) or "locked" in str(exc):
            raise
        raise NotAGreenprofDatabase(
            f"{path} cannot be read as SQLite ({exc}); left untouched"
        ) from exc
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{path} has schema version {version}, newer than this greenprof understands "
                f"({SCHEMA_VERSION}): upgrade greenprof (`pip install -U greenprof`)"
            )
        return version
    if tables:
        raise NotAGreenprofDatabase(
            f"{path} is a SQLite database of another application (application_id={app_id}); "
            "greenprof left it untouched. Pick another path with --db or $GREENPROF_DB."
        )
    if ours:
        return version
    if reading:
        raise StoreError(
            f"{path} is an empty SQLite database with no greenprof runs yet: "
            "profile a run into it first"
        )
    raise NotAGreenprofDatabase(
        f"{path} is an empty SQLite database greenprof did not create; left untouched. "
        "Delete it or pick another path with --db or $GREENPROF_DB."
    )


def _check_columns(conn: sqlite3.Connection, path: Path) -> None:
    """A greenprof file whose tables were altered gets one clear error, not a traceback
    from the first query that needs a missing column."""
    for table, required in REQUIRED_COLUMNS.items():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = sorted(required - columns)
        if missing:
            what = "is missing" if not columns else f"lacks column(s) {', '.join(missing)}"
            raise StoreError(
                f"{path} is a greenprof database whose table {table} {what}: the file was "
                "altered; restore it from a backup or use another file"
            )


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Apply the missing forward migrations in one transaction each; return the new version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    while version < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(migrations):
                conn.execute("COMMIT")
                break
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
    return version


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    text = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    statements, buffer = [], ""
    for piece in text.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements

"""A psycopg connection from a ``postgresql://`` URL, with one-line errors.

Every message names the server (host, port, database, user) and the fix, and never the
password: URLs are shown redacted (:func:`redact`) and any text from the server or libpq
has the password scrubbed before it is shown, logged or stored on a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenprof.errors import StoreError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 5
"""How long opening a connection may take (an unreachable host fails after this)."""
KEEPALIVE_OPTIONS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}
"""A server that vanishes (a lost node, a cable) is noticed in about 15 s instead of the
kernel's two hours, so the writer's thread is not stuck while rows queue up."""

UNREACHABLE = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "no such file",
    "server closed the connection",
    "connection is lost",
    "connection failed",
    "the connection is closed",
    "terminating connection",
    "could not translate host",
)
"""Words of libpq and server messages that mean the server cannot be reached (now)."""


def connect_url(url: str, *, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``; a :class:`StoreError` saying what is wrong (the
    server down, the credentials refused, no such database) and what to do."""
    require_psycopg()
    import psycopg

    try:
        return open_raw(url, connect_timeout_s=connect_timeout_s)
    except psycopg.Error as exc:
        raise StoreError(describe_error(url, exc)) from None


def open_raw(url: str, *, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> psycopg.Connection[Any]:
    """An autocommit connection; psycopg's own errors (the writer retries on them)."""
    require_psycopg()
    import psycopg

    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=connect_timeout_s,
        application_name="greenprof",
        **KEEPALIVE_OPTIONS,
    )


def require_psycopg() -> Any:
    """The psycopg module, or a StoreError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg: pip install 'greenprof[postgres]'"
        ) from None
    return psycopg


def parts(url: str) -> dict[str, str]:
    """The URL's connection parameters (libpq's parsing), or {} if it cannot be parsed."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:  # a malformed URL: shown redacted, the parse error says why
        return {}


def redact(url: str) -> str:
    """``url`` as it may be shown: its password (in the user part or a query parameter)
    as ``***`` (:func:`greenprof.store.location.redact_url`)."""
    from greenprof.store.location import redact_url

    try:
        return redact_url(url)
    except ValueError:  # not even a URL: show only what follows the credentials
        return url.rpartition("@")[2]


def scrub(url: str, text: str) -> str:
    """``text`` with the URL's password (and the URL itself) replaced."""
    password = parts(url).get("password")
    text = text.replace(url, redact(url))
    if password:
        text = text.replace(password, "***")
    return text


def describe_error(url: str, exc: BaseException) -> str:
    """One line: the server, what is wrong, what to do; never the password."""
    info = parts(url)
    where = redact(url)
    detail = " ".join(str(exc).split()) or type(exc).__name__
    lowered = detail.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        user = info.get("user", "the user")
        message = (
            f"PostgreSQL at {where} refused the credentials of {user}: check the user and "
            "password in the URL (or ~/.pgpass, $PGPASSWORD)"
        )
    elif "does not exist" in lowered and "database" in lowered:
        db = info.get("dbname", "")
        message = (
            f"the database {db!r} does not exist on the PostgreSQL server at {where}: create "
            f"it (createdb {db}) or fix the database name in the URL"
        )
    elif "role" in lowered and "does not exist" in lowered:
        message = f"PostgreSQL at {where}: {detail}; check the user in the URL"
    elif any(word in lowered for word in UNREACHABLE):
        message = (
            f"the PostgreSQL server at {where} is not reachable ({_short(detail)}): start it, "
            "or check the host and port in the URL"
        )
    elif "permission denied" in lowered:
        message = (
            f"PostgreSQL at {where}: {_short(detail)}; grant the user CREATE and write "
            "rights on the database, or use another database"
        )
    else:
        message = f"PostgreSQL at {where}: {_short(detail)}"
    return scrub(url, message)


def _short(detail: str, limit: int = 200) -> str:
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"

"""argparse ``type=`` functions for every numeric or reference argument of ``greenprof``.

A value argparse cannot use must stop at parsing, with one line that names the argument
and the allowed range (``greenprof: error: serve: argument --port: expected a TCP port
(0 to 65535, 0 picks any free port), got 99999``), never travel on and fail later as an
``OverflowError`` from SQLite or a socket. Each function here is small and pure; the
factories return a function because argparse calls ``type`` with the text alone.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from typing import TextIO

SQLITE_MAX_INT = 2**63 - 1
"""The largest integer SQLite stores (run ids, step counts, LIMIT)."""


def integer(
    minimum: int, maximum: int = SQLITE_MAX_INT, *, what: str = "an integer", note: str = ""
) -> Callable[[str], int]:
    """A ``type=`` for integers in ``[minimum, maximum]``.

    ``note`` is added to the range in the message (e.g. "or 0 for any free port").
    """
    allowed = f"{minimum} to {maximum}" + (f", {note}" if note else "")

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} ({allowed}), got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected {what} ({allowed}), got {text.strip()}")
        return value

    return parse


positive_int = integer(1, what="a positive integer")
"""1 to SQLite's largest integer (step counts, ``--limit``)."""

port = integer(0, 65535, what="a TCP port", note="0 picks any free port")
"""A TCP port; 0 asks the system for a free one (``greenprof serve`` prints which)."""


def real(
    minimum: float,
    maximum: float = math.inf,
    *,
    exclusive_minimum: bool = False,
    what: str = "a number",
) -> Callable[[str], float]:
    """A ``type=`` for finite floats in ``[minimum, maximum]`` (``(minimum, ...]`` if
    ``exclusive_minimum``); ``nan`` and ``inf`` are refused whatever the range."""
    low = "above" if exclusive_minimum else "at least"
    allowed = f"{low} {minimum:g}" + ("" if math.isinf(maximum) else f" and at most {maximum:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} ({allowed}), got {text!r}") from None
        too_low = value <= minimum if exclusive_minimum else value < minimum
        if not math.isfinite(value) or too_low or value > maximum:
            raise argparse.ArgumentTypeError(f"expected {what} ({allowed}), got {text.strip()}")
        return value

    return parse


def text(value: str) -> str:
    """Text that can be stored and looked up: no undecodable bytes.

    On POSIX, argv bytes that are not UTF-8 arrive as lone surrogates
    (``greenprof show $'\\xff'``); SQLite cannot take them, so they stop here.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{value!r} holds bytes that are not UTF-8; retype it"
        ) from None
    return value


def run_ref(text_: str) -> str:
    """A RUN argument: a run id, or a run name (kept as text; the store resolves it).

    Digits must fit SQLite's 64-bit integers: ``99999999999999999999`` is an error here,
    not an ``OverflowError`` in the query. Digit strings ``int()`` cannot read (``²``)
    would fail the same way in the store, so they are refused too.
    """
    ref = text(text_)
    if ref.isdigit():
        try:
            value = int(ref)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{ref!r} is neither a run id (0 to {SQLITE_MAX_INT}) nor a usable run name"
            ) from None
        if value > SQLITE_MAX_INT:
            raise argparse.ArgumentTypeError(
                f"run id {ref} is out of range: run ids are 0 to {SQLITE_MAX_INT}"
            )
    return ref


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")


def host(text: str) -> str:
    """An address to bind: a host name, an IPv4 or an IPv6 address (no URL, no spaces).

    Checked here because the socket layer turns odd text into UnicodeError (IDNA) or a
    name lookup, neither of which belongs to a typo.
    """
    candidate = text.strip("[]") if text.startswith("[") else text
    if _HOSTNAME.match(candidate) or (":" in candidate and _IPV6.match(candidate)):
        return candidate
    raise argparse.ArgumentTypeError(
        f"expected a host name or an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1), got {text!r}"
    )


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--db`` option every verb that touches a database takes."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="run database (default: $GREENPROF_DB, else the user data directory)",
    )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag of the read commands (the fields are listed in docs/json.md)."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document instead of text (fields and units: docs/json.md)",
    )


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stdout) is a terminal: the full-screen views need
    one; on a pipe or in a file the commands print plain text instead."""
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False

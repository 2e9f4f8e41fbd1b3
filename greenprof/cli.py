"""The ``greenprof`` command.

Each verb is a small function; feature packages add their own verbs through a
``register(subparsers)`` function in their ``commands`` module (imported here, light:
heavy libraries are imported inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from greenprof.errors import GreenprofError
from greenprof.textsafe import terminal_text

Handler = Callable[[argparse.Namespace], int]

_COMMAND_MODULES = (
    "greenprof.commands",
    "greenprof.tui.commands",
    "greenprof.exporters.commands",
    "greenprof.hooks.commands",
    "greenprof.store.commands",
)


class Parser(argparse.ArgumentParser):
    """argparse with greenprof's error line: ``greenprof: error: ...``, exit status 2.

    One line, whatever the verb, so that scripts and people see the same shape for a
    mistyped flag as for a missing run; the message is made terminal-safe because it
    quotes what was typed. Sub-commands inherit this class (argparse's default).
    """

    def error(self, message: str) -> NoReturn:
        verb = self.prog.removeprefix("greenprof").strip()
        where = f"{verb}: " if verb else ""
        self.exit(
            2,
            f"greenprof: error: {where}{terminal_text(message)} "
            f"(`{self.prog} --help` lists the arguments)\n",
        )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every verb registered."""
    import importlib

    parser = Parser(
        prog="greenprof",
        description="Energy and carbon footprint of deep-learning training, step by step.",
        epilog="Runs are stored in SQLite: --db PATH, else $GREENPROF_DB, else the user data "
        "directory. `greenprof COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--db`` option every verb that touches a database takes."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="run database (default: $GREENPROF_DB, else the user data directory)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("greenprof")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except GreenprofError as exc:
        print(f"greenprof: error: {terminal_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("greenprof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the environment, not greenprof: a full disk, a closed stdout
        print(f"greenprof: error: {terminal_text(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

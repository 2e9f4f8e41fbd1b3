"""The ``greenprof`` command.

Each verb is a small function; feature packages add their own verbs through a
``register(subparsers)`` function in their ``commands`` module (imported here, light:
heavy libraries are imported inside the handlers).
"""

from __future__ import annotations

import argparse
import re
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
    "greenprof.bench.commands",
    "greenprof.completion",
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
            f"greenprof: error: {where}{terminal_text(message)}{_closest_choice(message)} "
            f"(`{self.prog} --help` lists the arguments)\n",
        )


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<typed>.*?)' \(choose from (?P<choices>.*)\)")


def _closest_choice(message: str) -> str:
    """``; did you mean csv?`` for argparse's invalid-choice message (``export csvv``,
    ``completion bsh``), else nothing."""
    import difflib

    found = _INVALID_CHOICE.search(message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found["choices"])
    close = difflib.get_close_matches(found["typed"], choices, n=3, cutoff=0.6)
    return f"; did you mean {terminal_text(' or '.join(close))}?" if close else ""


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


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The verbs of ``parser`` (or of a verb with its own verbs, like ``export``), by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def listed_subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The verbs ``--help`` lists (those registered with a help text), in their order;
    hidden verbs such as ``__complete`` are left out."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [choice.dest for choice in action._choices_actions]
    return []


def unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The error line for a mistyped verb (``greenprof shwo``), with the closest verbs
    (difflib), or None when the first word is a verb or an option."""
    import difflib

    if not argv or argv[0].startswith("-") or argv[0] in subcommands(parser):
        return None
    typed = argv[0]
    close = difflib.get_close_matches(typed, listed_subcommands(parser), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"greenprof: error: unknown command {terminal_text(repr(typed))}{hint} "
        "(`greenprof --help` lists the commands)"
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
    arguments = list(sys.argv[1:] if argv is None else argv)
    mistyped = unknown_command(parser, arguments)
    if mistyped is not None:
        print(mistyped, file=sys.stderr)
        return 2
    args = parser.parse_args(arguments)
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

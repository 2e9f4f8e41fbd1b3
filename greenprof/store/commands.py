"""The store's verbs: ``greenprof repair`` (attribute and close the runs whose process died),
``greenprof merge`` and ``greenprof push`` (copy runs between stores)."""

from __future__ import annotations

import argparse
from typing import Any

from greenprof.cliargs import add_db_argument


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the store's verbs to the command line."""
    repair = subparsers.add_parser(
        "repair",
        help="attribute the stored steps of runs whose process died, and close those runs",
        description="A profiled process that is killed (SIGKILL, the OOM killer, a lost node) "
        "leaves its run 'running' with its last steps' boundaries stored but not yet "
        "attributed. repair attributes them from the stored sensor readings (flagged "
        "'recovered'), recomputes the run's totals and marks it interrupted. Without RUN it "
        "repairs every run whose process is gone (this host) or silent for 30 s (any host). "
        "A new profiled run does the same for this host's runs when it starts.",
    )
    add_db_argument(repair)
    repair.add_argument(
        "runs", metavar="RUN", nargs="*", type=_run_id, help="run ids to repair (default: all dead)"
    )
    repair.set_defaults(handler=_repair)

    merge = subparsers.add_parser(
        "merge",
        help="copy the runs of several databases into one (e.g. every node's file of a job)",
        description="Copy every finished run of the SOURCE databases, with its devices, steps, "
        "samples and pending steps, into OUTPUT (created if missing; a SQLite file or a "
        "postgresql:// URL). Runs OUTPUT already holds are skipped, so merging twice copies "
        "nothing twice; each copied run gets a new run id in OUTPUT. Runs still running are "
        "not copied.",
    )
    merge.add_argument("sources", metavar="SOURCE", nargs="+", help="databases to copy from")
    merge.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="target database")
    merge.set_defaults(handler=_merge)

    push = subparsers.add_parser(
        "push",
        help="copy the runs of local databases to a PostgreSQL server",
        description="Copy every finished run of the SOURCE databases to the store given by "
        "--to (a postgresql:// URL, or a SQLite file), for nodes that could not reach the "
        "server while training. Runs the server already holds are skipped: pushing twice "
        "copies nothing twice.",
    )
    push.add_argument("sources", metavar="SOURCE", nargs="+", help="databases to copy from")
    push.add_argument("--to", required=True, metavar="URL", help="target store")
    push.set_defaults(handler=_push)


def _run_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError(f"a run id is a positive integer; got {text!r}")
    return int(text)


def _repair(args: argparse.Namespace) -> int:
    from greenprof.store.location import parse_location
    from greenprof.store.recovery import repair
    from greenprof.textsafe import terminal_text

    location = parse_location(args.db)
    recoveries = repair(location, run_ids=args.runs or None)
    if not recoveries:
        print(f"nothing to repair in {terminal_text(location.display)}: no run's process has died")
        return 0
    for r in recoveries:
        print(
            f"run {r.run_id} {terminal_text(r.name)}: {r.recovered_steps} step(s) recovered "
            f"from stored readings, {r.steps} in all; marked interrupted"
        )
    return 0


def _merge(args: argparse.Namespace) -> int:
    return _transfer(args.sources, args.output)


def _push(args: argparse.Namespace) -> int:
    return _transfer(args.sources, args.to)


def _transfer(sources: list[str], target: str) -> int:
    import sys

    from greenprof.store.transfer import transfer
    from greenprof.textsafe import terminal_text

    def say(line: str) -> None:
        print(terminal_text(line), file=sys.stderr, flush=True)

    transfer(sources, target, progress=say)
    return 0

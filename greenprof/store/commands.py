"""``greenprof repair``: attribute and close the runs whose process died."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from greenprof.cli import add_db_argument


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


def _run_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError(f"a run id is a positive integer; got {text!r}")
    return int(text)


def _repair(args: argparse.Namespace) -> int:
    from greenprof.store.paths import resolve_db_path
    from greenprof.store.recovery import repair
    from greenprof.textsafe import terminal_text

    path: Path = resolve_db_path(args.db)
    recoveries = repair(path, run_ids=args.runs or None)
    if not recoveries:
        print(f"nothing to repair in {terminal_text(str(path))}: no run's process has died")
        return 0
    for r in recoveries:
        print(
            f"run {r.run_id} {terminal_text(r.name)}: {r.recovered_steps} step(s) recovered "
            f"from stored readings, {r.steps} in all; marked interrupted"
        )
    return 0

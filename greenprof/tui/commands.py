"""The `greenprof` verbs of greenprof.tui: ``top``, ``history``, ``compare``.

Textual is imported inside the handlers, so ``import greenprof.cli`` stays light. The
database is opened (and checked) before the UI starts: a missing or foreign file is a
clear error on stderr and a non-zero exit status, not a broken screen.

The full-screen views need a terminal. On a pipe or in a file, ``history`` prints the
run list and ``compare`` the comparison table and its verdict, then exit
(:mod:`greenprof.tui.plain`); ``--json`` prints one JSON document (docs/json.md);
``top``, which only makes sense live, refuses with one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from greenprof import cliargs
from greenprof.cliargs import add_db_argument, add_json_argument, is_terminal
from greenprof.errors import GreenprofError
from greenprof.textsafe import terminal_text

if TYPE_CHECKING:
    from greenprof.store.location import StoreLocation
    from greenprof.tui.app import GreenprofApp


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's verbs to the command line."""
    top = subparsers.add_parser(
        "top",
        help="watch a run's power, energy per step and carbon live (terminal UI)",
        description="Live monitor of a run, read from the run database (so it works from "
        "another terminal). Without RUN: the newest running run, following new ones.",
    )
    top.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        type=cliargs.run_ref,
        help="run id, or name (its newest run)",
    )
    add_db_argument(top)
    top.add_argument(
        "--demo",
        action="store_true",
        help="watch a simulated run (fake sensors, temporary database): the UI without a GPU",
    )
    top.add_argument(
        "--refresh",
        type=_REFRESH,
        default=1.0,
        metavar="SECONDS",
        help="refresh period (1.0; 0.1 to 3600)",
    )
    top.set_defaults(handler=_top)

    history = subparsers.add_parser(
        "history",
        help="browse, filter and sort all runs; mark runs and compare them",
        description="A full-screen table of every run on a terminal; on a pipe, the same "
        "table as text (newest first).",
    )
    add_db_argument(history)
    add_json_argument(history)
    history.set_defaults(handler=_history)

    compare = subparsers.add_parser(
        "compare",
        help="compare two or more runs: energy, J/sample, carbon, and which is more efficient",
        description="Side by side, with percent differences from the first run and a verdict. "
        "A full-screen view on a terminal; on a pipe, the table and the verdict as text.",
    )
    compare.add_argument(
        "runs",
        metavar="RUN",
        nargs="+",
        type=cliargs.run_ref,
        help="run ids, names (a name means its newest run) or job ids (every rank of the job)",
    )
    add_db_argument(compare)
    add_json_argument(compare)
    compare.set_defaults(handler=_compare)


_REFRESH = cliargs.real(0.1, 3600.0, what="seconds")
"""Faster than 0.1 s would spend the UI's time re-reading the database, not showing it."""


def _resolve(db: str | None, refs: list[str]) -> tuple[StoreLocation, list[str]]:
    """Open the database (raising StoreError subclasses with their messages) and turn run
    references into ids, each run once."""
    from greenprof.refs import expand_jobs
    from greenprof.store import RunStore

    with RunStore(db) as store:
        run_ids = dict.fromkeys(str(store.run(ref).run_id) for ref in expand_jobs(store, refs))
        return store.location, list(run_ids)  # a server store has no path


def _run_app(app: GreenprofApp) -> int:
    app.run()
    return app.return_code or 0


def _top(args: argparse.Namespace) -> int:
    if not is_terminal():
        raise GreenprofError(
            "top is a live full-screen view and stdout is not a terminal; for text use "
            "`greenprof show RUN`, `greenprof runs` or `greenprof runs --json`"
        )
    if args.demo:
        return _top_demo(args)
    from greenprof.tui.app import GreenprofApp

    path, refs = _resolve(args.db, [args.run]) if args.run else (args.db, [])  # waits for a db
    return _run_app(GreenprofApp(path, "live", refs, refresh_s=args.refresh))


def _top_demo(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from greenprof.tui.app import GreenprofApp
    from greenprof.tui.demo import BANNER, SimulatedTraining

    with tempfile.TemporaryDirectory(prefix="greenprof-demo-") as directory:
        path = Path(directory) / "demo.db"
        training = SimulatedTraining(path).start()
        if training.wait_for_run() is None:
            training.stop()
            reason = terminal_text(str(training.error))
            print(f"greenprof: error: the simulation did not start: {reason}", file=sys.stderr)
            return 1
        try:
            app = GreenprofApp(path, "live", refresh_s=args.refresh, banner=BANNER)
            return _run_app(app)
        finally:
            training.stop()


def _history(args: argparse.Namespace) -> int:
    if args.json or not is_terminal():
        return _history_text(args)
    from greenprof.tui.app import GreenprofApp

    path, _ = _resolve(args.db, [])
    return _run_app(GreenprofApp(path, "history"))


def _history_text(args: argparse.Namespace) -> int:
    from greenprof.store import RunStore
    from greenprof.textsafe import terminal_lines

    with RunStore(args.db) as store:
        runs = store.runs()
        if args.json:
            from greenprof.jsonout import dumps, runs_document

            print(dumps(runs_document(runs, database=store.location.display)))
            return 0
        if not runs:
            where = terminal_text(store.location.display)
            print(f"no runs in {where} yet: `greenprof demo` creates one", file=sys.stderr)
            return 0
        from greenprof.tui.plain import history_lines

        print(terminal_lines(history_lines(runs)))
    return 0


_TOO_FEW = "greenprof: error: compare needs two or more runs (or a job of several ranks)"


def _compare(args: argparse.Namespace) -> int:
    if args.json or not is_terminal():
        return _compare_text(args.db, list(args.runs), as_json=args.json)
    from greenprof.tui.app import GreenprofApp

    path, refs = _resolve(args.db, list(args.runs))
    if len(refs) < 2:
        print(_TOO_FEW, file=sys.stderr)
        return 2
    return _run_app(GreenprofApp(path, "compare", refs))


def _compare_text(db: str | None, refs: list[str], *, as_json: bool) -> int:
    """The comparison without the UI (works on a PostgreSQL store too: no file path)."""
    from greenprof.refs import expand_jobs
    from greenprof.store import RunStore
    from greenprof.textsafe import terminal_lines
    from greenprof.tui.comparison import compare
    from greenprof.tui.plain import comparison_document, comparison_lines, load_summaries

    with RunStore(db) as store:
        # a run named twice (by id and by name, or in a job given too) is compared once
        run_ids = dict.fromkeys(str(store.run(ref).run_id) for ref in expand_jobs(store, refs))
        if len(run_ids) < 2:
            print(_TOO_FEW, file=sys.stderr)
            return 2
        summaries = load_summaries(store, list(run_ids))
        database = store.location.display
    comparison = compare(summaries)
    if as_json:
        from greenprof.jsonout import dumps

        print(dumps(comparison_document(summaries, comparison, database=database)))
    else:
        print(terminal_lines(comparison_lines(comparison)))
    return 0

"""The end-of-run summary: what a run prints on stderr when it ends.

A :class:`SummaryPrinter` is a run observer (:mod:`greenprof.observers`) that the
:class:`~greenprof.Profiler` adds unless ``summary=False`` (or ``$GREENPROF_SUMMARY=0``).
When the run has ended, it reads the run back from the store (the run's writer is closed
by then, so what it prints is what ``greenprof show`` reads) and writes
:func:`greenprof.summary.end_of_run_lines`. ``greenprof run`` prints the same lines from
its own process, once the command has exited and the run's ending is recorded
(:func:`print_run_summary`).

A summary is a courtesy: nothing here may fail the run or the program. A failure to
build it is logged at debug level and nothing is printed.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from greenprof.records import RunStatus
from greenprof.store.location import StoreLocation, parse_location

if TYPE_CHECKING:
    from greenprof.observers import RunHandle
    from greenprof.stats import ProfilerStats

log = logging.getLogger("greenprof")


def print_run_summary(
    db: Path | str | os.PathLike[str], run_id: int, stream: TextIO | None = None
) -> bool:
    """Print run ``run_id`` of the store ``db`` as its end-of-run summary on ``stream``
    (default: the current ``sys.stderr``). Returns whether it was printed; never raises."""
    try:
        from greenprof.store.reader import RunStore
        from greenprof.summary import end_of_run_lines
        from greenprof.textsafe import terminal_lines

        with RunStore(db) as store:
            run = store.run(run_id)
            location = store.location
            lines = end_of_run_lines(
                run,
                store.device_energy_j(run_id),
                where=location.display,
                db_option=db_option(location),
            )
        out = sys.stderr if stream is None else stream
        out.write(terminal_lines(lines) + "\n")
        out.flush()
    except Exception as exc:  # a courtesy: never fail the run or the program over it
        log.debug("greenprof: no end-of-run summary for run %s: %r", run_id, exc)
        return False
    return True


def db_option(location: StoreLocation, env: Mapping[str, str] = os.environ) -> str:
    """``--db ...`` for a command to find the store at ``location``; empty for the
    default store (``$GREENPROF_DB`` or the user data directory)."""
    default = parse_location(None, env)
    if location.kind == default.kind == "sqlite":
        if Path(location.target).resolve() == Path(default.target).resolve():
            return ""
    elif location.target == default.target:
        return ""
    return f"--db {shlex.quote(location.display)}"


class SummaryPrinter:
    """Prints the run's summary once it has ended (see the module docstring).

    Example::

        greenprof.Profiler("demo", summary=False, observers=[SummaryPrinter(my_stream)])
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        """Where to print (None: ``sys.stderr`` as it is when the run ends, so that a
        redirection made after the start, e.g. by pytest's capture, is followed)."""

    def run_started(self, run: RunHandle) -> None:
        pass

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        pass

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        print_run_summary(run.db_path, run.run_id, self._stream)

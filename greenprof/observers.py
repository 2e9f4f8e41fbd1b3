"""Run observers: what else happens when a run starts, as it goes, and when it ends.

The Prometheus endpoint and the Pushgateway push (``greenprof.exporters.live``) are
observers; an OpenTelemetry exporter would be one more. The core only knows this
Protocol, never an exporter: the :class:`~greenprof.Profiler` façade builds the
observers its settings ask for and passes any given with ``observers=``.

An observer must not fail the run: an exception it raises is logged and noted on the
run, and training goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from greenprof.records import RunStatus

if TYPE_CHECKING:
    from greenprof.stats import ProfilerStats

PROGRESS_INTERVAL_S = 1.0
"""How often :meth:`RunObserver.run_progress` is called while a run goes on."""


@dataclass(frozen=True, slots=True)
class RunHandle:
    """What an observer learns of the run it observes."""

    run_id: int
    name: str
    db_path: Path | str
    """The SQLite file, or the server's URL."""
    note: Callable[[str], None]
    """Record a caveat on the run (``greenprof show`` lists it), e.g. why an export failed."""


class RunObserver(Protocol):
    """Told of a run's start, its progress (about once a second, on the sampler thread:
    be quick) and its end (after the run is stored, so the store can be read).

    Example::

        class Printer:
            def run_started(self, run): print("started", run.run_id)
            def run_progress(self, run, stats): print(stats.steps_attributed, "steps")
            def run_stopped(self, run, status): print(run.name, status)

        greenprof.Profiler("demo", observers=[Printer()])
    """

    def run_started(self, run: RunHandle) -> None: ...

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None: ...

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None: ...

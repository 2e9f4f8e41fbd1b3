"""Run observers: what else happens when a run starts, as it goes, and when it ends.

The Prometheus endpoint and the Pushgateway push (``greenprof.exporters.live``) are
observers; an OpenTelemetry exporter would be one more. The core only knows this
Protocol, never an exporter: the :class:`~greenprof.Profiler` façade builds the
observers its settings ask for and passes any given with ``observers=``.

An observer must not fail the run: an exception it raises is logged and noted on the
run, and training goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from greenprof.records import RunStatus

if TYPE_CHECKING:
    from greenprof.stats import ProfilerStats

log = logging.getLogger("greenprof")

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


class ObserverSet:
    """The observers of one run, each told in turn. One that raises is logged (and, but
    at the end, noted on the run); the others are still told, and the run goes on."""

    def __init__(self, observers: Sequence[RunObserver], run: RunHandle) -> None:
        self.observers = tuple(observers)
        self.run = run

    def started(self) -> None:
        self._tell("run_started")

    def progress(self, stats: ProfilerStats) -> None:
        self._tell("run_progress", stats)

    def stopped(self, status: RunStatus) -> None:
        self._tell("run_stopped", status)

    def _tell(self, event: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(self.run, *args)
            except Exception as exc:
                name = type(observer).__name__
                log.warning("greenprof: %s.%s failed: %r", name, event, exc)
                if event != "run_stopped":  # the run is closed by then
                    self.run.note(f"{name}.{event} failed: {exc!r}")

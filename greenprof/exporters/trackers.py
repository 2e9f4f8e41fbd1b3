"""Your tracker gets the numbers: a run's energy and carbon logged to the MLflow or
Weights & Biases run that is active when the Profiler starts, or to a run named by its
id (:func:`mlflow_run_observer`: Lightning's ``MLFlowLogger``, which logs through an
``MlflowClient`` and leaves no active run).

When: ``trackers`` (``Profiler(trackers=...)``, ``$GREENPROF_TRACKERS``) is

- ``auto`` (the default): a tracker the script has already imported (``mlflow`` or
  ``wandb`` in ``sys.modules``) whose run is active at the Profiler's start
  (``mlflow.active_run()`` on the starting thread, ``wandb.run``) gets the numbers.
  Nothing is imported: a script that does not use a tracker never pays for one.
- ``mlflow``, ``wandb`` or both (``mlflow,wandb``): those, imported if need be; a named
  tracker with no active run is one warning.
- ``off`` (or ``none``): never.

What: see :mod:`greenprof.exporters.tracker_feed` (``greenprof/energy_j``,
``greenprof/co2_g``, ``greenprof/j_per_sample``, ``greenprof/power_w`` and per-epoch
totals), plus run tags at the start: ``greenprof.run_id``, ``greenprof.run_name``,
``greenprof.db`` (a server URL without its password) and ``greenprof.sensors``
(``gpu:0=counter cpu:0=model``: how each device was measured).

How: each observer has its own daemon thread. The sampler's progress call (about once a
second) only wakes it; the thread reads the new steps from the store and logs them in
one batch, so a slow tracker server never slows sampling, and nothing runs on the
training thread. The end of the run waits for the last batch (at most
``stop_timeout_s``). A tracker error is logged once as a warning, noted on the run, and
never raised; later batches are still tried.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

from greenprof.errors import ConfigError
from greenprof.exporters.tracker_clients import (
    FINDERS,
    ImportModule,
    MlflowRun,
    TrackerClient,
    tracker_module,
)
from greenprof.exporters.tracker_feed import TrackerFeed
from greenprof.observers import RunHandle, RunObserver
from greenprof.records import RunInfo, RunStatus
from greenprof.stats import ProfilerStats
from greenprof.store.location import parse_location
from greenprof.store.reader import RunStore
from greenprof.tracker_setting import (
    AUTO,
    KNOWN_TRACKERS,
    TRACKERS_ENV,
    parse_trackers,
    trackers_wanted,
    unknown_tracker,
)

__all__ = [
    "AUTO",
    "KNOWN_TRACKERS",
    "TRACKERS_ENV",
    "TrackerObserver",
    "mlflow_run_observer",
    "parse_trackers",
    "run_tags",
    "tracker_observers",
    "trackers_wanted",
]

log = logging.getLogger("greenprof")

STOP_TIMEOUT_S = 10.0
"""How long the end of a run waits for the last batch to reach a tracker."""
READ_BATCH_STEPS = 50_000
"""The most steps one wake-up reads: a backlog is caught up over a few wake-ups."""


def tracker_observers(
    trackers: Iterable[str],
    *,
    modules: Mapping[str, ModuleType] = sys.modules,
    import_module: ImportModule = importlib.import_module,
) -> list[RunObserver]:
    """The observers for a checked ``trackers`` setting (see :func:`parse_trackers`):
    one per tracker that may get the numbers (whether its run is active is seen when
    the run starts). Imports nothing.

    Example::

        greenprof.Profiler("demo", observers=tracker_observers(["mlflow"]))
    """
    names = tuple(trackers)
    forced = AUTO not in names
    chosen = names if forced else tuple(n for n in KNOWN_TRACKERS if n in modules)
    return [
        TrackerObserver(name, forced=forced, modules=modules, import_module=import_module)
        for name in chosen
    ]


def mlflow_run_observer(
    run_id: str,
    tracking_uri: str,
    *,
    modules: Mapping[str, ModuleType] = sys.modules,
    import_module: ImportModule = importlib.import_module,
) -> TrackerObserver:
    """An observer that logs to the MLflow run ``run_id`` at ``tracking_uri``, active or
    not (a run created with an ``MlflowClient``, as Lightning's ``MLFlowLogger`` does).
    Imports ``mlflow`` if the script has not (its caller already uses it).

    Example::

        greenprof.Profiler("demo", observers=[mlflow_run_observer(run_id, "file:./mlruns")])
    """
    mlflow = modules.get("mlflow") or import_module("mlflow")
    return TrackerObserver("mlflow", client=MlflowRun(mlflow, run_id, tracking_uri))


class TrackerObserver:
    """Logs one run's energy and carbon to one tracker's active run (see the module), or
    to ``client``'s run when given (then no active run is looked for).

    Example::

        with mlflow.start_run():
            with greenprof.Profiler("demo", observers=[TrackerObserver("mlflow")]):
                ...
    """

    def __init__(
        self,
        tracker: str,
        *,
        forced: bool = True,
        client: TrackerClient | None = None,
        modules: Mapping[str, ModuleType] = sys.modules,
        import_module: ImportModule = importlib.import_module,
        open_store: Callable[[str], RunStore] = RunStore,
        wall_clock: Callable[[], float] = time.time,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        if tracker not in FINDERS:
            raise ConfigError(unknown_tracker(tracker))
        self.tracker = tracker
        self.forced = forced
        self.client: TrackerClient | None = None
        self._given = client
        self._modules = modules
        self._import_module = import_module
        self._open_store = open_store
        self._wall_clock = wall_clock
        self._stop_timeout_s = stop_timeout_s
        self._wake = threading.Event()
        self._energy_j = 0.0
        self._final: RunStatus | None = None
        self._thread: threading.Thread | None = None
        self._warned = False

    def run_started(self, run: RunHandle) -> None:
        """Find the tracker's active run (here, on the starting thread) and start the
        observer's thread; without an active run, nothing more happens. An observer
        may observe several runs, one after the other."""
        self.client, self._final, self._energy_j, self._warned = None, None, 0.0, False
        self._wake.clear()
        if self._given is not None:
            self._begin(run, self._given)
            return
        try:
            module = tracker_module(
                self.tracker,
                forced=self.forced,
                modules=self._modules,
                import_module=self._import_module,
            )
            client = None if module is None else FINDERS[self.tracker](module)
        except Exception as exc:
            self._warn(run, f"{self.tracker} not usable: {exc!r}")
            return
        if client is None:
            if self.forced:
                log.warning(
                    "greenprof: trackers=%s but no %s run is active: nothing logged there",
                    self.tracker,
                    self.tracker,
                )
            return
        self._begin(run, client)

    def _begin(self, run: RunHandle, client: TrackerClient) -> None:
        self.client = client
        self._thread = threading.Thread(
            target=self._work, args=(run, client), name=f"greenprof-{self.tracker}", daemon=True
        )
        self._thread.start()

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        """Wake the observer's thread (returns at once: this is the sampler's thread)."""
        self._energy_j = stats.energy_j
        self._wake.set()

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        """Log the last steps and the stored totals, waiting at most ``stop_timeout_s``."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._final = status
        self._wake.set()
        thread.join(self._stop_timeout_s)
        if thread.is_alive():
            label = self.client.run_label if self.client else self.tracker
            waited = f"{self._stop_timeout_s:g} s"
            self._warn(run, f"{label} did not take the run's last numbers within {waited}")

    # The observer's thread ------------------------------------------------------

    def _work(self, run: RunHandle, client: TrackerClient) -> None:
        store: RunStore | None = None
        try:
            store = self._open_store(str(run.db_path))
            info = store.run(run.run_id)
            feed = TrackerFeed(info.carbon)
            self._call(run, lambda: client.set_tags(run_tags(run, info)))
            while True:
                self._wake.wait()
                self._wake.clear()
                final = self._final is not None
                self._send(run, client, store, feed, final=final)
                if final:
                    return
        except Exception as exc:
            self._warn(run, f"{client.run_label} gets no numbers: {exc!r}")
        finally:
            if store is not None:
                store.close()

    def _send(
        self,
        run: RunHandle,
        client: TrackerClient,
        store: RunStore,
        feed: TrackerFeed,
        *,
        final: bool,
    ) -> None:
        points = []
        while True:  # catch up on a backlog, one bounded read at a time
            steps = store.step_batch(run.run_id, after_step=feed.last_step, size=READ_BATCH_STEPS)
            points += feed.points(steps, run_energy_j=None if final else self._energy_j)
            if len(steps) < READ_BATCH_STEPS:
                break
        totals: dict[str, float] = {}
        if final:
            info = store.run(run.run_id)
            points += feed.final_points(info)
            totals = feed.totals(info)
        timestamp_ms = int(self._wall_clock() * 1000)
        if points:
            self._call(run, lambda: client.log(points, timestamp_ms))
        if final:
            self._call(run, lambda: client.finish(totals))

    def _call(self, run: RunHandle, action: Callable[[], None]) -> None:
        """One tracker call; its failure is a warning (once) and the run goes on."""
        try:
            action()
        except Exception as exc:
            label = self.client.run_label if self.client else self.tracker
            self._warn(run, f"logging to {label} failed: {exc!r}")

    def _warn(self, run: RunHandle, message: str) -> None:
        if self._warned:
            log.debug("greenprof: %s", message)
            return
        self._warned = True
        log.warning("greenprof: %s", message)
        try:
            run.note(message)
        except Exception as exc:  # the run may be closed already
            log.debug("greenprof: could not note %r on the run: %r", message, exc)


def run_tags(run: RunHandle, info: RunInfo) -> dict[str, str]:
    """The tags that tie a tracker's run to greenprof's: run id and name, the store
    (a server URL without its password) and how each device was measured."""
    return {
        "greenprof.run_id": str(run.run_id),
        "greenprof.run_name": run.name,
        "greenprof.db": parse_location(str(run.db_path)).display,
        "greenprof.sensors": " ".join(f"{d.device}={d.method}" for d in info.devices),
    }

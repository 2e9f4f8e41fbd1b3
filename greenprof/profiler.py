"""The Profiler: the façade users hold; the step API and the run's lifecycle.

It composes named parts: :class:`~greenprof.config.ProfilerConfig` (the settings,
checked), :class:`~greenprof.marks.StepMarks` (the hot path: the training thread only
appends a monotonic timestamp to a deque per step boundary, no lock, no I/O),
:class:`~greenprof.session.Session` (a started run: sensors, sampler thread,
attribution, writer thread) and run observers (:mod:`greenprof.observers`; the
Prometheus exporters are built here, the composition root, from the settings). What is
left here is the lifecycle: re-entrant start/stop from any thread, joining an ambient
whole-process run, a forked child disowning its parent's run, SIGTERM. Errors in the
background threads are logged once and recorded on the run; they never reach training.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from greenprof.active import Token, activate, current_profiler, deactivate, profile
from greenprof.config import ProfilerConfig
from greenprof.marks import MARK_METHODS, StepAPI, StepMarks
from greenprof.observers import ObserverSet, RunHandle, RunObserver
from greenprof.process import TermHandler, on_fork_in_child
from greenprof.records import DeviceInfo, RunStatus, TagValue
from greenprof.run_sensors import SensorSet, detect, explicit_sensors
from greenprof.sensors.base import PowerSensor
from greenprof.session import OpenWriter, Session, open_session, open_store_writer
from greenprof.stats import ProfilerStats
from greenprof.tracker_setting import trackers_wanted

__all__ = ["Profiler", "current_profiler", "profile"]

log = logging.getLogger("greenprof")


class Profiler(StepAPI):
    """Profiles one training run: per-step energy per device, stored in SQLite.

    Example::

        with greenprof.Profiler("resnet18-bs64", country="DEU", tags={"batch_size": 64}) as prof:
            for x, y in loader:
                with prof.step(samples=len(x)):
                    train_step(x, y)

    Args:
        run: the run's name (default: the script's name).
        db: the database path (default: ``$GREENPROF_DB``, else the user data directory).
        sensors: explicit sensors; without them the best available are detected.
        interval_s: sensor polling interval (0.1 s matches NVIDIA's counter).
        country, region, pue, intensity_g_per_kwh: carbon settings (see ``greenprof.carbon``).
        tags: free-form labels stored with the run (values become strings).
        job: the job this run is one rank of (default: from the launcher's environment,
            see ``greenprof.jobs``; ``$GREENPROF_JOB`` sets it for every rank).
        ambient: a whole-process run (``greenprof run`` starts one): a Profiler started
            inside it joins it instead of starting a second, overlapping run.
        framework: which hook drives the run ("torch", "keras", ...), for the record.
        expected_steps: the planned number of steps, for live forecasts.
        baseline_s: measure idle power for this long before the run (0 = don't).
        exact: GPU hooks synchronize about once a second for exact windows.
        prometheus_port: serve /metrics from this process (env ``GREENPROF_PROMETHEUS_PORT``).
        pushgateway: push the run's metrics there at the end (env ``GREENPROF_PUSHGATEWAY``).
        observers: more :class:`~greenprof.observers.RunObserver` to tell of the run.
        summary: print the run's summary on stderr when it ends (devices, totals, CO2e,
            where it is stored); default on, unless ``$GREENPROF_SUMMARY=0``.
        clock: monotonic seconds for step marks, sampling and durations
            (``time.monotonic``); it must be the sensors' clock (tests pass a manual one).
        wall_clock: Unix time for the run's ``started_at`` (``time.time``).
    """

    def __init__(
        self,
        run: str | None = None,
        *,
        db: str | os.PathLike[str] | None = None,
        sensors: Sequence[PowerSensor] | None = None,
        interval_s: float = 0.1,
        country: str | None = None,
        region: str | None = None,
        pue: float = 1.0,
        intensity_g_per_kwh: float | None = None,
        tags: Mapping[str, object] | None = None,
        framework: str = "",
        expected_steps: int | None = None,
        baseline_s: float = 0.0,
        exact: bool = False,
        prometheus_port: int | None = None,
        pushgateway: str | None = None,
        flush_interval_s: float = 0.3,
        job: str | None = None,
        ambient: bool = False,
        env: Mapping[str, str] = os.environ,
        observers: Iterable[RunObserver] = (),
        trackers: str | Iterable[str] | None = None,
        summary: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        config = ProfilerConfig.create(
            run,
            db=db,
            interval_s=interval_s,
            country=country,
            region=region,
            pue=pue,
            intensity_g_per_kwh=intensity_g_per_kwh,
            tags=tags,
            framework=framework,
            expected_steps=expected_steps,
            baseline_s=baseline_s,
            exact=exact,
            prometheus_port=prometheus_port,
            pushgateway=pushgateway,
            flush_interval_s=flush_interval_s,
            job=job,
            ambient=ambient,
            trackers=trackers,
            summary=summary,
            env=env,
        )
        self._setup(
            config,
            sensors=sensors,
            env=env,
            observers=observers,
            clock=clock,
            wall_clock=wall_clock,
            open_writer=open_store_writer,
        )

    @classmethod
    def from_config(
        cls,
        config: ProfilerConfig,
        *,
        sensors: Sequence[PowerSensor] | None = None,
        env: Mapping[str, str] = os.environ,
        observers: Iterable[RunObserver] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        open_writer: OpenWriter = open_store_writer,
    ) -> Profiler:
        """A Profiler for settings already checked (``ProfilerConfig.from_env`` for
        zero-code profiling); ``env`` is what sensor detection reads."""
        profiler = cls.__new__(cls)
        profiler._setup(
            config,
            sensors=sensors,
            env=env,
            observers=observers,
            clock=clock,
            wall_clock=wall_clock,
            open_writer=open_writer,
        )
        return profiler

    def _setup(
        self,
        config: ProfilerConfig,
        *,
        sensors: Sequence[PowerSensor] | None,
        env: Mapping[str, str],
        observers: Iterable[RunObserver],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        open_writer: OpenWriter,
    ) -> None:
        self.config = config
        self.name = config.name
        self.db_path: Path | str = config.db_path
        """The SQLite file, or the PostgreSQL URL (``config.store`` says which)."""
        self.interval_s = config.interval_s
        self.carbon = config.carbon
        self.tags = dict(config.tags)
        self.framework = config.framework
        self.expected_steps = config.expected_steps
        self.baseline_s = config.baseline_s
        self.exact = config.exact
        self.job = config.job
        self.ambient = config.ambient
        self._explicit = explicit_sensors(sensors) if sensors is not None else None
        self._env = env
        self._extra_observers = tuple(observers)
        self._observers: ObserverSet | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        self._open_writer = open_writer
        self._marks = StepMarks.on_clock(clock)
        self._bind(self._marks)
        self.devices: tuple[DeviceInfo, ...] = ()
        self.detection_notes: tuple[str, ...] = ()
        self.run_id: int | None = None
        self._session: Session | None = None
        self._token: Token | None = None
        self._depth = 0
        self._lock = threading.RLock()  # start/stop from any thread
        self._forked = False
        self._term: TermHandler | None = None
        self._joined: Profiler | None = None

    def _bind(self, target: StepMarks | Profiler) -> None:
        """The step API as instance attributes: the marks' own methods (one call per step,
        not two), or a joined run's (looked up at each call: hooks may watch them)."""
        if isinstance(target, StepMarks):
            vars(self).update({name: getattr(target, name) for name in MARK_METHODS})
        else:
            vars(self).update(
                {name: functools.partial(_forward, target, name) for name in MARK_METHODS}
            )

    # Lifecycle --------------------------------------------------------------

    def __enter__(self) -> Profiler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
        elif isinstance(exc, KeyboardInterrupt):
            self.stop(status="interrupted", error="KeyboardInterrupt")
        else:
            self.stop(status="failed", error=f"{type(exc).__name__}: {exc}")

    @property
    def running(self) -> bool:
        joined = self._joined
        return joined.running if joined is not None else self._session is not None

    @property
    def energy_j(self) -> float:
        """Energy of all devices so far (J, up to the sampler's last reading); 0 before start."""
        if self._joined is not None:
            return self._joined.energy_j
        session = self._session
        return 0.0 if session is None else session.energy_j

    def stats(self) -> ProfilerStats:
        """A snapshot of the profiler's own counters: marks queued, steps pending, sampler
        polls and gaps, the writer's health (see :class:`~greenprof.stats.ProfilerStats`)."""
        if self._joined is not None:
            return self._joined.stats()
        session = self._session
        if session is None:
            return ProfilerStats(running=False, run_id=self.run_id, queued_marks=len(self._marks))
        return session.stats()

    def note(self, message: str) -> None:
        """Record a caveat on the run (shown by ``greenprof show``); hooks use it to say
        what they could not see, e.g. no training step under ``greenprof run``."""
        session = self._session
        if session is not None:
            session.note(str(message))

    def set_framework(self, framework: str) -> None:
        """Record which framework drives the run (hooks call this when they join a run)."""
        self.framework = framework
        session = self._session
        if session is not None:
            session.writer.set_framework(framework)

    def start(self) -> Profiler:
        """Open sensors and the database, record the run, start sampling. Re-entrant.

        If anything fails, everything opened so far is released and the error (a
        :class:`~greenprof.errors.GreenprofError` naming the cause) is raised; nothing of
        the run is left half-started, and ``start()`` may be called again."""
        with self._lock:
            if self._forked:
                return self
            self._depth += 1
            if self._depth > 1:
                return self
            ambient = current_profiler()
            if ambient is not None and ambient is not self and ambient.ambient:
                self._join(ambient)
                return self
            try:
                self._start()
            except BaseException:
                self._depth = 0
                self._abandon()
                raise
        return self

    def _abandon(self) -> None:
        """A start that failed after the session opened (a baseline, an observer): end the
        run ``failed`` and release everything, as a failed ``open_session`` does."""
        self._close(status="failed", error="greenprof could not start")
        observers, self._observers = self._observers, None
        if observers is not None:
            observers.stopped("failed")

    def _start(self) -> None:
        config = self.config.replace(framework=self.framework, tags=self.tags)
        session = open_session(
            config,
            self._marks,
            self._sensor_source,
            clock=self._clock,
            wall_clock=self._wall_clock,
            writer_for=self._open_writer,
            on_progress=self._progress,
        )
        self._session = session
        self.run_id, self.devices = session.run_id, session.devices
        self.detection_notes = session.detection_notes
        self._token = activate(self)
        on_fork_in_child(self._after_fork_in_child)
        self._term = TermHandler(lambda: self.running, self._stop_on_sigterm)
        self._term.install()
        for note in self.detection_notes:
            log.info("greenprof: %s", note)
        if self.baseline_s > 0:
            session.measure_baseline(self.baseline_s)
        run = RunHandle(session.run_id, self.name, self.db_path, self.note)
        observers = (*self._exporters(), *self._extra_observers, *self._summary_printer())
        self._observers = ObserverSet(observers, run)
        self._observers.started()

    def _sensor_source(self) -> SensorSet:
        return self._explicit if self._explicit is not None else detect(self._env)

    def _exporters(self) -> list[RunObserver]:
        """The exporters the settings ask for (imported only then: the core never
        imports ``greenprof.exporters``)."""
        config = self.config
        live = config.prometheus_port is not None or config.pushgateway is not None
        tracked = trackers_wanted(config.trackers, sys.modules)
        if not (live or tracked):
            return []
        observers: list[RunObserver] = []
        try:
            if live:
                from greenprof.exporters.live import observers_for

                observers += observers_for(config)
            if tracked:
                from greenprof.exporters.trackers import tracker_observers

                # A tracker the caller already observes explicitly is not logged twice.
                explicit = {getattr(o, "tracker", None) for o in self._extra_observers}
                observers += [
                    o
                    for o in tracker_observers(config.trackers)
                    if getattr(o, "tracker", None) not in explicit
                ]
        except Exception as exc:
            log.warning("greenprof: exporters not started: %s", exc)
            self.note(f"exporters not started: {exc}")
        return observers

    def _summary_printer(self) -> list[RunObserver]:
        """The end-of-run summary, last (after the exporters' own end-of-run work)."""
        if not self.config.summary:
            return []
        from greenprof.summary_printer import SummaryPrinter

        return [SummaryPrinter()]

    def _progress(self) -> None:
        observers = self._observers
        if observers is not None and observers.observers:
            observers.progress(self.stats())

    def stop(self, *, status: RunStatus = "completed", error: str | None = None) -> None:
        """Take the last readings, attribute and store the remaining steps, close the run.

        Safe from any thread, and after a fork (a forked child never touches its parent's
        run). Returns within the settle time plus about two seconds whatever the sensors
        do; a database that cannot be written delays it by at most
        :data:`~greenprof.store.writer.CLOSE_TIMEOUT_S`."""
        with self._lock:
            if self._depth == 0 or self._forked:
                return
            self._depth -= 1
            if self._depth > 0:
                return
            if self._joined is not None:
                self._leave()
                return
            self._close(status=status, error=error)
            observers, self._observers = self._observers, None
        if observers is not None:
            observers.stopped(status)

    def _close(self, *, status: RunStatus, error: str | None) -> None:
        session, self._session = self._session, None
        if self._term is not None:
            self._term.restore()
        if self._token is not None:
            deactivate(self._token)
            self._token = None
        if session is not None:
            session.close(status=status, error=error)

    def _stop_on_sigterm(self) -> None:
        with self._lock:
            self._depth = min(self._depth, 1)
        self.stop(status="interrupted", error="terminated by SIGTERM")

    def _join(self, ambient: Profiler) -> None:
        """Under ``greenprof run``, an explicit Profiler joins the whole-process run rather
        than start a second, overlapping one: its name and tags go to that run, and its
        step marks go through the run's own methods (so the zero-code hooks see them and
        never count a step twice)."""
        self._joined = ambient
        self.run_id, self.db_path, self.devices = ambient.run_id, ambient.db_path, ambient.devices
        ambient.adopt(self.name, self.tags)
        self._bind(ambient)

    def _leave(self) -> None:
        self._joined = None
        self._bind(self._marks)

    def adopt(self, name: str, tags: Mapping[str, TagValue]) -> None:
        """Take the name and tags of an explicit Profiler that joined this run."""
        session = self._session
        if session is not None:
            session.writer.rename(name, tags)
            self.note(f"joined by Profiler({name!r}) in the script: one run, not two")

    def _after_fork_in_child(self) -> None:
        """The child of a fork owns nothing of this run: it neither marks steps into it nor
        stores or ends it (the parent does). It may start a Profiler of its own."""
        self._forked = True
        self._marks.discard()
        self._session = None
        self._observers = None
        self._lock = threading.RLock()


def _forward(target: Profiler, name: str, *args: Any, **kwargs: Any) -> Any:
    """A joined Profiler's step API: the run's own method, looked up at each call (hooks
    may watch it)."""
    return getattr(target, name)(*args, **kwargs)

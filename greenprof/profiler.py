"""The Profiler: wires sensors, the sampler, attribution and the store; the step API.

The training thread only appends a mark (a monotonic timestamp) to a deque per step
boundary: no locks, no I/O, no sensor reads. Everything else happens on the sampler
thread (attribution) and the writer thread (SQLite). Errors in those threads are logged
once and recorded on the run; they never reach the training loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ParamSpec, TypeVar

from greenprof.carbon import resolve_carbon
from greenprof.errors import ConfigError
from greenprof.jobs import JobInfo, detect_job
from greenprof.ledger import BEGIN, END, EPOCH, FinishedStep, Mark, StepLedger
from greenprof.records import CarbonSettings, DeviceInfo, Reading, RunStatus
from greenprof.sampler import Sampler, close_sensors
from greenprof.sensors.base import PowerSensor, describe
from greenprof.store.paths import resolve_db_path
from greenprof.store.writer import RunSpec, RunTotals, SampleRow, StoreWriter
from greenprof.values import setting_int, setting_number

log = logging.getLogger("greenprof")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAX_SETTLE_S = 0.15
"""At stop, read sensors for at most this long so the last steps' energy is published."""
STALE_DEVICE_S = 3.0
"""A device without a valid reading for this long (or 20 polls, if longer) is given up on:
its steps so far are attributed, later steps leave it out (flagged ``device_missing``)."""
SENSOR_CLOSE_TIMEOUT_S = 1.0
"""``stop()`` waits at most this long for the sensors' ``close()`` (a wedged driver must
not hold the training script at exit)."""

_forked_profilers: weakref.WeakSet[Profiler] = weakref.WeakSet()
"""Started profilers, so that a forked child can disown its parent's runs."""

_active: contextvars.ContextVar[Profiler | None] = contextvars.ContextVar(
    "greenprof_active_profiler", default=None
)


def current_profiler() -> Profiler | None:
    """The innermost running Profiler in this context (hooks use it to join a run)."""
    profiler = _active.get()
    return profiler if profiler is not None and profiler.running else None


class _StepContext:
    """``with prof.step(samples=n):`` — reused, so a step allocates nothing but its mark."""

    __slots__ = ("_loss", "_marks", "_samples")

    def __init__(self, marks: deque[Mark]) -> None:
        self._marks = marks
        self._samples: int | None = None
        self._loss: float | None = None

    def __call__(self, samples: int | None, loss: float | None) -> _StepContext:
        self._samples = samples
        self._loss = loss
        return self

    def __enter__(self) -> None:
        self._marks.append((BEGIN, time.monotonic_ns()))

    def __exit__(self, *exc: object) -> None:
        self._marks.append((END, time.monotonic_ns(), self._samples, self._loss))


class Profiler:
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
    ) -> None:
        interval_s = _check_interval(interval_s)
        if expected_steps is not None:
            expected_steps = setting_int("expected_steps", expected_steps, minimum=1, maximum=2**62)
        if run is not None and not isinstance(run, str):
            raise ConfigError(f"the run name must be a string; got {type(run).__name__}")
        if tags is not None and not isinstance(tags, Mapping):
            raise ConfigError(
                f"tags must be a mapping such as {{'batch_size': 64}}; got {type(tags).__name__}"
            )
        if job is not None and not (isinstance(job, str) and job.strip()):
            raise ConfigError(f"job must be a non-empty string; got {job!r}")
        self.job: JobInfo = detect_job(env, job=job)
        self.name = run or _default_run_name()
        self.db_path: Path = resolve_db_path(db, env)
        self.interval_s = interval_s
        self.carbon: CarbonSettings = resolve_carbon(
            country=country, region=region, pue=pue, intensity_g_per_kwh=intensity_g_per_kwh
        )
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.framework = str(framework)
        self.expected_steps = expected_steps
        self.baseline_s = setting_number("baseline_s", baseline_s, minimum=0.0, maximum=3600.0)
        self.exact = bool(exact)
        self._explicit_sensors = _check_sensors(sensors) if sensors is not None else None
        self._env = env
        port = (
            prometheus_port
            if prometheus_port is not None
            else _int_env(env, "GREENPROF_PROMETHEUS_PORT")
        )
        if port is not None:
            port = setting_int("prometheus_port", port, minimum=1, maximum=65535)
        self._prometheus_port = port
        self._pushgateway = pushgateway or env.get("GREENPROF_PUSHGATEWAY") or None
        self._flush_interval_s = setting_number(
            "flush_interval_s", flush_interval_s, minimum=0.01, maximum=60.0
        )
        self._marks: deque[Mark] = deque()
        self._step_context = _StepContext(self._marks)
        self._sensors: list[PowerSensor] = []
        self.devices: tuple[DeviceInfo, ...] = ()
        self.detection_notes: tuple[str, ...] = ()
        self._writer: StoreWriter | None = None
        self._sampler: Sampler | None = None
        self._ledger: StepLedger | None = None
        self._metrics_server: Any = None
        self._token: contextvars.Token[Profiler | None] | None = None
        self._depth = 0
        self._lock = threading.RLock()  # start/stop from any thread
        self._pid: int | None = None
        self._forked = False
        self._previous_sigterm: Any = None
        self._rejected: dict[str, int] = {}
        self._sensors_started = False  # sensors are closed at stop only once sampled
        self._joined: Profiler | None = None
        self.ambient = bool(ambient)
        self.run_id: int | None = None

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
        return joined.running if joined is not None else self._writer is not None

    @property
    def energy_j(self) -> float:
        """Energy of all devices so far (J, up to the sampler's last reading); 0 before start."""
        if self._joined is not None:
            return self._joined.energy_j
        ledger = self._ledger
        return 0.0 if ledger is None else sum(ledger.device_energy_j().values())

    def note(self, message: str) -> None:
        """Record a caveat on the run (shown by ``greenprof show``); hooks use it to say
        what they could not see, e.g. no training step under ``greenprof run``."""
        self._record_error(str(message))

    def set_framework(self, framework: str) -> None:
        """Record which framework drives the run (hooks call this when they join a run)."""
        self.framework = framework
        if self._writer is not None:
            self._writer.set_framework(framework)

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
                self._release(status="failed", error="greenprof could not start")
                raise
        return self

    def _start(self) -> None:
        # The store first: a database that cannot be opened must not cost the sensors
        # (explicit ones belong to the caller, who may fix the path and start again).
        writer = StoreWriter(self.db_path, flush_interval_s=self._flush_interval_s)
        self._writer = writer
        self._sensors = self._open_sensors()
        self._sensors_started = self._explicit_sensors is None  # detected: ours to close
        self.devices = tuple(describe(sensor) for sensor in self._sensors)
        self._rejected = {}
        origin_s = time.monotonic()
        self._ledger = StepLedger([d.device for d in self.devices], origin_s=origin_s)
        self.run_id = writer.create_run(self._run_spec())
        self._pid = os.getpid()
        self._sampler = Sampler(
            self._sensors,
            interval_s=self.interval_s,
            consumer=self._consume,
            on_error=self._record_error,
            on_rejected=self._note_rejected,
        )
        self._sensors_started = True
        self._sampler.start()
        self._token = _active.set(self)
        _watch_forks(self)
        self._install_sigterm()
        for note in self.detection_notes:
            log.info("greenprof: %s", note)
        if self.baseline_s > 0:
            self._measure_baseline()
        self._start_metrics_server()

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
            self._release(status=status, error=error)
        self._push_metrics()

    def _join(self, ambient: Profiler) -> None:
        """Under ``greenprof run``, an explicit Profiler joins the whole-process run rather
        than start a second, overlapping one: its name and tags go to that run, and its
        step marks go through the run's own methods (so the zero-code hooks see them and
        never count a step twice)."""
        self._joined = ambient
        self.run_id, self.db_path, self.devices = ambient.run_id, ambient.db_path, ambient.devices
        ambient.adopt(self.name, self.tags)
        for name in _MARK_METHODS:
            vars(self)[name] = functools.partial(_forward, ambient, name)

    def _leave(self) -> None:
        self._joined = None
        for name in _MARK_METHODS:
            vars(self).pop(name, None)

    def adopt(self, name: str, tags: Mapping[str, str]) -> None:
        """Take the name and tags of an explicit Profiler that joined this run."""
        if self._writer is not None:
            self._writer.rename(name, tags)
            self.note(f"joined by Profiler({name!r}) in the script: one run, not two")

    def _release(self, *, status: RunStatus, error: str | None) -> None:
        """Stop sampling, store what remains, close the run; each part bounded, each part
        attempted whatever the others did."""
        writer, sampler, ledger = self._writer, self._sampler, self._ledger
        self._restore_sigterm()
        if self._token is not None:
            with contextlib.suppress(ValueError):  # stopped from another thread or context
                _active.reset(self._token)
            self._token = None
        try:
            if sampler is not None:
                sampler.stop(settle_s=self._settle_s())
            if ledger is not None and writer is not None and self.run_id is not None:
                self._drain_marks(ledger, writer)
                self._store_steps(ledger.finish())
                writer.set_totals(self._totals())
                self._note_shares()
                for device in ledger.unseen_devices:
                    writer.update_device(device, note="no valid reading during the run")
                    writer.record_error(f"{device} gave no valid reading: its energy is unknown")
        except Exception as exc:  # never let the profiler crash the program at exit
            log.warning("greenprof: could not finish the run cleanly: %r", exc)
            error = error or f"greenprof: {exc!r}"
        finally:
            if self._sensors_started:
                for device in close_sensors(self._sensors, timeout_s=SENSOR_CLOSE_TIMEOUT_S):
                    log.warning("greenprof: closing %s did not return; left behind", device)
            self._sensors_started = False
            if writer is not None:
                try:
                    writer.close(status=status, error=error)
                except Exception as exc:
                    log.warning(
                        "greenprof: could not write the end of run %s to %s: %r",
                        self.run_id,
                        self.db_path,
                        exc,
                    )
            self._writer = None
            self._sampler = None
            self._stop_metrics_server()

    # Process lifecycle --------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child of a fork owns nothing of this run: it neither marks steps into it nor
        stores or ends it (the parent does). It may start a Profiler of its own."""
        self._forked = True
        self._marks = deque(maxlen=1)
        self._step_context = _StepContext(self._marks)
        self._writer = None
        self._sampler = None
        self._lock = threading.RLock()

    def _install_sigterm(self) -> None:
        """SIGTERM (a scheduler's cancel, ``kill``, ``docker stop``) would end the process
        without a word: store the run as ``interrupted`` first, then die of the signal as
        the sender expects (exit status 143). Only where no one else handles SIGTERM (a
        handler left by a stopped profiler counts as no one)."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            current = signal.getsignal(signal.SIGTERM)
            stale = getattr(current, "__self__", None)
            if isinstance(stale, Profiler) and not stale.running:
                current = stale._previous_sigterm
            if current is not signal.SIG_DFL:
                return
            signal.signal(signal.SIGTERM, self._on_sigterm)
            self._previous_sigterm = signal.SIG_DFL
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            self._previous_sigterm = None

    def _restore_sigterm(self) -> None:
        """Put the default back (main thread only: a stop from another thread leaves the
        handler, which then acts as the default would)."""
        if self._previous_sigterm is None:
            return
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
                    self._previous_sigterm = None

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        if self.running:
            with self._lock:
                self._depth = min(self._depth, 1)
            self.stop(status="interrupted", error="terminated by SIGTERM")
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    # The step API (training thread) ------------------------------------------

    def step(self, samples: int | None = None, *, loss: float | None = None) -> _StepContext:
        """Context manager around one training step: ``with prof.step(samples=64): ...``."""
        return self._step_context(samples, loss)

    def step_begin(self, *, time_ns: int | None = None) -> None:
        """Mark the start of a step (``time_ns``: a ``time.monotonic_ns()`` stamp, default now)."""
        self._marks.append((BEGIN, time.monotonic_ns() if time_ns is None else time_ns))

    def step_end(
        self, samples: int | None = None, *, loss: float | None = None, time_ns: int | None = None
    ) -> None:
        """Mark the end of a step. Without a matching begin, the step starts where the
        previous one ended (contiguous steps)."""
        self._marks.append(
            (END, time.monotonic_ns() if time_ns is None else time_ns, samples, loss)
        )

    def steps(self, iterable: Iterable[T], samples: int | None = None) -> Iterator[T]:
        """Loop wrapper: each iteration of the loop body is one step.

        Samples per step: ``samples`` if given, else ``len()`` of the item's first
        element when it has one (a ``(inputs, targets)`` batch).
        """
        marks = self._marks
        monotonic_ns = time.monotonic_ns
        for item in iterable:
            marks.append((BEGIN, monotonic_ns()))
            yield item
            marks.append(
                (END, monotonic_ns(), samples if samples is not None else _batch_size(item), None)
            )

    def epoch_begin(self, epoch: int | None = None) -> None:
        """Following steps belong to ``epoch`` (default: the next epoch number)."""
        self._marks.append((EPOCH, -1 if epoch is None else epoch))

    # Sampler thread -----------------------------------------------------------

    def _consume(self, readings: list[Reading]) -> None:
        ledger, writer = self._ledger, self._writer
        if ledger is None or writer is None or self._forked:
            return
        self._drain_marks(ledger, writer)
        ledger.add_readings(readings)
        self._check_devices(ledger, writer)
        writer.add_samples(self._sample_rows(ledger, readings))
        self._store_steps(ledger.pop_finished())
        writer.set_totals(self._totals())

    def _drain_marks(self, ledger: StepLedger, writer: StoreWriter) -> None:
        """Number the steps marked since the last poll and store their boundaries now, before
        their energy is known: a crash then loses no step the sampler has seen."""
        marks = self._marks
        ledger.add_marks([marks.popleft() for _ in range(len(marks))])
        closed = ledger.pop_closed()
        if closed:
            writer.add_pending_steps(closed)
        for message in ledger.warnings:
            log.warning("greenprof: %s", message)
            writer.record_error(message)
        ledger.warnings.clear()

    def _check_devices(self, ledger: StepLedger, writer: StoreWriter) -> None:
        """Flag rejected readings on steps and devices; give up on silent devices."""
        sampler = self._sampler
        health = sampler.health() if sampler is not None else {}
        for device, state in health.items():
            rejected = state.stats.rejected
            if rejected > self._rejected.get(device, 0):
                self._rejected[device] = rejected
                writer.update_device(device, rejected_readings=rejected)
        stale_s = max(STALE_DEVICE_S, 20 * self.interval_s)
        for device in ledger.expire(self._now_s(), stale_s):
            message = (
                f"{device} gave no valid reading for {stale_s:.1f} s: later steps leave it out "
                "(flagged device_missing)"
            )
            log.warning("greenprof: %s", message)
            writer.update_device(device, note=f"no readings after {stale_s:.1f} s of silence")
            writer.record_error(message)

    def _note_shares(self) -> None:
        """Say on the run which devices were shared and what share of their total it got
        (the unapportioned totals stay on record there)."""
        from greenprof.sensors.share import summaries

        for summary in summaries(self._sensors):
            if summary.shared:
                self.note(summary.text)

    def _note_rejected(self, device: str, time_s: float, _reason: str) -> None:
        """Sampler thread: a reading was rejected or repaired; flag the steps around it."""
        ledger = self._ledger
        if ledger is not None:
            ledger.note_rejected_reading(device, time_s)

    @staticmethod
    def _now_s() -> float:
        return time.monotonic()

    def _sample_rows(self, ledger: StepLedger, readings: list[Reading]) -> list[SampleRow]:
        energies = ledger.device_energy_j()
        origin_s = ledger.origin_s
        return [
            (
                r.device,
                r.time_s - origin_s,
                energies.get(r.device),
                ledger.power_w(r),
                r.utilization_pct,
                r.memory_used_bytes,
                r.temperature_c,
            )
            for r in readings
        ]

    def _store_steps(self, finished: list[FinishedStep]) -> None:
        if not finished or self._writer is None:
            return
        self._writer.add_steps(
            [
                (
                    s.step,
                    s.epoch,
                    s.start_s,
                    s.end_s,
                    s.samples,
                    s.energy_j,
                    int(s.interpolated),
                    s.loss,
                    s.flags,
                )
                for s in finished
            ],
            [
                (s.step, device, energy)
                for s in finished
                for device, energy in s.device_energy_j.items()
            ],
        )

    def _totals(self) -> RunTotals:
        ledger = self._ledger
        assert ledger is not None
        device_energy = ledger.device_energy_j()
        return RunTotals(
            steps=ledger.steps,
            samples=ledger.samples,
            energy_j=sum(device_energy.values()),
            step_energy_j=ledger.step_energy_j,
            # wall time since the start: a rank with no sensor of its own (node-wide ones
            # are read by local rank 0) still has a duration
            duration_s=max(ledger.last_time_s, time.monotonic()) - ledger.origin_s,
            device_energy_j=device_energy,
            setup_s=ledger.setup_s,
            setup_energy_j=ledger.setup_energy_j,
        )

    def _settle_s(self) -> float:
        """How long to keep reading after the last step: about one counter update period."""
        periods = [getattr(sensor, "update_period_s", None) or 0.0 for sensor in self._sensors]
        return min(MAX_SETTLE_S, 1.2 * max(periods, default=0.0))

    def _record_error(self, message: str) -> None:
        if self._writer is not None:
            self._writer.record_error(message)

    # Helpers -------------------------------------------------------------------

    def _open_sensors(self) -> list[PowerSensor]:
        if self._explicit_sensors is not None:
            return self._explicit_sensors
        from greenprof.sensors.detect import detect_sensors
        from greenprof.sensors.share import apportion

        detection = detect_sensors(env=self._env)
        self.detection_notes = detection.notes
        # Node-wide sensors (and GPUs other processes use too) measure more than this run:
        # its share is attributed, labelled as an estimate (greenprof.sensors.share).
        return apportion(list(detection.sensors), env=self._env)

    def _run_spec(self) -> RunSpec:
        from greenprof import __version__

        return RunSpec(
            name=self.name,
            started_at=time.time(),
            interval_s=self.interval_s,
            devices=self.devices,
            carbon=self.carbon,
            framework=self.framework,
            tags=self.tags,
            rank=self.job.rank,
            world_size=self.job.world_size,
            job_id=self.job.job_id,
            local_rank=self.job.local_rank,
            host=self.job.host,
            expected_steps=self.expected_steps,
            greenprof_version=__version__,
        )

    def _measure_baseline(self) -> None:
        ledger, writer = self._ledger, self._writer
        assert ledger is not None
        assert writer is not None
        start_s = time.monotonic()
        time.sleep(self.baseline_s)
        end_s = time.monotonic()
        deadline_s = end_s + max(1.0, 5 * self.interval_s)
        while ledger.last_time_s < end_s and time.monotonic() < deadline_s:
            time.sleep(self.interval_s / 4)  # let the sampler read past the window's end
        for device in ledger.devices:
            energy = ledger.energy_between(device, start_s, end_s)
            writer.update_device(device, idle_power_w=energy / (end_s - start_s))

    def _start_metrics_server(self) -> None:
        if self._prometheus_port is None:
            return
        try:
            from greenprof.exporters.prometheus import start_metrics_server

            self._metrics_server = start_metrics_server(
                self.db_path, port=self._prometheus_port, run_id=self.run_id
            )
        except Exception as exc:
            log.warning("greenprof: Prometheus endpoint not started: %s", exc)
            self._record_error(f"Prometheus endpoint not started: {exc}")

    def _stop_metrics_server(self) -> None:
        server, self._metrics_server = self._metrics_server, None
        if server is not None:
            try:
                server.close()
            except Exception as exc:
                log.debug("greenprof: closing the metrics server failed: %r", exc)

    def _push_metrics(self) -> None:
        if self._pushgateway is None or self.run_id is None:
            return
        try:
            from greenprof.exporters.prometheus import push_run

            push_run(self.db_path, self.run_id, self._pushgateway)
        except Exception as exc:
            log.warning("greenprof: could not push metrics to %s: %s", self._pushgateway, exc)


def profile(run: str | None = None, **options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: profile each call of a training function as one run.

    Takes the same keywords as :class:`Profiler`. Inside the function,
    ``greenprof.current_profiler()`` returns the run's profiler, and framework hooks
    created without a profiler join it (one run, not two).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with Profiler(run or function.__name__, **options):
                return function(*args, **kwargs)

        return wrapper

    return decorate


_MARK_METHODS = ("step", "steps", "step_begin", "step_end", "epoch_begin")


def _forward(target: Profiler, name: str, *args: Any, **kwargs: Any) -> Any:
    """A joined Profiler's step API: the run's own method, looked up at each call (hooks
    may watch it)."""
    return getattr(target, name)(*args, **kwargs)


def _check_interval(interval_s: object) -> float:
    if isinstance(interval_s, (int, float)) and not isinstance(interval_s, bool):
        if 0 < interval_s < 0.01:
            raise ConfigError(
                f"interval_s={interval_s} is below 10 ms: sensors do not update "
                "that fast and polling would cost CPU; use 0.05–1 s"
            )
        if interval_s <= 0:
            raise ConfigError(f"interval_s must be > 0 seconds; got {interval_s!r}")
    return setting_number("interval_s", interval_s, minimum=0.01, maximum=60.0)


def _check_sensors(sensors: Sequence[PowerSensor]) -> list[PowerSensor]:
    if isinstance(sensors, (str, bytes)) or not isinstance(sensors, Iterable):
        raise ConfigError(f"sensors must be a list of sensors; got {type(sensors).__name__}")
    checked = list(sensors)
    for sensor in checked:
        device = getattr(sensor, "device", None)
        if not (isinstance(device, str) and callable(getattr(sensor, "read", None))):
            raise ConfigError(
                f"{sensor!r} is not a sensor: a sensor has a `device` string, `read()` and "
                "`close()` (see greenprof.sensors.PowerSensor)"
            )
    devices = [sensor.device for sensor in checked]
    duplicates = sorted({d for d in devices if devices.count(d) > 1})
    if duplicates:
        raise ConfigError(f"two sensors read the same device: {', '.join(duplicates)}")
    return checked


def _watch_forks(profiler: Profiler) -> None:
    """Make a forked child disown this profiler's run (registered once per process)."""
    if hasattr(os, "register_at_fork") and not getattr(_watch_forks, "registered", False):
        os.register_at_fork(after_in_child=_disown_after_fork)
        _watch_forks.registered = True  # type: ignore[attr-defined]
    _forked_profilers.add(profiler)


def _disown_after_fork() -> None:
    for profiler in list(_forked_profilers):
        profiler._after_fork_in_child()
    _forked_profilers.clear()


def _batch_size(item: object) -> int | None:
    first = item[0] if isinstance(item, (tuple, list)) and item else item
    if isinstance(first, Mapping) and first:
        first = next(iter(first.values()))  # a dict batch: {"input_ids": tensor, ...}
    shape = getattr(first, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return len(first) if isinstance(first, Sized) else None


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be an integer; got {value!r}") from None


def _default_run_name() -> str:
    import sys

    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return script if script and script not in ("-c", "ipykernel_launcher") else "run"

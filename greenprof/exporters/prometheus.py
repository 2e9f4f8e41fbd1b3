"""Prometheus metrics over a run database: scrape (/metrics), textfile, Pushgateway.

Three ways to get greenprof into Prometheus:

- ``greenprof serve [--port 9464] [--host 127.0.0.1]``: a node exporter for every run in
  the database (one per node covers all ranks). Each scrape re-reads the ``runs`` table
  (one small query) and only the runs that wrote since the last scrape.
- In the training process: ``Profiler(..., prometheus_port=N)``, or the environment
  variable ``GREENPROF_PROMETHEUS_PORT=N``, calls :func:`start_metrics_server` (bound to
  127.0.0.1 unless told otherwise); ``GREENPROF_PUSHGATEWAY`` / ``pushgateway=`` calls
  :func:`push_run` at the end of the run.
- ``greenprof export prometheus --textfile /var/lib/node_exporter/greenprof.prom``: the
  same metrics written atomically for node_exporter's textfile collector.

Metrics (labels: ``run`` the run's name, ``run_id`` greenprof's id — names repeat, so the
id keeps series apart — ``host``, ``rank``; per device also ``device`` and ``method``.
No per-step labels: cardinality is a few series per run and device):

==========================================  =======  ====================================
``greenprof_energy_joules_total``           counter  energy per run and device (J)
``greenprof_step_energy_joules_total``      counter  energy inside training steps (J)
``greenprof_power_watts``                   gauge    latest power per device, running
                                                     runs only (a finished run draws none)
``greenprof_emissions_grams_total``         counter  CO2e of the run, × PUE (g); runs with
                                                     a grid intensity only
``greenprof_steps_total``                   counter  training steps
``greenprof_samples_total``                 counter  training samples (inputs) processed
``greenprof_run_info``                      gauge    1; labels framework, version
``greenprof_run_status``                    gauge    1 for the run's status, 0 for others
``greenprof_run_start_time_seconds``        gauge    Unix time the run started
``greenprof_run_end_time_seconds``          gauge    Unix time the run ended (ended runs)
``greenprof_run_duration_seconds``          gauge    duration so far (s)
``greenprof_grid_intensity_grams_per_kwh``  gauge    grid intensity the run assumes
``greenprof_pue``                           gauge    power usage effectiveness assumed
==========================================  =======  ====================================
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenprof.errors import ConfigError, GreenprofError
from greenprof.exporters._common import ExportError
from greenprof.store.api import DeviceEnergy, MetricRun
from greenprof.store.liveness import pid_alive
from greenprof.store.location import StoreLocation
from greenprof.store.reader import RunStore
from greenprof.units import J_PER_KWH

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

STATUSES = ("running", "completed", "failed", "interrupted", "incomplete")
_RUN_LABELS = ("run", "run_id", "host", "rank")
_DEVICE_LABELS = (*_RUN_LABELS, "device", "method")


@dataclass(frozen=True)
class _Run:
    """What the collector keeps about one run between scrapes: its devices are read again
    only when the run's heartbeat moves."""

    heartbeat_at: float
    devices: tuple[DeviceEnergy, ...]


class StoreCollector:
    """A prometheus_client collector reading a greenprof database on each collect().

    The database is opened on the first scrape (it may not exist yet when a training
    process starts its server); ``run_ids`` restricts the metrics to those runs. A run's
    status is the store's (:class:`~greenprof.store.liveness.RunLiveness`: a silent or
    orphaned ``running`` run is ``interrupted``), judged with ``wall_clock`` and ``alive``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | StoreLocation | None,
        *,
        run_ids: Sequence[int] | None = None,
        wall_clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self._db_path = db_path
        self._run_ids = None if run_ids is None else frozenset(run_ids)
        self._wall_clock = wall_clock
        self._alive = alive
        self._lock = threading.Lock()
        self._store: RunStore | None = None
        self._cache: dict[int, _Run] = {}

    def describe(self) -> list[Metric]:
        """Nothing up front (keeps registration from reading the database)."""
        return []

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def collect(self) -> Iterator[Metric]:
        """Read the database and yield every metric family."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = RunStore(
                        self._db_path, wall_clock=self._wall_clock, alive=self._alive
                    )
                except GreenprofError:
                    return iter(())  # no database yet: an empty but valid scrape
            return iter(self._families(self._store))

    def _refresh(self, store: RunStore) -> list[tuple[MetricRun, tuple[DeviceEnergy, ...]]]:
        """Every run's row (status evaluated now), with devices re-read only for the runs
        that wrote since the last scrape."""
        runs = store.metric_runs(self._run_ids)
        changed = {
            run.run_id: run.heartbeat_at
            for run in runs
            if run.run_id not in self._cache
            or self._cache[run.run_id].heartbeat_at != run.heartbeat_at
        }
        energies = store.device_energies(list(changed))
        for run_id, heartbeat_at in changed.items():
            self._cache[run_id] = _Run(heartbeat_at, energies.get(run_id, ()))
        present = {run.run_id for run in runs}
        for run_id in [run_id for run_id in self._cache if run_id not in present]:
            del self._cache[run_id]
        return [(run, self._cache[run.run_id].devices) for run in runs]

    def _families(self, store: RunStore) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runs = self._refresh(store)

        def counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        def gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        energy = counter(
            "greenprof_energy_joules", "Energy of a device over the run (J).", _DEVICE_LABELS
        )
        power = gauge(
            "greenprof_power_watts", "Latest power of a device of a running run.", _DEVICE_LABELS
        )
        step_energy = counter(
            "greenprof_step_energy_joules", "Energy inside training steps (J).", _RUN_LABELS
        )
        emissions = counter(
            "greenprof_emissions_grams",
            "Emissions of the run, grams CO2e (energy x PUE x grid intensity).",
            _RUN_LABELS,
        )
        steps = counter("greenprof_steps", "Training steps completed.", _RUN_LABELS)
        samples = counter("greenprof_samples", "Training samples processed.", _RUN_LABELS)
        info = gauge(
            "greenprof_run_info", "Run metadata (value 1).", (*_RUN_LABELS, "framework", "version")
        )
        status = gauge(
            "greenprof_run_status", "1 for the run's current status.", (*_RUN_LABELS, "status")
        )
        started = gauge("greenprof_run_start_time_seconds", "Run start, Unix time.", _RUN_LABELS)
        ended = gauge("greenprof_run_end_time_seconds", "Run end, Unix time.", _RUN_LABELS)
        duration = gauge("greenprof_run_duration_seconds", "Run duration so far.", _RUN_LABELS)
        intensity = gauge(
            "greenprof_grid_intensity_grams_per_kwh",
            "Grid carbon intensity assumed for the run (gCO2e/kWh).",
            _RUN_LABELS,
        )
        pue_gauge = gauge("greenprof_pue", "Power usage effectiveness assumed.", _RUN_LABELS)

        for run, devices in runs:
            labels = [
                run.name,
                str(run.run_id),
                run.host,
                "" if run.rank is None else str(run.rank),
            ]
            for device in devices:
                energy.add_metric([*labels, device.device, device.method], device.energy_j)
            if run.status == "running":
                for name, method, watts in _latest_power(store, run.run_id, devices):
                    power.add_metric([*labels, name, method], watts)
            step_energy.add_metric(labels, run.step_energy_j)
            if run.intensity_g_per_kwh is not None:
                co2 = run.energy_j / J_PER_KWH * run.pue * run.intensity_g_per_kwh
                emissions.add_metric(labels, co2)
                intensity.add_metric(labels, run.intensity_g_per_kwh)
            steps.add_metric(labels, float(run.steps))
            if run.samples is not None:
                samples.add_metric(labels, float(run.samples))
            info.add_metric([*labels, run.framework, run.greenprof_version], 1.0)
            for candidate in STATUSES:
                status.add_metric([*labels, candidate], 1.0 if candidate == run.status else 0.0)
            started.add_metric(labels, run.started_at)
            if run.ended_at is not None:
                ended.add_metric(labels, run.ended_at)
            duration.add_metric(labels, run.duration_s)
            pue_gauge.add_metric(labels, run.pue)
        families = [energy, power, step_energy, emissions, steps, samples, info, status]
        return [*families, started, ended, duration, intensity, pue_gauge]


def _latest_power(
    store: RunStore, run_id: int, devices: Sequence[DeviceEnergy]
) -> Iterator[tuple[str, str, float]]:
    """Newest power per device (the store's rule: the sensor's power, else the last energy
    delta over time), with the device's method."""
    power = store.latest_power_w(run_id, [device.device for device in devices])
    for device in devices:
        if device.device in power:
            yield device.device, device.method, power[device.device]


def make_registry(
    db_path: str | os.PathLike[str] | StoreLocation | None, *, run_ids: Sequence[int] | None = None
) -> tuple[CollectorRegistry, StoreCollector]:
    """A registry holding only greenprof's collector (no process/platform metrics)."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        raise ConfigError(
            "Prometheus support needs prometheus-client: pip install 'greenprof[prometheus]'"
        ) from None

    registry = CollectorRegistry(auto_describe=False)
    collector = StoreCollector(db_path, run_ids=run_ids)
    registry.register(collector)
    return registry, collector


def exposition(
    db_path: str | os.PathLike[str] | StoreLocation | None, *, run_ids: Sequence[int] | None = None
) -> str:
    """The metrics of ``run_ids`` (default: all runs) in the Prometheus text format."""
    registry, collector = make_registry(db_path, run_ids=run_ids)
    from prometheus_client import generate_latest

    try:
        return generate_latest(registry).decode("utf-8")
    finally:
        collector.close()


class MetricsServer:
    """A running ``/metrics`` HTTP server (daemon thread); :meth:`close` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread, collector: StoreCollector) -> None:
        self._httpd = httpd
        self._thread = thread
        self._collector = collector
        self.host: str = str(httpd.server_address[0])
        self.port: int = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port and the database."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._collector.close()


def start_metrics_server(
    db_path: Path, *, port: int, host: str = "127.0.0.1", run_id: int | None = None
) -> MetricsServer:
    """Serve ``/metrics`` for the runs in ``db_path`` (only ``run_id`` if given).

    ``port=0`` picks a free port (see :attr:`MetricsServer.port`). Raises
    :class:`~greenprof.errors.ConfigError` if the address cannot be bound.
    """
    registry, collector = make_registry(db_path, run_ids=None if run_id is None else [run_id])
    from prometheus_client import start_http_server

    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        collector.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: the port is already in use "
                "(choose another port)"
            ) from None
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return MetricsServer(httpd, thread, collector)


def serve_forever(db: str | None, *, port: int, host: str = "127.0.0.1") -> int:
    """``greenprof serve``: serve until Ctrl-C or SIGTERM; returns the exit status."""
    import signal
    import sys

    from greenprof.textsafe import terminal_text

    with RunStore(db) as store:  # fail early and clearly on a missing or foreign database
        path, count = store.path, len(store.runs())
    server = start_metrics_server(path, port=port, host=host)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"greenprof: serving {server.url} for {terminal_text(str(path))} ({count} runs now); "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def push_run(db_path: Path, run_id: int, gateway: str, *, job: str = "greenprof") -> None:
    """Push one run's metrics to a Pushgateway (PUT: replaces that run's group).

    The grouping key is ``instance=<host>, run_id=<id>`` so runs of different nodes and
    databases do not overwrite each other. Raises :class:`ExportError` on failure.
    """
    with RunStore(db_path) as store:
        host = store.run(run_id).host  # RunNotFound for an unknown run
    registry, collector = make_registry(db_path, run_ids=[run_id])
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(
            gateway,
            job=job,
            registry=registry,
            grouping_key={"instance": host, "run_id": str(run_id)},
            timeout=10,
        )
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise ExportError(f"could not push run {run_id} to {gateway}: {reason}") from None
    finally:
        collector.close()

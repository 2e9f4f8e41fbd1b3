"""Prometheus metrics over a run database: scrape (/metrics), textfile, Pushgateway.

Three ways to get greenprof into Prometheus:

- ``greenprof serve [--port 9464] [--host 127.0.0.1] [--label-tags model,team] [--run-ttl 1h]``:
  an exporter for every run in the store (a SQLite file or a PostgreSQL server; one per
  node, or one for a whole cluster's server store). Each scrape re-reads the runs (one
  small query) and only the runs that wrote since the last scrape. Only ``/metrics`` is
  served; other paths are 404.
- In the training process: ``Profiler(..., prometheus_port=N)``, or the environment
  variable ``GREENPROF_PROMETHEUS_PORT=N``, calls :func:`start_metrics_server` (bound to
  127.0.0.1 unless told otherwise); ``GREENPROF_PUSHGATEWAY`` / ``pushgateway=`` calls
  :func:`push_run` at the end of the run.
- ``greenprof export prometheus --textfile /var/lib/node_exporter/greenprof.prom``: the
  same metrics written atomically for node_exporter's textfile collector.

Job counters (labels ``job_id`` — the run's job, or a lone run's name — ``host``, the
``tag_*`` labels asked for, and ``kind`` the device kind for energy and emissions). Sums
over every run in the store: they never decrease, survive runs ending and exporter
restarts, and are what dashboards should sum (``docs/prometheus.md`` has the PromQL;
each carries ``_created``, the start of its group's first run):

==========================================  =======  ====================================
``greenprof_job_energy_joules_total``       counter  energy of the group's runs (J)
``greenprof_job_emissions_grams_total``     counter  their CO2e × PUE (g), runs with a
                                                     grid intensity only
``greenprof_job_steps_total``               counter  their training steps
``greenprof_job_runs_total``                counter  how many runs
==========================================  =======  ====================================

Per-run series (labels: ``run`` the run's name, ``run_id`` greenprof's id — names repeat,
so the id keeps series apart — ``host``, ``rank``, the ``tag_*`` labels; per device also
``device`` and ``method``. No per-step labels). They are exposed while the run is running
and, for ``greenprof serve``, for ``--run-ttl`` after it ended (default 1 h), then dropped:

==========================================  =======  ====================================
``greenprof_energy_joules_total``           counter  energy per run and device (J)
``greenprof_step_energy_joules_total``      counter  energy inside training steps (J)
``greenprof_power_watts``                   gauge    latest power per device, running
                                                     runs only (a finished run draws none)
``greenprof_emissions_grams_total``         counter  CO2e of the run, × PUE (g); runs with
                                                     a grid intensity only
``greenprof_steps_total``                   counter  training steps
``greenprof_samples_total``                 counter  training samples (inputs) processed
``greenprof_run_info``                      gauge    1; labels job_id, framework, version
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
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from greenprof.errors import ConfigError
from greenprof.exporters._common import ExportError
from greenprof.exporters.prom_collector import STATUSES, StoreCollector
from greenprof.exporters.prom_series import DEFAULT_OPTIONS, SeriesOptions
from greenprof.exporters.prom_text import CONTENT_TYPE, render
from greenprof.store.location import StoreLocation, parse_location
from greenprof.store.reader import RunStore

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "STATUSES",
    "MetricsServer",
    "SeriesOptions",
    "StoreCollector",
    "exposition",
    "make_registry",
    "push_run",
    "serve_forever",
    "start_metrics_server",
]

Db = str | os.PathLike[str] | StoreLocation | None


def make_registry(
    db_path: Db, *, run_ids: Sequence[int] | None = None, options: SeriesOptions = DEFAULT_OPTIONS
) -> tuple[CollectorRegistry, StoreCollector]:
    """A registry holding only greenprof's collector (no process/platform metrics)."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        raise ConfigError(
            "Prometheus support needs prometheus-client: pip install 'greenprof[prometheus]'"
        ) from None

    registry = CollectorRegistry(auto_describe=False)
    collector = StoreCollector(db_path, run_ids=run_ids, options=options)
    registry.register(collector)
    return registry, collector


def exposition(
    db_path: Db, *, run_ids: Sequence[int] | None = None, options: SeriesOptions = DEFAULT_OPTIONS
) -> str:
    """The metrics of ``run_ids`` (default: all runs) in the Prometheus text format."""
    _, collector = make_registry(db_path, run_ids=run_ids, options=options)
    try:
        return render(collector.collect()).decode("utf-8")
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
        """Stop serving and release the port and the store."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._collector.close()


def _http_server(collector: StoreCollector, host: str, port: int) -> Any:
    """A threading HTTP server answering ``GET /metrics`` (query strings ignored) and 404
    for any other path, so a stray crawler or a typo in a scrape config is an error rather
    than a silent copy of the metrics."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != "/metrics":
                self.send_error(404, "greenprof serves /metrics only")
                return
            try:
                body = render(collector.collect())
            except Exception as exc:  # a store error: Prometheus marks the target down
                self.send_error(500, f"greenprof could not read the store: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a scrape every few seconds is not news."""

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    return Server((host, port), Handler)


def start_metrics_server(
    db_path: Db,
    *,
    port: int,
    host: str = "127.0.0.1",
    run_id: int | None = None,
    options: SeriesOptions = DEFAULT_OPTIONS,
) -> MetricsServer:
    """Serve ``/metrics`` for the runs in the store ``db_path`` (only ``run_id`` if given).

    ``port=0`` picks a free port (see :attr:`MetricsServer.port`). Raises
    :class:`~greenprof.errors.ConfigError` if the address cannot be bound.
    """
    _, collector = make_registry(
        db_path, run_ids=None if run_id is None else [run_id], options=options
    )
    try:
        httpd = _http_server(collector, host, port)
    except OSError as exc:
        collector.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: the port is already in use "
                "(choose another port)"
            ) from None
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    thread = threading.Thread(target=httpd.serve_forever, name="greenprof-metrics", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread, collector)


def serve_forever(
    db: Db,
    *,
    port: int,
    host: str = "127.0.0.1",
    options: SeriesOptions = DEFAULT_OPTIONS,
) -> int:
    """``greenprof serve``: serve until Ctrl-C or SIGTERM; returns the exit status."""
    import signal
    import sys

    from greenprof.textsafe import terminal_text

    location = parse_location(db)
    with RunStore(location) as store:  # fail early and clearly on a missing or foreign store
        count = len(store.runs())
    server = start_metrics_server(location, port=port, host=host, options=options)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"greenprof: serving {server.url} for {terminal_text(location.display)} "
        f"({count} runs now); Ctrl-C stops",
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


def push_run(db_path: Db, run_id: int, gateway: str, *, job: str = "greenprof") -> None:
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

"""Exports while a run goes on, as run observers: the in-process Prometheus endpoint and
the Pushgateway push at the end of the run.

The :class:`~greenprof.Profiler` builds them from its settings (``prometheus_port=``,
``pushgateway=``, or ``$GREENPROF_PROMETHEUS_PORT`` / ``$GREENPROF_PUSHGATEWAY``) with
:func:`observers_for`; both read the run database through
:mod:`greenprof.exporters.prometheus`, never the profiler's own state. A failed export is
logged (and, for the endpoint, noted on the run); it never fails the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from greenprof.config import ProfilerConfig
from greenprof.exporters.prometheus import MetricsServer, push_run, start_metrics_server
from greenprof.observers import RunHandle, RunObserver
from greenprof.records import RunStatus
from greenprof.stats import ProfilerStats

log = logging.getLogger("greenprof")


class MetricsEndpoint:
    """Serves ``/metrics`` for the run from its start to its end (``prometheus_port=``).

    Example::

        greenprof.Profiler("demo", observers=[MetricsEndpoint(9464)])
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self._server: MetricsServer | None = None

    def run_started(self, run: RunHandle) -> None:
        try:
            self._server = start_metrics_server(
                _db(run), port=self.port, host=self.host, run_id=run.run_id
            )
        except Exception as exc:
            log.warning("greenprof: Prometheus endpoint not started: %s", exc)
            run.note(f"Prometheus endpoint not started: {exc}")

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        """Nothing to do: each scrape reads the store."""

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.close()
            except Exception as exc:
                log.debug("greenprof: closing the metrics server failed: %r", exc)


class PushgatewayPush:
    """Pushes the run's metrics to a Prometheus Pushgateway once it has ended."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run_started(self, run: RunHandle) -> None:
        """Nothing to do: the push happens at the end."""

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        """Nothing to do: the push happens at the end."""

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        try:
            push_run(_db(run), run.run_id, self.url)
        except Exception as exc:
            log.warning("greenprof: could not push metrics to %s: %s", self.url, exc)


def _db(run: RunHandle) -> Path:
    """The run's store for the Prometheus functions: typed ``Path``, but they open it
    through ``RunStore``, which takes a PostgreSQL URL as well."""
    return cast(Path, run.db_path)


def observers_for(config: ProfilerConfig) -> list[RunObserver]:
    """The exporters ``config`` asks for (none if it asks for none)."""
    observers: list[RunObserver] = []
    if config.prometheus_port is not None:
        observers.append(MetricsEndpoint(config.prometheus_port))
    if config.pushgateway is not None:
        observers.append(PushgatewayPush(config.pushgateway))
    return observers

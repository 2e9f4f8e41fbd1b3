"""The prometheus_client collector that reads a greenprof store on each scrape.

Two kinds of series (see :mod:`greenprof.exporters.prom_series` for why): *job counters*,
sums over every run in the store that only grow and survive runs ending and exporter
restarts (the ones to sum in dashboards), and each run's own series (labels ``run``,
``run_id``, ``host``, ``rank``), kept while the run is running and for a configurable time
after it ended. Cost per scrape: one small query for the runs; devices only for runs
that wrote since the last scrape; job ids and tags once per new run; power per running run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenprof.errors import GreenprofError
from greenprof.exporters.prom_series import (
    DEFAULT_OPTIONS,
    RunMeta,
    SeriesOptions,
    job_totals,
    run_visible,
    tag_values,
)
from greenprof.records import tag_text
from greenprof.store.api import DeviceEnergy, MetricRun
from greenprof.store.liveness import pid_alive
from greenprof.store.location import StoreLocation
from greenprof.store.reader import RunStore
from greenprof.units import J_PER_KWH

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

STATUSES = ("running", "completed", "failed", "interrupted", "incomplete")
_RUN_LABELS = ("run", "run_id", "host", "rank")
_DEVICE_LABELS = ("device", "method")
_JOB_LABELS = ("job_id", "host")

Db = str | os.PathLike[str] | StoreLocation | None


@dataclass(frozen=True)
class _Run:
    """What the collector keeps about one run between scrapes: its devices are read again
    only when the run's heartbeat moves."""

    heartbeat_at: float
    devices: tuple[DeviceEnergy, ...]


class StoreCollector:
    """A prometheus_client collector reading a greenprof store on each collect().

    The store is opened on the first scrape (it may not exist yet when a training
    process starts its server); ``run_ids`` restricts the metrics to those runs. A run's
    status is the store's (:class:`~greenprof.store.liveness.RunLiveness`: a silent or
    orphaned ``running`` run is ``interrupted``), judged with ``wall_clock`` and ``alive``.
    ``options`` chooses tag labels and the expiry of finished runs' own series.
    """

    def __init__(
        self,
        db_path: Db,
        *,
        run_ids: Sequence[int] | None = None,
        options: SeriesOptions = DEFAULT_OPTIONS,
        wall_clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self._db_path = db_path
        self._run_ids = None if run_ids is None else frozenset(run_ids)
        self._options = options
        self._wall_clock = wall_clock
        self._alive = alive
        self._lock = threading.Lock()
        self._store: RunStore | None = None
        self._cache: dict[int, _Run] = {}
        self._metas: dict[int, RunMeta] = {}

    def describe(self) -> list[Metric]:
        """Nothing up front (keeps registration from reading the store)."""
        return []

    def close(self) -> None:
        """Close the store connection."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def collect(self) -> Iterator[Metric]:
        """Read the store and yield every metric family."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = RunStore(
                        self._db_path, wall_clock=self._wall_clock, alive=self._alive
                    )
                except GreenprofError:
                    return iter(())  # no store yet: an empty but valid scrape
            return iter(self._families(self._store))

    def _refresh(self, store: RunStore) -> list[tuple[MetricRun, tuple[DeviceEnergy, ...]]]:
        """Every run's row (status evaluated now), with devices re-read only for the runs
        that wrote since the last scrape, and job ids and tags read for new runs."""
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
        if any(run.run_id not in self._metas for run in runs):
            for info in store.runs():
                self._metas[info.run_id] = RunMeta(
                    info.job_id, {k: tag_text(v) for k, v in info.tags.items()}
                )
        present = {run.run_id for run in runs}
        for run_id in [run_id for run_id in self._cache if run_id not in present]:
            del self._cache[run_id]
            self._metas.pop(run_id, None)
        return [(run, self._cache[run.run_id].devices) for run in runs]

    def _families(self, store: RunStore) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runs = self._refresh(store)
        options = self._options
        tag_labels = options.tag_labels
        tags = tag_values(
            {run.run_id: self._metas.get(run.run_id, RunMeta(None, {})) for run, _ in runs},
            options.label_tags,
            options.max_tag_values,
        )
        run_labels = (*_RUN_LABELS, *tag_labels)
        job_labels = (*_JOB_LABELS, *tag_labels)

        def counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        def gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        job_energy = counter(
            "greenprof_job_energy_joules",
            "Energy of every run of a job on a host, by device kind (J); never decreases.",
            (*job_labels, "kind"),
        )
        job_emissions = counter(
            "greenprof_job_emissions_grams",
            "Emissions of every run of a job on a host, by device kind (g CO2e, x PUE).",
            (*job_labels, "kind"),
        )
        job_steps = counter("greenprof_job_steps", "Training steps of a job's runs.", job_labels)
        job_runs = counter("greenprof_job_runs", "Runs of a job on a host.", job_labels)
        for (job, host, values), totals in sorted(job_totals(runs, self._metas, tags).items()):
            labels = [job, host, *values]
            created = totals.created_at
            for kind, joules in sorted(totals.energy_j.items()):
                job_energy.add_metric([*labels, kind], joules, created=created)
            for kind, grams in sorted(totals.co2_g.items()):
                job_emissions.add_metric([*labels, kind], grams, created=created)
            job_steps.add_metric(labels, float(totals.steps), created=created)
            job_runs.add_metric(labels, float(totals.runs), created=created)

        energy = counter(
            "greenprof_energy_joules",
            "Energy of a device over the run (J).",
            (*run_labels, *_DEVICE_LABELS),
        )
        power = gauge(
            "greenprof_power_watts",
            "Latest power of a device of a running run.",
            (*run_labels, *_DEVICE_LABELS),
        )
        step_energy = counter(
            "greenprof_step_energy_joules", "Energy inside training steps (J).", run_labels
        )
        emissions = counter(
            "greenprof_emissions_grams",
            "Emissions of the run, grams CO2e (energy x PUE x grid intensity).",
            run_labels,
        )
        steps = counter("greenprof_steps", "Training steps completed.", run_labels)
        samples = counter("greenprof_samples", "Training samples processed.", run_labels)
        info = gauge(
            "greenprof_run_info",
            "Run metadata (value 1).",
            (*run_labels, "job_id", "framework", "version"),
        )
        status = gauge(
            "greenprof_run_status", "1 for the run's current status.", (*run_labels, "status")
        )
        started = gauge("greenprof_run_start_time_seconds", "Run start, Unix time.", run_labels)
        ended = gauge("greenprof_run_end_time_seconds", "Run end, Unix time.", run_labels)
        duration = gauge("greenprof_run_duration_seconds", "Run duration so far.", run_labels)
        intensity = gauge(
            "greenprof_grid_intensity_grams_per_kwh",
            "Grid carbon intensity assumed for the run (gCO2e/kWh).",
            run_labels,
        )
        pue_gauge = gauge("greenprof_pue", "Power usage effectiveness assumed.", run_labels)

        now = self._wall_clock()
        for run, devices in runs:
            if not run_visible(run, now, options.run_ttl_s):
                continue
            labels = [
                run.name,
                str(run.run_id),
                run.host,
                "" if run.rank is None else str(run.rank),
                *tags.get(run.run_id, ()),
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
            job_id = self._metas.get(run.run_id, RunMeta(None, {})).job_id or ""
            info.add_metric([*labels, job_id, run.framework, run.greenprof_version], 1.0)
            for candidate in STATUSES:
                status.add_metric([*labels, candidate], 1.0 if candidate == run.status else 0.0)
            started.add_metric(labels, run.started_at)
            if run.ended_at is not None:
                ended.add_metric(labels, run.ended_at)
            duration.add_metric(labels, run.duration_s)
            pue_gauge.add_metric(labels, run.pue)
        jobs = [job_energy, job_emissions, job_steps, job_runs]
        families = [energy, power, step_energy, emissions, steps, samples, info, status]
        return [*jobs, *families, started, ended, duration, intensity, pue_gauge]


def _latest_power(
    store: RunStore, run_id: int, devices: Sequence[DeviceEnergy]
) -> Iterator[tuple[str, str, float]]:
    """Newest power per device (the store's rule: the sensor's power, else the last energy
    delta over time), with the device's method."""
    power = store.latest_power_w(run_id, [device.device for device in devices])
    for device in devices:
        if device.device in power:
            yield device.device, device.method, power[device.device]

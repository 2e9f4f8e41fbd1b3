"""Which Prometheus series greenprof exposes, as pure functions of the store's runs.

Why a second set of series: a run's own counters appear when the run appears and vanish
when it is expired, so ``increase()`` over them misses what a run used before the first
scrape and misses a run shorter than a scrape entirely. The *job* counters here are sums
over every run in the store grouped by (job, host, device kind, tag labels): a run's energy
is added when the run appears and never leaves (finished runs stay in the store), and the
value is recomputed from the store on each scrape, so a restarted ``greenprof serve``
continues each series where it was instead of resetting it. ``docs/prometheus.md`` has the
PromQL that sums them correctly.

Run tags become labels only when asked (``--label-tags model,team``): each tag is one label
``tag_<sanitized name>`` and keeps at most ``max_values`` distinct values, the first ones in
run-id order (deterministic across restarts); later values read ``_other`` so a tag holding
ids cannot explode the number of series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from greenprof.errors import ConfigError
from greenprof.records import device_kind
from greenprof.store.api import DeviceEnergy, MetricRun
from greenprof.units import J_PER_KWH

OTHER_VALUE = "_other"
"""The label value of a tag value beyond the per-tag limit."""
MAX_LABEL_TAGS = 10
DEFAULT_MAX_TAG_VALUES = 50
MAX_VALUE_CHARS = 100
_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def tag_label_name(tag: str) -> str:
    """The Prometheus label for run tag ``tag``: ``tag_`` and the name with every character
    outside ``[a-zA-Z0-9_]`` replaced by ``_`` (the prefix keeps tags from colliding with
    greenprof's own labels or the reserved ``__`` names)."""
    return "tag_" + re.sub(r"[^a-zA-Z0-9_]", "_", tag)


def parse_label_tags(text: str) -> tuple[str, ...]:
    """``"model,team"`` -> ``("model", "team")``: a comma list, blanks dropped, at most
    :data:`MAX_LABEL_TAGS`, no two tags mapping to the same label name."""
    tags = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if len(tags) > MAX_LABEL_TAGS:
        raise ConfigError(f"--label-tags: at most {MAX_LABEL_TAGS} tags, got {len(tags)}")
    labels = [tag_label_name(tag) for tag in tags]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--label-tags: {', '.join(tags)} give the same label name twice")
    return tags


def parse_duration_s(text: str) -> float | None:
    """``--run-ttl``: seconds, or a number with ``s``/``m``/``h``/``d``; ``never`` (or
    ``inf``) keeps finished runs' series forever (None)."""
    raw = text.strip().lower()
    if raw in ("never", "inf", "infinity"):
        return None
    unit = _UNITS_S.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        raise ConfigError(
            f"--run-ttl: expected seconds or a duration like 15m, 1h, 2d, or 'never'; got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--run-ttl: expected a duration >= 0, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class SeriesOptions:
    """What ``greenprof serve`` was asked for: ``label_tags`` (run tags exposed as labels),
    ``max_tag_values`` (distinct values kept per tag), ``run_ttl_s`` (how long a finished
    run's own series stay after it ended; None: forever)."""

    label_tags: tuple[str, ...] = ()
    max_tag_values: int = DEFAULT_MAX_TAG_VALUES
    run_ttl_s: float | None = None

    @property
    def tag_labels(self) -> tuple[str, ...]:
        return tuple(tag_label_name(tag) for tag in self.label_tags)


DEFAULT_OPTIONS = SeriesOptions()
"""No tag labels; finished runs' own series kept (what exports and pushes want)."""


@dataclass(frozen=True, slots=True)
class RunMeta:
    """What the collector needs about a run beyond :class:`MetricRun` (fixed once the
    run exists, so it is read once per run)."""

    job_id: str | None
    tags: Mapping[str, str]


def tag_values(
    metas: Mapping[int, RunMeta], tags: Sequence[str], max_values: int
) -> dict[int, tuple[str, ...]]:
    """Each run's label values for ``tags`` (``""`` for a run without the tag), the first
    ``max_values`` distinct values of each tag in run-id order kept, later ones
    :data:`OTHER_VALUE`."""
    kept: list[dict[str, None]] = [{} for _ in tags]
    result: dict[int, tuple[str, ...]] = {}
    for run_id in sorted(metas):
        values = []
        for index, tag in enumerate(tags):
            value = metas[run_id].tags.get(tag, "")[:MAX_VALUE_CHARS]
            if value and value not in kept[index]:
                if len(kept[index]) < max_values:
                    kept[index][value] = None
                else:
                    value = OTHER_VALUE
            values.append(value)
        result[run_id] = tuple(values)
    return result


def job_label(run: MetricRun, meta: RunMeta) -> str:
    """The ``job_id`` label: the run's job, or for a lone run its name (a lone run is a
    job of one)."""
    return meta.job_id or run.name


@dataclass
class JobTotals:
    """One (job, host, tag values) group's sums over its runs."""

    created_at: float
    energy_j: dict[str, float] = field(default_factory=dict)
    """Per device kind."""
    co2_g: dict[str, float] = field(default_factory=dict)
    """Per device kind, runs with a grid intensity only."""
    steps: int = 0
    runs: int = 0


JobKey = tuple[str, str, tuple[str, ...]]
"""(job label, host, tag label values)."""


def job_totals(
    runs: Iterable[tuple[MetricRun, Sequence[DeviceEnergy]]],
    metas: Mapping[int, RunMeta],
    tags: Mapping[int, tuple[str, ...]],
) -> dict[JobKey, JobTotals]:
    """Sums of every run's device energies (by kind), emissions, steps and count per group;
    ``created_at`` is the earliest start among the group's runs (stable across restarts)."""
    groups: dict[JobKey, JobTotals] = {}
    for run, devices in runs:
        meta = metas.get(run.run_id, RunMeta(None, {}))
        key = (job_label(run, meta), run.host, tags.get(run.run_id, ()))
        totals = groups.get(key)
        if totals is None:
            totals = groups[key] = JobTotals(run.started_at)
        totals.created_at = min(totals.created_at, run.started_at)
        totals.steps += run.steps
        totals.runs += 1
        for device in devices:
            kind = device_kind(device.device)
            totals.energy_j[kind] = totals.energy_j.get(kind, 0.0) + device.energy_j
            if run.intensity_g_per_kwh is not None:
                co2 = device.energy_j / J_PER_KWH * run.pue * run.intensity_g_per_kwh
                totals.co2_g[kind] = totals.co2_g.get(kind, 0.0) + co2
    return groups


def run_visible(run: MetricRun, now: float, ttl_s: float | None) -> bool:
    """Whether a run's own series are still exposed: always while running; after it ended
    (or last wrote, for a run that never recorded an end) for ``ttl_s`` seconds."""
    if ttl_s is None or run.status == "running":
        return True
    ended = run.ended_at if run.ended_at is not None else run.heartbeat_at
    return now - ended <= ttl_s

"""Pure view-model of the compare screen: run summaries, percent deltas, the verdict line.

The inputs are a run's :class:`~greenprof.records.RunInfo`, its per-step columns (energy,
samples, loss, in step order) and its per-device energies; nothing here touches the
database or Textual.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.records import RunInfo

CURVE_POINTS = 240
EQUAL_WITHIN_PCT = 0.5


@dataclass(frozen=True, slots=True)
class StepColumns:
    """A run's steps as parallel columns, in step order."""

    energy_j: Sequence[float]
    samples: Sequence[int | None]
    loss: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class StepDigest:
    """What the comparison needs from a run's steps, exact or condensed.

    Small runs are digested exactly from all their steps (:func:`digest_columns`); large
    ones from per-bucket sums and every ``sampled_every``-th step, so that comparing two
    runs of 100,000 steps reads a few thousand rows (``greenprof.tui.queries``).
    """

    step_j: Sequence[float]
    """Energy of each (sampled) step."""
    sample_j: Sequence[float]
    """Energy per sample of each (sampled) step that counted samples."""
    curve: tuple[tuple[float, float], ...]
    """(step index, cumulative step energy J) at about CURVE_POINTS points."""
    loss_frontier: tuple[tuple[float, float], ...]
    """(best loss so far, cumulative energy J when first reached), loss strictly falling."""
    step_energy_j: float
    samples: int | None
    sampled_every: int = 1
    """1: exact. N: percentiles from 1 step in N, curve and frontier per bucket."""


def digest_columns(columns: StepColumns) -> StepDigest:
    """The exact digest of all of a run's steps."""
    pairs = zip(columns.energy_j, columns.samples, strict=True)
    per_sample = [energy / samples for energy, samples in pairs if samples]  # step J/sample
    count = len(columns.energy_j)
    stride = max(1, count // CURVE_POINTS)
    curve: list[tuple[float, float]] = []
    frontier: list[tuple[float, float]] = []
    cumulative = 0.0
    best = math.inf
    for index, (energy, loss) in enumerate(zip(columns.energy_j, columns.loss, strict=True)):
        cumulative += energy
        if index % stride == 0 or index == count - 1:
            curve.append((float(index), cumulative))
        if loss is not None and loss < best:
            best = loss
            frontier.append((loss, cumulative))
    samples = sum(s for s in columns.samples if s)
    return StepDigest(
        step_j=columns.energy_j,
        sample_j=per_sample,
        curve=tuple(curve),
        loss_frontier=tuple(frontier),
        step_energy_j=cumulative,
        samples=samples or None,
    )


percentile = metrics.percentile
"""Linear-interpolated percentile of sorted values (:func:`greenprof.metrics.percentile`)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The figures of one run that the compare screen sets side by side."""

    run: RunInfo
    label: str
    step_j_median: float | None
    step_j_p90: float | None
    sample_j_median: float | None
    sample_j_p90: float | None
    samples: int | None
    energy_j: float
    curve: tuple[tuple[float, float], ...]
    """(step index, cumulative step energy J), down-sampled to about CURVE_POINTS."""
    loss_frontier: tuple[tuple[float, float], ...]
    """(best loss so far, cumulative energy J when first reached), loss strictly falling."""
    device_shares: dict[str, float]
    """Each device's fraction of the run's device energy."""
    sampled_every: int = 1
    """1 when the distributions are exact; see :class:`StepDigest`."""

    @property
    def j_per_sample(self) -> float | None:
        """Run energy per sample (:mod:`greenprof.metrics`)."""
        return metrics.j_per_sample(self.energy_j, self.samples)

    @property
    def samples_per_kwh(self) -> float | None:
        return metrics.samples_per_kwh(self.samples, self.energy_j)

    @property
    def co2_g(self) -> float | None:
        carbon = self.run.carbon
        return None if carbon is None else carbon.co2_g(self.energy_j)

    @property
    def best_loss(self) -> float | None:
        return self.loss_frontier[-1][0] if self.loss_frontier else None

    def energy_to_loss_j(self, target: float) -> float | None:
        """Cumulative step energy when the loss first reached ``target`` (None: never)."""
        for loss, energy_j in self.loss_frontier:
            if loss <= target:
                return energy_j
        return None


def summarize(run: RunInfo, digest: StepDigest, device_energy_j: dict[str, float]) -> RunSummary:
    """Summarise one run from its step digest (two sorts of at most a few thousand values
    for large runs)."""
    per_step = sorted(digest.step_j)
    per_sample = sorted(digest.sample_j)
    device_total = sum(device_energy_j.values())
    shares = (
        {device: energy / device_total for device, energy in device_energy_j.items()}
        if device_total > 0
        else {}
    )
    return RunSummary(
        run=run,
        label=f"{run.name} #{run.run_id}",
        step_j_median=percentile(per_step, 0.5),
        step_j_p90=percentile(per_step, 0.9),
        sample_j_median=percentile(per_sample, 0.5),
        sample_j_p90=percentile(per_sample, 0.9),
        samples=digest.samples or run.samples,
        energy_j=max(run.energy_j, digest.step_energy_j),
        curve=digest.curve,
        loss_frontier=digest.loss_frontier,
        device_shares=shares,
        sampled_every=digest.sampled_every,
    )


def default_loss_target(summaries: Sequence[RunSummary]) -> float | None:
    """The best loss that every run with a loss reached (the max of their best losses)."""
    best = [s.best_loss for s in summaries if s.best_loss is not None]
    return max(best) if best else None


def pct_diff(value: float | None, reference: float | None) -> float | None:
    """``value`` relative to ``reference``, in percent (None when undefined)."""
    if value is None or reference is None or reference == 0:
        return None
    return (value / reference - 1.0) * 100.0


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One line of the comparison table: a metric's value per run and its delta."""

    metric: str
    values: tuple[str, ...]
    deltas: tuple[str, ...]
    """Percent difference from the first run ("" for the first run itself)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The compare screen's content."""

    labels: tuple[str, ...]
    rows: tuple[MetricRow, ...]
    verdicts: tuple[str, ...]
    loss_target: float | None
    note: str = ""
    """Says when distributions come from sampled steps."""


def _row(
    metric: str, raw: Sequence[float | None], show: Callable[[float | None], str]
) -> MetricRow:
    reference = raw[0]
    deltas = tuple(
        "" if index == 0 else fmt.percent(pct_diff(value, reference), signed=True)
        for index, value in enumerate(raw)
    )
    return MetricRow(metric, tuple(show(value) for value in raw), deltas)


def efficiency_verdicts(summaries: Sequence[RunSummary]) -> tuple[str, ...]:
    """Lines like "A is 23.1 % more energy-efficient per sample than B".

    Per sample (whole-run J/sample) when every run counted samples, else per step
    (median J/step). The most efficient run is compared with each other run.
    """
    if len(summaries) < 2:
        return ("select two or more runs to compare",)
    per_sample = [s.j_per_sample for s in summaries]
    if all(value is not None for value in per_sample):
        costs, unit = per_sample, "per sample"
    else:
        costs, unit = [s.step_j_median for s in summaries], "per step"
    if any(cost is None or cost <= 0 for cost in costs):
        return ("not enough steps recorded to compare efficiency",)
    known = [float(cost) for cost in costs if cost is not None]
    best_index = min(range(len(known)), key=known.__getitem__)
    best = summaries[best_index]
    lines = []
    for index, other in enumerate(summaries):
        if index == best_index:
            continue
        gain = (known[index] / known[best_index] - 1.0) * 100.0
        if gain < EQUAL_WITHIN_PCT:
            lines.append(
                f"{best.label} and {other.label} are equally energy-efficient {unit}"
                f" (within {EQUAL_WITHIN_PCT} %)"
            )
        else:
            lines.append(
                f"{best.label} is {gain:.1f} % more energy-efficient {unit} than {other.label}"
            )
    return tuple(lines)


def compare(summaries: Sequence[RunSummary], loss_target: float | None = None) -> Comparison:
    """Side-by-side rows with percent deltas relative to the first run."""
    target = loss_target if loss_target is not None else default_loss_target(summaries)
    rows = [
        _row("energy", [s.energy_j for s in summaries], fmt.energy_wh),
        _row("carbon CO2e", [s.co2_g for s in summaries], fmt.co2),
        _row("time", [s.run.duration_s for s in summaries], fmt.duration),
        _row("steps", [float(s.run.steps) for s in summaries], fmt.number),
        _row(
            "samples",
            [None if s.samples is None else float(s.samples) for s in summaries],
            fmt.number,
        ),
        _row("J/step median", [s.step_j_median for s in summaries], fmt.number),
        _row("J/step p90", [s.step_j_p90 for s in summaries], fmt.number),
        _row("J/sample median", [s.sample_j_median for s in summaries], fmt.number),
        _row("J/sample p90", [s.sample_j_p90 for s in summaries], fmt.number),
        _row("J/sample (run)", [s.j_per_sample for s in summaries], fmt.number),
        _row("samples/kWh", [s.samples_per_kwh for s in summaries], fmt.number),
    ]
    if target is not None:
        rows.append(
            _row(
                f"energy to loss≤{fmt.number(target)}",
                [s.energy_to_loss_j(target) for s in summaries],
                fmt.energy,
            )
        )
    devices = sorted({device for s in summaries for device in s.device_shares})
    for device in devices:
        rows.append(
            _row(
                f"{device} share",
                [s.device_shares.get(device) for s in summaries],
                lambda v: fmt.MISSING if v is None else fmt.percent(v * 100),
            )
        )
    return Comparison(
        labels=tuple(s.label for s in summaries),
        rows=tuple(rows),
        verdicts=efficiency_verdicts(summaries),
        loss_target=target,
        note=_sampling_note(summaries),
    )


def _sampling_note(summaries: Sequence[RunSummary]) -> str:
    sampled = [s for s in summaries if s.sampled_every > 1]
    if not sampled:
        return ""
    every = max(s.sampled_every for s in sampled)
    return (
        f"long runs: medians and p90 from 1 step in {every} (evenly spread); curve and "
        f"energy to loss per 1/{CURVE_POINTS} of the run"
    )

"""Pure view-model of the compare screen: run summaries, percent deltas, the verdict line.

The inputs are a run's :class:`~greenprof.records.RunInfo`, its per-step columns (energy,
samples, loss, in step order) and its per-device energies; nothing here touches the
database or Textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from greenprof import formatting as fmt
from greenprof.tui.compare_caveats import Caveat, comparison_caveats
from greenprof.tui.run_summary import AXES as AXES  # noqa: PLC0414 (re-export)
from greenprof.tui.run_summary import CURVE_POINTS as CURVE_POINTS  # noqa: PLC0414
from greenprof.tui.run_summary import LETTERS as LETTERS  # noqa: PLC0414
from greenprof.tui.run_summary import Axis as Axis  # noqa: PLC0414
from greenprof.tui.run_summary import RunSummary as RunSummary  # noqa: PLC0414
from greenprof.tui.run_summary import StepColumns as StepColumns  # noqa: PLC0414
from greenprof.tui.run_summary import StepDigest as StepDigest  # noqa: PLC0414
from greenprof.tui.run_summary import curve_points as curve_points  # noqa: PLC0414
from greenprof.tui.run_summary import default_loss_target as default_loss_target  # noqa: PLC0414
from greenprof.tui.run_summary import digest_columns as digest_columns  # noqa: PLC0414
from greenprof.tui.run_summary import pct_diff as pct_diff  # noqa: PLC0414
from greenprof.tui.run_summary import percentile as percentile  # noqa: PLC0414
from greenprof.tui.run_summary import summarize as summarize  # noqa: PLC0414

EQUAL_WITHIN_PCT = 0.5

VerdictMetric = Literal["sample", "step", "loss"]
"""What the verdict ranks runs by: whole-run J/sample, median J/step, or the energy to
reach the loss target."""
VERDICT_METRICS: tuple[VerdictMetric, ...] = ("sample", "step", "loss")
Better = Literal["lower", "higher"]

MEDIANS_NOTE = (
    "medians and p90 cover steps only; totals and J/sample (run) also count the energy "
    "between steps (setup, data loading, evaluation), so the two can disagree"
)
"""Why a run can win on the median J/step row and lose on its totals."""


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One line of the comparison table: a metric's value per run and its delta."""

    metric: str
    values: tuple[str, ...]
    deltas: tuple[str, ...]
    """Percent difference from the first run ("" for the first run itself)."""
    delta_pct: tuple[float | None, ...] = ()
    """The same differences as numbers (None for the first run or when undefined)."""
    better: Better | None = None
    """Which direction is better for this metric (None: neither, e.g. steps)."""

    def judgement(self, index: int) -> Literal["better", "worse", ""]:
        """Whether run ``index`` is better or worse than run A on this row ("" when equal
        within EQUAL_WITHIN_PCT, undefined, or the metric has no better direction)."""
        delta = self.delta_pct[index] if index < len(self.delta_pct) else None
        if self.better is None or delta is None or abs(delta) < EQUAL_WITHIN_PCT:
            return ""
        lower = delta < 0
        return "better" if lower == (self.better == "lower") else "worse"


@dataclass(frozen=True, slots=True)
class Comparison:
    """The compare screen's content."""

    labels: tuple[str, ...]
    rows: tuple[MetricRow, ...]
    verdicts: tuple[str, ...]
    loss_target: float | None
    note: str = ""
    """Says when distributions come from sampled steps."""
    verdict_metric: str = ""
    """The metric the verdict ranked by, in words ("" when it could not rank)."""
    caveats: tuple[str, ...] = ()
    """Runs whose figures are partial (failed, interrupted, running, lost steps)."""
    medians_note: str = MEDIANS_NOTE
    caveat_details: tuple[Caveat, ...] = ()
    """Every caveat with its kind and runs: the partial runs of ``caveats``, then how the
    runs differ (batch sizes, devices; see :mod:`greenprof.tui.compare_caveats`)."""
    ranked_by: VerdictMetric | None = None
    """The verdict's metric as a key (None when it could not rank)."""
    best_index: int | None = None
    """The most efficient run on that metric (None when it could not rank)."""


def _row(
    metric: str,
    raw: Sequence[float | None],
    show: Callable[[float | None], str],
    better: Better | None = "lower",
) -> MetricRow:
    reference = raw[0]
    numbers = tuple(
        None if index == 0 else pct_diff(value, reference) for index, value in enumerate(raw)
    )
    deltas = tuple(
        "" if index == 0 else fmt.percent(delta, signed=True) for index, delta in enumerate(numbers)
    )
    return MetricRow(metric, tuple(show(value) for value in raw), deltas, numbers, better)


class Ranking(NamedTuple):
    """The verdict's choice: the metric (in words), the best run, each run's extra cost.

    ``gains[i]`` is how much more run ``i`` spends than the best run on ``metric``, in
    percent (0 for the best; None for a run the metric cannot rank, e.g. one that never
    reached the loss target).
    """

    metric: str
    best_index: int
    gains: tuple[float | None, ...]
    unit: str
    """How the verdict line says it: "per sample", "per step", "to reach loss ≤ 1.20"."""
    key: VerdictMetric = "sample"
    """The metric as a key: what ``metric`` says in words."""


def _costs(
    summaries: Sequence[RunSummary], metric: VerdictMetric, loss_target: float | None
) -> tuple[list[float | None], str, str]:
    if metric == "loss" and loss_target is not None:
        target = fmt.number(loss_target)
        return (
            [s.energy_to_loss_j(loss_target) for s in summaries],
            f"energy to loss≤{target}",
            f"to reach loss≤{target}",
        )
    if metric == "step":
        return [s.step_j_median for s in summaries], "J/step median", "per step"
    return [s.j_per_sample for s in summaries], "J/sample (run)", "per sample"


def verdict_metric(
    summaries: Sequence[RunSummary],
    loss_target: float | None = None,
    chosen: VerdictMetric | None = None,
) -> VerdictMetric:
    """The metric the verdict ranks by: the user's choice; else energy to the loss target
    when the user set one; else whole-run J/sample when every run counted samples; else
    median J/step."""
    if chosen is not None and (chosen != "loss" or loss_target is not None):
        return chosen
    if loss_target is not None:
        return "loss"
    return "sample" if all(s.j_per_sample is not None for s in summaries) else "step"


def efficiency_ranking(
    summaries: Sequence[RunSummary],
    loss_target: float | None = None,
    chosen: VerdictMetric | None = None,
) -> Ranking | None:
    """Rank the runs on the verdict's metric (:func:`verdict_metric`); None when fewer than
    two runs have a positive figure on it."""
    metric = verdict_metric(summaries, loss_target, chosen)
    costs, name, unit = _costs(summaries, metric, loss_target)
    if metric == "sample" and any(c is None for c in costs):  # chosen, but not counted
        metric = "step"
        costs, name, unit = _costs(summaries, metric, loss_target)
    known = [i for i, c in enumerate(costs) if c is not None and c > 0]
    if len(known) < 2 or (metric != "loss" and len(known) < len(costs)):
        return None
    best_index = min(known, key=lambda i: float(costs[i] or 0.0))
    best = float(costs[best_index] or 0.0)
    gains = tuple(
        None if cost is None or cost <= 0 else (cost / best - 1.0) * 100.0 for cost in costs
    )
    return Ranking(name, best_index, gains, unit, metric)


def efficiency_verdicts(
    summaries: Sequence[RunSummary],
    loss_target: float | None = None,
    chosen: VerdictMetric | None = None,
) -> tuple[str, ...]:
    """Lines like "A is 23.1 % more energy-efficient per sample than B", on the metric
    of :func:`efficiency_ranking` (the line says which: per sample, per step, or to reach
    the loss target). The most efficient run is compared with each other run.
    """
    if len(summaries) < 2:
        return ("select two or more runs to compare",)
    ranking = efficiency_ranking(summaries, loss_target, chosen)
    if ranking is None:
        if verdict_metric(summaries, loss_target, chosen) == "loss":
            return (f"fewer than two runs reached loss≤{fmt.number(loss_target)}",)
        return ("not enough steps recorded to compare efficiency",)
    best = summaries[ranking.best_index]
    unit = ranking.unit
    lines = []
    for index, other in enumerate(summaries):
        gain = ranking.gains[index]
        if index == ranking.best_index:
            continue
        if gain is None:
            lines.append(f"{other.label} never reached loss≤{fmt.number(loss_target)}")
        elif gain < EQUAL_WITHIN_PCT:
            lines.append(
                f"{best.label} and {other.label} are equally energy-efficient {unit}"
                f" (within {EQUAL_WITHIN_PCT} %)"
            )
        else:
            lines.append(
                f"{best.label} is {gain:.1f} % more energy-efficient {unit} than {other.label}"
            )
    return tuple(lines)


def compare(
    summaries: Sequence[RunSummary],
    loss_target: float | None = None,
    verdict_by: VerdictMetric | None = None,
) -> Comparison:
    """Side-by-side rows with percent deltas relative to the first run.

    ``loss_target`` is the user's: when set, the verdict ranks by the energy to reach it
    (unless ``verdict_by`` chooses another metric); without it the table still shows
    the energy to the loss every run reached, but the verdict stays on J/sample.
    """
    target = loss_target if loss_target is not None else default_loss_target(summaries)
    rows = [
        _row("energy", [s.energy_j for s in summaries], fmt.energy_wh),
        _row("carbon CO2e", [s.co2_g for s in summaries], fmt.co2),
        _row("time", [s.run.duration_s for s in summaries], fmt.duration),
        _row("steps", [float(s.run.steps) for s in summaries], fmt.number, None),
        _row(
            "samples",
            [None if s.samples is None else float(s.samples) for s in summaries],
            fmt.number,
            None,
        ),
        _row("J/step median", [s.step_j_median for s in summaries], fmt.number),
        _row("J/step p90", [s.step_j_p90 for s in summaries], fmt.number),
        _row("J/sample median", [s.sample_j_median for s in summaries], fmt.number),
        _row("J/sample p90", [s.sample_j_p90 for s in summaries], fmt.number),
        _row("J/sample (run)", [s.j_per_sample for s in summaries], fmt.number),
        _row("samples/kWh", [s.samples_per_kwh for s in summaries], fmt.number, "higher"),
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
                None,
            )
        )
    ranking = efficiency_ranking(summaries, loss_target, verdict_by) if len(summaries) > 1 else None
    details = comparison_caveats(summaries)
    return Comparison(
        labels=tuple(s.label for s in summaries),
        rows=tuple(rows),
        verdicts=efficiency_verdicts(summaries, loss_target, verdict_by),
        loss_target=target,
        note=_sampling_note(summaries),
        verdict_metric="" if ranking is None else ranking.metric,
        caveats=tuple(c.text for c in details if c.partial),
        caveat_details=details,
        ranked_by=None if ranking is None else ranking.key,
        best_index=None if ranking is None else ranking.best_index,
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

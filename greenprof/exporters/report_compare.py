"""The report's comparison section, when several runs (or the ranks of a job) are given.

Side by side, against the first run: J/sample (run energy over samples, as everywhere:
:mod:`greenprof.metrics`), samples per kWh, energy and CO2e, each with its change in
percent. The verdict ("most energy-efficient per training sample") is drawn among the
runs that completed, and the section says why any run is left out or needs care: a
failed, interrupted, incomplete or still running run (its totals stop where it did), a
run without samples (no J/sample), a run without grid intensity (no CO2e), runs on
different grid intensities (their CO2e differ by more than the training).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from greenprof import formatting as fmt
from greenprof.exporters.chart import bar_chart
from greenprof.exporters.render import Block, Bullets, Figure, Heading, Paragraph, Table
from greenprof.exporters.report_tables import run_label
from greenprof.metrics import run_j_per_sample, run_samples_per_kwh
from greenprof.records import RunInfo

_PARTIAL = {
    "failed": "failed",
    "interrupted": "was interrupted",
    "incomplete": "is incomplete (not every step could be stored)",
    "running": "is still running",
}
"""Statuses whose totals stop short of a finished training, and how to say it."""


def _delta(value: float | None, base: float | None) -> str:
    """The change from ``base`` to ``value`` in percent, signed."""
    if value is None or not base:
        return fmt.MISSING
    return fmt.percent((value - base) / base * 100, signed=True)


_Metric = tuple[str, Callable[[RunInfo], float | None], Callable[[float | None], str]]

METRICS: tuple[_Metric, ...] = (
    ("J / sample", run_j_per_sample, fmt.energy),
    ("Samples / kWh", run_samples_per_kwh, fmt.number),
    ("Energy", lambda run: run.energy_j, fmt.energy_wh),
    ("CO2e", lambda run: run.co2_g, fmt.co2),
)
"""What the comparison puts side by side: header, figure of a run, its text."""


def comparison_table(runs: Sequence[RunInfo]) -> Table:
    """Each metric of :data:`METRICS` and its change from the first run, per run."""
    base = runs[0]
    headers = ["Run", "Status"]
    for name, _, _ in METRICS:
        headers += [name, "Δ"]
    rows = []
    for run in runs:
        row = [run_label(run), run.status]
        for _, figure, text in METRICS:
            value = figure(run)
            row += [text(value), "baseline" if run is base else _delta(value, figure(base))]
        rows.append(tuple(row))
    return Table(headers, rows, (False, False, *([True] * (2 * len(METRICS)))))


def caveats(runs: Sequence[RunInfo]) -> list[str]:
    """Why a run's figures need care in a comparison (an empty list when none do)."""
    notes = []
    for run in runs:
        label = run_label(run)
        if run.status in _PARTIAL:
            why = f": {run.error}" if run.error else ""
            notes.append(
                f"{label} {_PARTIAL[run.status]}{why}. Its totals stop where it did; it is "
                "left out of the verdict."
            )
        if not run.samples:
            notes.append(f"{label} counted no samples: no J/sample or samples/kWh.")
        if run.carbon is None:
            notes.append(f"{label} has no grid intensity: no CO2e.")
    intensities = {run.carbon.intensity_g_per_kwh for run in runs if run.carbon is not None}
    if len(intensities) > 1:
        listed = ", ".join(f"{fmt.number(i)} g/kWh" for i in sorted(intensities))
        notes.append(
            f"The runs use different grid intensities ({listed}): their CO2e differ by "
            "the grid as well as by the training; compare energy for the training alone."
        )
    return notes


def comparison(runs: Sequence[RunInfo]) -> list[Block]:
    """The comparison section: table, caveats, verdict and a J/sample bar chart."""
    blocks: list[Block] = [
        Heading("Comparison"),
        Paragraph(
            f"Side by side, with each change relative to the first run, {run_label(runs[0])} "
            "(negative = less). J/sample is the energy of the whole run (setup and time "
            "between steps included) over its training samples."
        ),
        comparison_table(runs),
    ]
    notes = caveats(runs)
    if notes:
        blocks += [Heading("Caveats", 3), Bullets(notes)]
    measured = [
        (run, value)
        for run in runs
        if (value := run_j_per_sample(run)) is not None and run.status not in _PARTIAL
    ]
    if len(measured) >= 2:
        best = min(measured, key=lambda pair: pair[1])[0]
        blocks.append(
            Paragraph(
                f"Most energy-efficient per training sample among the completed runs: "
                f"{run_label(best)}."
            )
        )
    charted = [(run, value) for run in runs if (value := run_j_per_sample(run)) is not None]
    if len(charted) >= 2:
        items = [(run_label(run), value) for run, value in charted]
        texts = [f"{fmt.energy(value)}/sample" for _, value in charted]
        svg = bar_chart(
            items, unit="J/sample", title="Energy per training sample", value_texts=texts
        )
        width = max(len(label) for label, _ in items)
        lines = [f"{label:<{width}}  {text}" for (label, _), text in zip(items, texts, strict=True)]
        blocks.append(Figure(svg, lines, "Energy per training sample (lower is better)."))
    return blocks

"""``greenprof report RUN [RUN...] --format md|html``: a sustainability report to hand on.

It states totals (energy, CO2e, duration, a total row for several runs), per-device
and per-epoch tables (long epoch tables bounded, with the command that exports them
all), the setup phase and the energy outside steps of each run, efficiency (J per
sample, samples per kWh), a comparison of the runs (or of the ranks of a job) side by
side with deltas and caveats, the assumptions behind every figure (grid intensity, its
source and year, PUE, how each device was measured and what is estimated), and a chart
of power and cumulative energy over time: inline SVG in the HTML (viewable offline),
sparklines in Markdown. Every figure is written by :mod:`greenprof.formatting`.

Modules: :mod:`~greenprof.exporters.report_tables` (tables),
:mod:`~greenprof.exporters.report_compare` (comparison),
:mod:`~greenprof.exporters.report_timeline` (the chart's data).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from greenprof import formatting
from greenprof.exporters.chart import Series, line_chart, sparkline
from greenprof.exporters.render import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    to_html,
    to_markdown,
)
from greenprof.exporters.report_compare import comparison
from greenprof.exporters.report_tables import (
    devices_table,
    epochs_command,
    epochs_table,
    run_label,
    totals_table,
)
from greenprof.exporters.report_timeline import CHART_POINTS, Timeline, timeline
from greenprof.records import RunInfo
from greenprof.units import J_PER_KWH, J_PER_WH

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore

__all__ = ["CHART_POINTS", "Timeline", "build_report", "timeline", "write_report"]

_UTC = dt.timezone.utc

METHOD_MEANING = {
    "counter": "measured: hardware cumulative energy counter",
    "power_integration": "measured: sampled power integrated over time (sampling error applies)",
    "model": "ESTIMATE: modelled from utilization and nominal power (TDP), not measured",
    "simulated": "SYNTHETIC: a simulated or replayed sensor, not a measurement",
}

_ENERGY_AXES = ((1e3 * J_PER_KWH, "MWh"), (J_PER_KWH, "kWh"), (J_PER_WH, "Wh"))


def energy_axis(top_j: float) -> tuple[float, str]:
    """Divisor and unit of a cumulative-energy axis reaching ``top_j``: the largest of
    MWh, kWh, Wh it reaches, else mWh (ticks read 2, 4, 6, never 0.00004)."""
    for factor, unit in _ENERGY_AXES:
        if top_j >= factor:
            return factor, unit
    return J_PER_WH / 1e3, "mWh"


def _source_name(store: RunStore) -> str:
    """The database file's name (not its directories), or a server store's display."""
    location = store.location
    return location.path.name if location.kind == "sqlite" else location.display


def _share(part_j: float, whole_j: float) -> str:
    return formatting.percent(part_j / whole_j * 100 if whole_j > 0 else None)


def _energy_facts(run: RunInfo) -> list[str]:
    """Where the run's energy went: all of it, inside steps, setup, the rest."""
    outside_j = max(0.0, run.energy_j - run.step_energy_j)
    setup = (
        f"Setup (start to first step: imports, data, compilation): "
        f"{formatting.duration(run.setup_s)}, {formatting.energy_wh(run.setup_energy_j)} "
        f"({_share(run.setup_energy_j, run.energy_j)} of the run's energy)."
        if run.setup_s > 0
        else "Setup (start to first step): not recorded for this run."
    )
    between_j = max(0.0, outside_j - run.setup_energy_j)
    return [
        f"Energy of all devices over the run: {formatting.energy_wh(run.energy_j)}; inside "
        f"training steps: {formatting.energy_wh(run.step_energy_j)} "
        f"({_share(run.step_energy_j, run.energy_j)}).",
        setup,
        f"Energy outside steps: {formatting.energy_wh(outside_j)} "
        f"({_share(outside_j, run.energy_j)}): setup, then {formatting.energy_wh(between_j)} "
        "between steps (data loading, evaluation, checkpoints).",
    ]


def _run_facts(store: RunStore, run: RunInfo) -> list[str]:
    facts = [
        f"Host {run.host}, framework {run.framework or 'unknown'}, status {run.status}, "
        f"started {formatting.timestamp(run.started_at, zone=_UTC)}, "
        f"duration {formatting.duration(run.duration_s)}.",
        *_energy_facts(run),
    ]
    if run.carbon is not None:
        facts.append(
            f"Facility energy (× PUE {formatting.number(run.carbon.pue)}): "
            f"{formatting.energy_wh(run.energy_j * run.carbon.pue)}; emissions "
            f"{formatting.co2(run.co2_g or 0.0)} CO2e."
        )
    idle = [d for d in run.devices if d.idle_power_w is not None]
    if idle and run.duration_s > 0:
        energies = store.device_energy_j(run.run_id)
        above = sum(
            max(0.0, energies.get(d.device, 0.0) - (d.idle_power_w or 0.0) * run.duration_s)
            for d in idle
        )
        names = ", ".join(d.device for d in idle)
        facts.append(f"Energy above idle ({names}): {formatting.energy_wh(above)}.")
    if run.error:
        facts.append(f"Recorded problem: {run.error}")
    return facts


def _chart(line: Timeline, run: RunInfo) -> Figure:
    left = [Series(device, values) for device, values in line.power_w.items()]
    top_j = max((v for v in line.energy_j if v is not None), default=0.0)
    divisor, unit = energy_axis(top_j)
    levels = [None if v is None else v / divisor for v in line.energy_j]
    svg = line_chart(
        line.times_s,
        left,
        left_unit="power (W)",
        right=Series(f"cumulative energy, all devices ({unit})", levels),
        right_unit=f"energy ({unit})",
        title=f"Power and energy — {run_label(run)}",
    )
    width = max((len(device) for device in line.power_w), default=0)
    text = [
        f"{device:<{width}}  {sparkline(values)}  {formatting.power(_max(values))} max"
        for device, values in line.power_w.items()
    ]
    caption = (
        f"Power per device (W) and cumulative energy ({unit}) over time, averaged into "
        f"{len(line.times_s)} intervals from the {line.source}."
    )
    return Figure(svg, text, caption)


def _run_section(store: RunStore, run: RunInfo) -> list[Block]:
    blocks: list[Block] = [Heading(run_label(run), 2), Bullets(_run_facts(store, run))]
    blocks += [Heading("Devices", 3), devices_table(store, run)]
    epochs = store.epochs(run.run_id)
    if epochs:
        table, hidden = epochs_table(run, epochs)
        blocks += [Heading("Epochs", 3), table]
        if hidden:
            blocks.append(
                Paragraph(
                    f"… {hidden} more epochs not shown: see the CSV export, "
                    f"{epochs_command(store, run)}"
                )
            )
    line = timeline(store, run)
    if line.times_s:
        blocks += [Heading("Power and energy over time", 3), _chart(line, run)]
    return blocks


def _max(values: Sequence[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _assumptions(runs: Sequence[RunInfo]) -> list[Block]:
    items = []
    for run in runs:
        carbon = run.carbon
        if carbon is None:
            items.append(f"{run_label(run)}: no grid intensity recorded, emissions not computed.")
            continue
        place = carbon.region or carbon.country or "not stated"
        items.append(
            f"{run_label(run)}: grid intensity {formatting.number(carbon.intensity_g_per_kwh)} "
            f"g CO2e/kWh for {place} (source: {carbon.source or 'not recorded'}); "
            f"PUE {formatting.number(carbon.pue)}; "
            "emissions = device energy × PUE × grid intensity."
        )
    methods: dict[str, set[str]] = {}
    notes = []
    for run in runs:
        for dev in run.devices:
            methods.setdefault(dev.method, set()).add(dev.device)
            if dev.note:
                notes.append(f"{run_label(run)} {dev.device}: {dev.note}")
            if dev.node_wide:
                notes.append(
                    f"{run_label(run)} {dev.device}: measures the whole node, "
                    "including other processes."
                )
    for method, devices in sorted(methods.items()):
        meaning = METHOD_MEANING.get(method, "unknown method")
        items.append(f"Method '{method}' ({', '.join(sorted(devices))}): {meaning}.")
    items.append(
        "Energies are gross (they include idle power); steps shorter than a sensor's update "
        "period get interpolated energies, while totals over the run stay exact."
    )
    return [Heading("Assumptions and method"), Bullets(items + notes)]


def _title(runs: Sequence[RunInfo]) -> str:
    jobs = {run.job_id for run in runs}
    if len(runs) == 1:
        return f"Energy and carbon report: {run_label(runs[0])}"
    if len(jobs) == 1 and None not in jobs:
        return f"Energy and carbon report: {len(runs)} runs of job {runs[0].job_id}"
    return f"Energy and carbon report: {len(runs)} runs"


def _warnings(runs: Sequence[RunInfo]) -> list[Block]:
    blocks: list[Block] = []
    if any(dev.method == "simulated" for run in runs for dev in run.devices):
        blocks.append(
            Paragraph(
                "This report contains SYNTHETIC data from simulated sensors; those figures "
                "are not measurements.",
                warning=True,
            )
        )
    if any(dev.method == "model" for run in runs for dev in run.devices):
        blocks.append(
            Paragraph(
                "Some devices are estimated with a model, not measured (method 'model').",
                warning=True,
            )
        )
    return blocks


def build_report(
    store: RunStore, runs: Sequence[RunInfo], *, clock: Callable[[], float] = time.time
) -> list[Block]:
    """The report as document blocks (see :mod:`greenprof.exporters.render`)."""
    blocks: list[Block] = [
        Heading(_title(runs), 1),
        Paragraph(
            f"Generated {formatting.timestamp(clock(), zone=_UTC)} by greenprof from "
            f"{_source_name(store)}. Times are UTC."
        ),
        *_warnings(runs),
        Heading("Totals"),
        totals_table(runs),
    ]
    if len(runs) > 1:
        blocks.append(
            Paragraph(
                "Total: energy, CO2e, steps and samples summed over the runs; its duration "
                "runs from the first start to the last end; its J/sample is the total "
                "energy over the total samples."
            )
        )
        blocks += comparison(runs)
    for run in runs:
        blocks += _run_section(store, run)
    blocks += _assumptions(runs)
    return blocks


def write_report(
    store: RunStore,
    runs: Sequence[RunInfo],
    out: TextIO,
    *,
    fmt: str,
    clock: Callable[[], float] = time.time,
) -> None:
    """Write the report of ``runs`` to ``out`` as ``md`` or ``html``."""
    blocks = build_report(store, runs, clock=clock)
    title = blocks[0].text if isinstance(blocks[0], Heading) else "greenprof report"
    out.write(to_html(blocks, title=title) if fmt == "html" else to_markdown(blocks))

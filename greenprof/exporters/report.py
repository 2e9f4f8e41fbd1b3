"""``greenprof report RUN [RUN...] --format md|html``: a sustainability report to hand on.

It states totals (kWh, kg CO2e, duration), per-device and per-epoch tables, efficiency
(J per sample, samples per kWh), a comparison of the runs against the first one, the
assumptions behind every figure (grid intensity, its source and year, PUE, how each
device was measured and what is estimated), and a chart of power and cumulative energy
over time: inline SVG in the HTML (viewable offline), sparklines in Markdown.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from greenprof.exporters._common import iso_utc
from greenprof.exporters.chart import Series, bar_chart, line_chart, sparkline
from greenprof.exporters.render import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from greenprof.records import EpochRecord, RunInfo

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore

J_PER_KWH = 3.6e6
CHART_POINTS = 150
MAX_EPOCH_ROWS = 100

METHOD_MEANING = {
    "counter": "measured: hardware cumulative energy counter",
    "power_integration": "measured: sampled power integrated over time (sampling error applies)",
    "model": "ESTIMATE: modelled from utilization and nominal power (TDP), not measured",
    "simulated": "SYNTHETIC: a simulated or replayed sensor, not a measurement",
}


def num(value: float | None, digits: int = 4) -> str:
    """``value`` with about ``digits`` significant digits and thousands separators."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    import math

    magnitude = math.floor(math.log10(abs(value)))
    return f"{value:,.{max(0, digits - 1 - magnitude)}f}"


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12.5 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


@dataclass(frozen=True)
class Timeline:
    """Power per device and cumulative energy of all devices, on a shared time grid."""

    times_s: list[float]
    power_w: dict[str, list[float | None]]
    energy_j: list[float | None]
    source: str
    """'samples' (sensor readings) or 'steps' (step energies, when no samples were stored)."""


def timeline(store: RunStore, run: RunInfo, points: int = CHART_POINTS) -> Timeline:
    """Bucket a run's samples (else its steps) into about ``points`` intervals (the store
    does the bucketing)."""
    span = run.duration_s
    if span <= 0:
        span = store.last_sample_time_s(run.run_id) or 0.0
    width = max(span / points, 1e-3)
    cells = store.sample_timeline(run.run_id, width_s=width, points=points)
    source = "samples"
    if not cells:
        source = "steps"
        cells = store.step_timeline(run.run_id, width_s=width, points=points)
    buckets = max((cell.bucket for cell in cells), default=-1) + 1
    devices = sorted({cell.device for cell in cells})
    power: dict[str, list[float | None]] = {d: [None] * buckets for d in devices}
    level: dict[str, list[float | None]] = {d: [None] * buckets for d in devices}
    for cell in cells:
        power[cell.device][cell.bucket] = cell.power_w
        level[cell.device][cell.bucket] = cell.energy_j
    cumulative: list[float | None] = [None] * buckets
    for device in devices:
        running, previous = 0.0, 0.0
        for b in range(buckets):
            value = level[device][b]
            if source == "steps":  # per-bucket sums: accumulate, derive power
                running += value or 0.0
                power[device][b] = (value or 0.0) / width
            elif value is not None:  # cumulative counter: power from the rise
                if power[device][b] is None and b > 0:
                    power[device][b] = (value - previous) / width
                running = previous = value
            elif power[device][b] is not None:  # power-only sensor: integrate
                running += (power[device][b] or 0.0) * width
            cumulative[b] = (cumulative[b] or 0.0) + running
    times = [(b + 0.5) * width for b in range(buckets)]
    return Timeline(times, power, cumulative, source)


def _source_name(store: RunStore) -> str:
    """The database file's name (not its directories), or a server store's display."""
    location = store.location
    return location.path.name if location.kind == "sqlite" else location.display


def _run_label(run: RunInfo) -> str:
    rank = "" if run.rank is None else f" rank {run.rank}"
    return f"{run.name} #{run.run_id}{rank}"


def _per_sample(run: RunInfo) -> float | None:
    return run.energy_j / run.samples if run.samples else None


def _summary(runs: Sequence[RunInfo]) -> list[Block]:
    rows = []
    for run in runs:
        co2 = run.co2_g
        per_kwh = run.samples / run.energy_kwh if run.samples and run.energy_j else None
        rows.append(
            (
                _run_label(run),
                run.status,
                iso_utc(run.started_at)[:19].replace("T", " "),
                duration(run.duration_s),
                f"{run.steps:,}",
                "—" if run.samples is None else f"{run.samples:,}",
                num(run.energy_kwh),
                "—" if co2 is None else num(co2 / 1000),
                num(_per_sample(run)),
                num(per_kwh),
                num(run.energy_j / run.duration_s if run.duration_s > 0 else None),
            )
        )
    headers = (
        "Run", "Status", "Started (UTC)", "Duration", "Steps", "Samples", "Energy (kWh)",
        "Emissions (kg CO2e)", "J / sample", "Samples / kWh", "Mean power (W)",
    )  # fmt: skip
    numeric = (False, False, False, True, True, True, True, True, True, True, True)
    return [Heading("Totals"), Table(headers, rows, numeric)]


def _pct(new: float | None, base: float | None) -> str:
    if new is None or not base:
        return "—"
    return f"{(new - base) / base * 100:+.1f} %"


def _comparison(runs: Sequence[RunInfo]) -> list[Block]:
    base = runs[0]
    rows = []
    for run in runs[1:]:
        rows.append(
            (
                _run_label(run),
                _pct(run.energy_j, base.energy_j),
                _pct(run.co2_g, base.co2_g),
                _pct(run.duration_s, base.duration_s),
                _pct(_per_sample(run), _per_sample(base)),
            )
        )
    blocks: list[Block] = [
        Heading("Comparison"),
        Paragraph(f"Relative to the first run, {_run_label(base)} (negative = less)."),
        Table(
            ("Run", "Energy", "Emissions", "Duration", "J / sample"),
            rows,
            (False, True, True, True, True),
        ),
    ]
    measured = [(r, _per_sample(r)) for r in runs if _per_sample(r) is not None]
    if len(measured) >= 2:
        best = min(measured, key=lambda pair: pair[1] or 0.0)[0]
        blocks.append(Paragraph(f"Most energy-efficient per training sample: {_run_label(best)}."))
        items = [(_run_label(r), value or 0.0) for r, value in measured]
        svg = bar_chart(items, unit="J/sample", title="Energy per training sample")
        text = [f"{label:<32} {value:10.4g} J/sample" for label, value in items]
        blocks.append(Figure(svg, text, "Energy per training sample (lower is better)."))
    return blocks


def _devices_table(store: RunStore, run: RunInfo) -> Table:
    energies = store.device_energy_j(run.run_id)
    total = sum(energies.values()) or 1.0
    rows = []
    for dev in run.devices:
        joules = energies.get(dev.device, 0.0)
        mean_w = joules / run.duration_s if run.duration_s > 0 else None
        rows.append(
            (
                dev.device,
                dev.kind,
                dev.name or "—",
                dev.method,
                num(joules / J_PER_KWH),
                f"{joules / total * 100:.1f} %",
                num(mean_w),
                num(dev.idle_power_w),
                dev.note or "",
            )
        )
    headers = (
        "Device", "Kind", "Model", "Method", "Energy (kWh)", "Share", "Mean power (W)",
        "Idle power (W)", "Note",
    )  # fmt: skip
    return Table(headers, rows, (False, False, False, False, True, True, True, True, False))


def _epochs_table(run: RunInfo, epochs: Sequence[EpochRecord]) -> Table:
    factor = None if run.carbon is None else run.carbon.co2_g(1.0)
    rows = []
    for ep in epochs[:MAX_EPOCH_ROWS]:
        rows.append(
            (
                str(ep.epoch),
                f"{ep.steps:,}",
                duration(ep.duration_s),
                "—" if ep.samples is None else f"{ep.samples:,}",
                num(ep.energy_j / J_PER_KWH),
                num(ep.energy_j / ep.samples if ep.samples else None),
                "—" if factor is None else num(ep.energy_j * factor),
            )
        )
    headers = ("Epoch", "Steps", "Duration", "Samples", "Energy (kWh)", "J / sample", "g CO2e")
    return Table(headers, rows, (True, True, True, True, True, True, True))


def _run_section(store: RunStore, run: RunInfo) -> list[Block]:
    blocks: list[Block] = [Heading(_run_label(run), 2)]
    facts = [
        f"Host {run.host}, framework {run.framework or 'unknown'}, status {run.status}, "
        f"started {iso_utc(run.started_at)}, duration {duration(run.duration_s)}.",
        f"Energy of all devices over the run: {num(run.energy_kwh)} kWh "
        f"({num(run.energy_j)} J); inside training steps: {num(run.step_energy_j)} J.",
    ]
    if run.carbon is not None:
        facts.append(
            f"Facility energy (× PUE {run.carbon.pue:g}): "
            f"{num(run.energy_kwh * run.carbon.pue)} kWh; emissions "
            f"{num((run.co2_g or 0.0) / 1000)} kg CO2e."
        )
    idle = [d for d in run.devices if d.idle_power_w is not None]
    if idle and run.duration_s > 0:
        energies = store.device_energy_j(run.run_id)
        above = sum(
            max(0.0, energies.get(d.device, 0.0) - (d.idle_power_w or 0.0) * run.duration_s)
            for d in idle
        )
        names = ", ".join(d.device for d in idle)
        facts.append(f"Energy above idle ({names}): {num(above / J_PER_KWH)} kWh.")
    if run.error:
        facts.append(f"Recorded problem: {run.error}")
    blocks += [Bullets(facts), Heading("Devices", 3), _devices_table(store, run)]
    epochs = store.epochs(run.run_id)
    if epochs:
        blocks += [Heading("Epochs", 3), _epochs_table(run, epochs)]
        if len(epochs) > MAX_EPOCH_ROWS:
            blocks.append(Paragraph(f"First {MAX_EPOCH_ROWS} of {len(epochs)} epochs shown."))
    line = timeline(store, run)
    if line.times_s:
        left = [Series(device, values) for device, values in line.power_w.items()]
        kwh = [None if v is None else v / J_PER_KWH for v in line.energy_j]
        svg = line_chart(
            line.times_s,
            left,
            left_unit="power (W)",
            right=Series("cumulative energy, all devices (kWh)", kwh),
            right_unit="energy (kWh)",
            title=f"Power and energy — {_run_label(run)}",
        )
        text = [
            f"{device:<10} {sparkline(values)}  {num(_max(values))} W max"
            for device, values in line.power_w.items()
        ]
        caption = (
            "Power per device (W) and cumulative energy (kWh) over time, averaged into "
            f"{len(line.times_s)} intervals from the {line.source}."
        )
        blocks += [Heading("Power and energy over time", 3), Figure(svg, text, caption)]
    return blocks


def _max(values: Sequence[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _assumptions(runs: Sequence[RunInfo]) -> list[Block]:
    items = []
    for run in runs:
        carbon = run.carbon
        if carbon is None:
            items.append(f"{_run_label(run)}: no grid intensity recorded, emissions not computed.")
            continue
        place = carbon.region or carbon.country or "not stated"
        items.append(
            f"{_run_label(run)}: grid intensity {carbon.intensity_g_per_kwh:g} g CO2e/kWh "
            f"for {place} (source: {carbon.source or 'not recorded'}); PUE {carbon.pue:g}; "
            "emissions = device energy × PUE × grid intensity."
        )
    methods: dict[str, set[str]] = {}
    notes = []
    for run in runs:
        for dev in run.devices:
            methods.setdefault(dev.method, set()).add(dev.device)
            if dev.note:
                notes.append(f"{_run_label(run)} {dev.device}: {dev.note}")
            if dev.node_wide:
                notes.append(
                    f"{_run_label(run)} {dev.device}: measures the whole node, "
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


def build_report(store: RunStore, runs: Sequence[RunInfo]) -> list[Block]:
    """The report as document blocks (see :mod:`greenprof.exporters.render`)."""
    title = (
        f"Energy and carbon report: {_run_label(runs[0])}"
        if len(runs) == 1
        else f"Energy and carbon report: {len(runs)} runs"
    )
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(
            f"Generated {iso_utc(time.time())} by greenprof from {_source_name(store)}."
            " All times UTC."
        ),
    ]
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
    blocks += _summary(runs)
    if len(runs) > 1:
        blocks += _comparison(runs)
    for run in runs:
        blocks += _run_section(store, run)
    blocks += _assumptions(runs)
    return blocks


def write_report(store: RunStore, runs: Sequence[RunInfo], out: TextIO, *, fmt: str) -> None:
    """Write the report of ``runs`` to ``out`` as ``md`` or ``html``."""
    blocks = build_report(store, runs)
    title = blocks[0].text if isinstance(blocks[0], Heading) else "greenprof report"
    out.write(to_html(blocks, title=title) if fmt == "html" else to_markdown(blocks))

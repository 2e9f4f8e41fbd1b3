"""Plain-text summaries of stored runs, for ``greenprof demo``, ``runs`` and ``show``.

Every text that comes from the database (names, tags, hosts, device names, notes, errors)
goes through :func:`~greenprof.textsafe.terminal_text` as the lines are built, so that
an escape sequence in a run name is shown, not executed, and table widths are measured
on what is shown. Every figure follows :mod:`greenprof.formatting` (the units the
terminal UI and the reports show) and :mod:`greenprof.metrics` (what J/sample means).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.jobs import JobTotals
from greenprof.records import EpochRecord, RunInfo, tag_text
from greenprof.step_windows import StepWindowBounds
from greenprof.textsafe import terminal_text as _safe


def format_energy(energy_j: float) -> str:
    """A run's energy (:func:`greenprof.formatting.energy_wh`); kept for old callers."""
    return fmt.energy_wh(energy_j)


def format_co2(co2_g: float | None) -> str:
    """CO2e mass (:func:`greenprof.formatting.co2`); kept for old callers."""
    return fmt.co2(co2_g)


def format_duration(duration_s: float) -> str:
    """A duration (:func:`greenprof.formatting.duration`); kept for old callers."""
    return fmt.duration(duration_s)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart under a header and a rule of dashes (the
    plain-text tables of ``runs``, ``show``, and ``history`` and ``compare`` on a pipe).
    The cells must already be terminal-safe."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return out


def runs_table(runs: Sequence[RunInfo], *, zone: dt.tzinfo | None = None) -> list[str]:
    """One line per run: id, name, status, start (ISO 8601 with its zone, default the local
    one), steps, duration, energy, CO2e."""
    rows = [
        [
            str(run.run_id),
            _safe(run.name),
            _safe(run.status),
            fmt.timestamp(run.started_at, zone=zone),
            str(run.steps),
            fmt.duration(run.duration_s),
            fmt.energy_wh(run.energy_j),
            fmt.co2(run.co2_g),
            _safe(run.framework) or "-",
            _job_cell(run),
        ]
        for run in runs
    ]
    header = [
        "id", "name", "status", "started", "steps", "duration", "energy", "CO2e", "framework",
        "job/rank",
    ]  # fmt: skip
    if not any(run.job_id or run.rank is not None for run in runs):
        header, rows = header[:-1], [row[:-1] for row in rows]
    return text_table(header, rows)


def _job_cell(run: RunInfo) -> str:
    rank = "" if run.rank is None else f"/{run.rank}"
    return (_safe(run.job_id) if run.job_id else "-") + rank


def job_summary(totals: JobTotals) -> list[str]:
    """A job's summary: totals with each device counted once, per node and per rank."""
    lines = [
        f"job {_safe(totals.job_id)}: {len(totals.ranks)} rank(s) on "
        f"{len(totals.node_energy_j)} node(s), {totals.steps} steps in "
        f"{fmt.duration(totals.duration_s)}",
        f"energy: {fmt.energy_wh(totals.energy_j)} (each GPU and node-wide sensor counted once"
        + (
            f"; summing the ranks would count {fmt.energy_wh(totals.counted_twice_j)} twice)"
            if totals.counted_twice_j > 0
            else ")"
        ),
    ]
    if totals.samples:
        lines.append(_efficiency(totals.energy_j, totals.samples))
    if totals.co2_g is not None:
        lines.append(f"carbon: {fmt.co2(totals.co2_g)} CO2e")
    lines += text_table(
        ["node", "energy"],
        [[_safe(host), fmt.energy_wh(e)] for host, e in totals.node_energy_j.items()],
    )
    lines += text_table(
        ["rank", "run", "host", "status", "steps", "samples", "energy", "duration"],
        [
            [
                "-" if r.rank is None else str(r.rank),
                str(r.run_id),
                _safe(r.host),
                _safe(r.status),
                str(r.steps),
                "-" if r.samples is None else str(r.samples),
                fmt.energy_wh(r.energy_j),
                fmt.duration(r.duration_s),
            ]
            for r in totals.ranks
        ],
    )
    return lines


def _efficiency(energy_j: float, samples: int) -> str:
    """J/sample (run energy, :mod:`greenprof.metrics`) and samples/kWh; no energy
    measured is said so, never divided by."""
    if energy_j <= 0:
        return "efficiency: no energy measured for these samples"
    return (
        f"efficiency: {fmt.energy(metrics.j_per_sample(energy_j, samples))}/sample, "
        f"{fmt.number(metrics.samples_per_kwh(samples, energy_j))} samples/kWh"
    )


def run_summary(
    run: RunInfo,
    device_energy_j: dict[str, float],
    flag_counts: dict[str, int] | None = None,
    pending_steps: int = 0,
    bounds: StepWindowBounds | None = None,
) -> list[str]:
    """A run's summary: totals, per-device energy and method, efficiency, carbon, and
    what may be wrong with the figures (flagged, lost or unattributed steps). ``bounds``:
    the steps' error bound, stated beside their energy (:mod:`greenprof.step_windows`)."""
    lines = [
        f"run {run.run_id} '{_safe(run.name)}': {_safe(run.status)}, {run.steps} steps in "
        f"{fmt.duration(run.duration_s)} on {_safe(run.host)}"
        + (f" (rank {run.rank})" if run.rank is not None else ""),
    ]
    if run.tags:
        tags = ", ".join(f"{_safe(k)}={_safe(tag_text(v))}" for k, v in sorted(run.tags.items()))
        lines.append("tags: " + tags)
    rows = []
    for device in run.devices:
        energy = device_energy_j.get(device.device, 0.0)
        per_step = fmt.number(energy / run.steps) if run.steps else fmt.MISSING
        rows.append(
            [
                _safe(device.device),
                _safe(device.name),
                _safe(device.method),
                fmt.energy_wh(energy),
                per_step,
            ]
        )
    rows.append(
        [
            "total",
            "",
            "",
            fmt.energy_wh(run.energy_j),
            fmt.number(run.energy_j / run.steps) if run.steps else fmt.MISSING,
        ]
    )
    lines += text_table(["device", "name", "method", "energy", "J/step"], rows)
    if run.samples:
        lines.append(_efficiency(run.energy_j, run.samples))
    if run.setup_s > 0:
        lines.append(
            f"setup before the first step: {fmt.duration(run.setup_s)}, "
            f"{fmt.energy_wh(run.setup_energy_j)}"
        )
    if run.job_id:
        lines.append(
            f"job: {_safe(run.job_id)}, rank {run.rank if run.rank is not None else '-'}"
            + (f" of {run.world_size}" if run.world_size else "")
            + f" (`greenprof show {_safe(run.job_id)}` totals the job)"
        )
    inside = run.step_energy_j / run.energy_j * 100 if run.energy_j else 0.0
    lines.append(
        f"energy inside steps: {fmt.energy_wh(run.step_energy_j)}"
        + ("" if bounds is None else plus_minus(bounds.run_j))
        + f" ({inside:.0f} % of the run)"
    )
    if run.carbon is not None:
        lines.append(
            f"carbon: {fmt.co2(run.co2_g)} CO2e at {run.carbon.intensity_g_per_kwh:.0f} g/kWh "
            f"× PUE {run.carbon.pue:g} ({_safe(run.carbon.source)})"
        )
    for device in run.devices:
        if device.note:
            lines.append(f"note {_safe(device.device)}: {_safe(device.note)}")
    caveats = [f"{n} step(s) {name.replace('_', ' ')}" for name, n in (flag_counts or {}).items()]
    if run.lost_steps:
        caveats.append(f"{run.lost_steps} step(s) lost (not stored)")
    if pending_steps:
        caveats.append(
            f"{pending_steps} step(s) not attributed yet (`greenprof repair` if the run died)"
        )
    if caveats:
        lines.append("data quality: " + "; ".join(caveats))
    if run.error:
        # the column holds what went wrong, and caveats a completed run carries
        label = "notes" if run.status == "completed" else "error"
        lines.append(f"{label}: {_safe(run.error)}")
    return lines


def plus_minus(bound_j: float | None) -> str:
    """`` ± 12.3 mWh`` after an energy: its error bound (>= 95 %), `` ± n/a`` when a step's
    is not known (a partial bound would understate the error)."""
    return " ± n/a" if bound_j is None else f" ± {fmt.energy_wh(bound_j)}"


def epoch_lines(epochs: Sequence[EpochRecord], bounds: StepWindowBounds | None = None) -> list[str]:
    """One line per epoch: steps, energy (± its window bound when ``bounds``), duration."""
    lines = ["epochs:"]
    for epoch in epochs:
        bound = "" if bounds is None else plus_minus(bounds.epoch_j.get(epoch.epoch))
        lines.append(
            f"  {epoch.epoch}: {epoch.steps} steps, {fmt.energy_wh(epoch.energy_j)}{bound}, "
            f"{fmt.duration(epoch.duration_s)}"
        )
    return lines


def end_of_run_lines(
    run: RunInfo, device_energy_j: Mapping[str, float], *, where: str, db_option: str = ""
) -> list[str]:
    """The summary a run prints when it ends (:mod:`greenprof.summary_printer`): a head
    line with the status (and the error of a run that did not complete), one line per
    device (energy, mean power over the run, how it was measured), the totals, and where
    the run is stored. The figures are those of ``greenprof show`` (:func:`run_summary`),
    formatted by the same functions. ``where``: the store as it may be shown (a server
    URL without its password); ``db_option``: what ``greenprof show`` needs to find that
    store (``--db PATH``; empty for the default store)."""
    head = f"greenprof: run {run.run_id} '{_safe(run.name)}' {_safe(run.status)}"
    if run.error and run.status != "completed":
        head += f" ({_safe(_what_went_wrong(run.error))})"
    rows = []
    for device in run.devices:
        energy_j = device_energy_j.get(device.device, 0.0)
        power_w = energy_j / run.duration_s if run.duration_s > 0 else None
        rows.append(
            [
                _safe(device.device),
                _safe(device.name),
                fmt.energy_wh(energy_j),
                f"{fmt.power(power_w)} mean",
                _safe(device.method),
            ]
        )
    lines = [head + ":"]
    lines += ["  " + line for line in _aligned(rows)] or ["  no device was measured"]
    lines.append("  " + _totals_line(run))
    if run.carbon is not None:
        lines.append(f"  carbon: {fmt.co2(run.co2_g)} CO2e ({_carbon_source(run)})")
    show = " ".join(filter(None, ["greenprof show", _safe(db_option), str(run.run_id)]))
    lines.append(f"  stored in {_safe(where)}: `{show}` for the details")
    return lines


def _what_went_wrong(error: str, limit: int = 120) -> str:
    """The first clause of a run's error column (it also collects the run's notes, ``; ``
    apart: ``greenprof show`` lists them all), shortened to ``limit`` characters."""
    first = error.split("; ", 1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns two spaces apart, no header (the end-of-run device lines)."""
    if not rows:
        return []
    widths = [max(len(c) for c in column) for column in zip(*rows, strict=True)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _totals_line(run: RunInfo) -> str:
    samples = "" if not run.samples else f", {run.samples} samples"
    per_sample = metrics.run_j_per_sample(run) if run.energy_j > 0 else None
    efficiency = "" if per_sample is None else f", {fmt.energy(per_sample)}/sample"
    return (
        f"total: {fmt.energy_wh(run.energy_j)} in {fmt.duration(run.duration_s)}, "
        f"{run.steps} steps{samples}{efficiency}"
    )


def _carbon_source(run: RunInfo) -> str:
    """Where the run's grid intensity came from: the zone, the intensity, the PUE, the
    dataset (or "stated" when the user gave the intensity)."""
    carbon = run.carbon
    assert carbon is not None
    zone = carbon.region or carbon.country
    parts = [_safe(zone)] if zone else []
    parts.append(f"{carbon.intensity_g_per_kwh:.0f} g/kWh × PUE {carbon.pue:g}")
    if carbon.source:
        parts.append(_safe(carbon.source))
    return ", ".join(parts)

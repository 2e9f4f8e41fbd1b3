"""Runs shown in Jupyter: the HTML that ``RunInfo._repr_html_`` returns.

A run evaluated in a notebook cell renders as a small card: name, status, when, how
long, steps, energy, carbon, J/sample, each device with how its energy was obtained, tags
and any error or caveat. Figures follow :mod:`greenprof.formatting` (the same text as
``greenprof show``). Every stored string is HTML-escaped: run names, tags and errors come
from users and scripts.

Pure: a function of the record (and the zone it is shown in); no store access, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from html import escape

from greenprof import formatting as fmt
from greenprof.metrics import run_j_per_sample
from greenprof.records import RunInfo

STATUS_COLOURS: Mapping[str, str] = {
    "running": "#1565c0",
    "completed": "#2e7d32",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "incomplete": "#ef6c00",
}
"""The colour of each status badge (readable on light and dark notebook themes)."""

_CELL = "padding:2px 10px 2px 0;text-align:left;vertical-align:top"


def run_html(run: RunInfo, *, zone: dt.tzinfo | None = None) -> str:
    """A run as an HTML card for notebooks (what ``RunInfo._repr_html_`` returns).

    ``zone`` is where ``started`` is shown (default: the machine's; the offset is
    always written).

    Example::

        from IPython.display import HTML
        HTML(run_html(store.run("resnet18")))
    """
    colour = STATUS_COLOURS.get(run.status, "#616161")
    title = (
        f"<strong>{escape(run.name)}</strong> "
        f"<span style='color:#757575'>run {run.run_id}</span> "
        f"<span style='background:{colour};color:#fff;border-radius:3px;"
        f"padding:0 5px'>{escape(run.status)}</span>"
    )
    rows = [
        ("started", fmt.timestamp(run.started_at, zone=zone, seconds=True)),
        ("duration", fmt.duration(run.duration_s)),
        ("steps", _steps(run)),
        ("energy", fmt.energy_wh(run.energy_j) + _inside_steps(run)),
        ("carbon", _carbon(run)),
        ("J/sample", _j_per_sample(run)),
        ("host", _host(run)),
    ]
    if run.job_id:
        rank = "–" if run.rank is None else str(run.rank)
        size = f" of {run.world_size}" if run.world_size else ""
        rows.append(("job", f"{run.job_id}, rank {rank}{size}"))
    if run.framework:
        rows.append(("framework", run.framework))
    if run.tags:
        rows.append(("tags", fmt.tags(run.tags)))
    body = "".join(
        f"<tr><th style='{_CELL}'>{escape(label)}</th><td style='{_CELL}'>{escape(value)}</td></tr>"
        for label, value in rows
    )
    parts = [
        "<div class='greenprof-run'>",
        f"<div>{title}</div>",
        f"<table>{body}</table>",
        _devices_table(run),
    ]
    if run.error:
        label = "notes" if run.status == "completed" else "error"
        parts.append(f"<div><em>{label}:</em> {escape(run.error)}</div>")
    parts.append("</div>")
    return "".join(part for part in parts if part)


def _steps(run: RunInfo) -> str:
    text = fmt.number(run.steps)
    if run.expected_steps:
        text += f" of {fmt.number(run.expected_steps)} planned"
    if run.samples:
        text += f", {fmt.number(run.samples)} samples"
    if run.lost_steps:
        text += f" ({fmt.number(run.lost_steps)} lost, not stored)"
    return text


def _inside_steps(run: RunInfo) -> str:
    if run.energy_j <= 0:
        return ""
    share = run.step_energy_j / run.energy_j * 100
    return f" ({fmt.energy_wh(run.step_energy_j)} inside steps, {share:.0f} %)"


def _carbon(run: RunInfo) -> str:
    carbon = run.carbon
    if carbon is None:
        return fmt.MISSING
    where = carbon.region or carbon.country or "given intensity"
    return (
        f"{fmt.co2(run.co2_g)} CO2e ({where}, {carbon.intensity_g_per_kwh:.0f} g/kWh, "
        f"PUE {carbon.pue:g})"
    )


def _j_per_sample(run: RunInfo) -> str:
    value = run_j_per_sample(run)
    return fmt.MISSING if value is None else f"{fmt.energy(value)}/sample (run energy)"


def _host(run: RunInfo) -> str:
    return f"{run.host} (pid {run.pid})" if run.host else f"pid {run.pid}"


def _devices_table(run: RunInfo) -> str:
    if not run.devices:
        return ""
    header = "".join(
        f"<th style='{_CELL}'>{name}</th>" for name in ("device", "name", "method", "note")
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td style='{_CELL}'>{escape(value)}</td>"
            for value in (device.device, device.name, device.method, device.note)
        )
        + "</tr>"
        for device in run.devices
    )
    return f"<table><tr>{header}</tr>{rows}</table>"

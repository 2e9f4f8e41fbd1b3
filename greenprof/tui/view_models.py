"""Pure view-models of the terminal UI: store records in, display rows and series out.

Nothing here imports Textual or touches the database, so every figure the screens show
is tested on plain records. The live screen's model is in :mod:`greenprof.tui.live_model`
(its names are re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.metrics import Forecast as Forecast  # noqa: PLC0414 (re-export)
from greenprof.records import DeviceInfo, RunInfo
from greenprof.tui.live_model import LIVE_DEVICE_COLUMNS as LIVE_DEVICE_COLUMNS  # noqa: PLC0414
from greenprof.tui.live_model import DeviceLive as DeviceLive  # noqa: PLC0414
from greenprof.tui.live_model import LiveModel as LiveModel  # noqa: PLC0414
from greenprof.tui.live_model import LiveView as LiveView  # noqa: PLC0414
from greenprof.tui.live_model import idle_energy_j as idle_energy_j  # noqa: PLC0414

# History ---------------------------------------------------------------------------------

HISTORY_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "status",
    "steps",
    "duration",
    "energy",
    "CO2e",
    "J/sample",
    "samples/kWh",
    "tags",
    "framework",
    "devices",
    "started",
)
"""Efficiency figures first, so they fit an 80-column terminal; the rest scrolls."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One run as a row of the history table (display strings plus sortable values)."""

    run_id: int
    cells: tuple[str, ...]
    sort_values: tuple[float | str, ...]
    search_text: str

    def matches(self, query: str) -> bool:
        """Whether every word of ``query`` occurs in the row (case-insensitive)."""
        return all(word in self.search_text for word in query.lower().split())


j_per_sample = metrics.run_j_per_sample
"""Whole-run energy per training sample (:mod:`greenprof.metrics`)."""
samples_per_kwh = metrics.run_samples_per_kwh
"""Training samples per kWh of run energy (:mod:`greenprof.metrics`)."""
forecast = metrics.forecast
"""The live forecast (:func:`greenprof.metrics.forecast`)."""


def devices_label(devices: Sequence[DeviceInfo]) -> str:
    """``gpu:0,gpu:1,cpu:0`` (``–`` when none are known)."""
    return ",".join(device.device for device in devices) or "–"


def history_row(run: RunInfo, *, zone: tzinfo | None = None) -> HistoryRow:
    """The history table's row for ``run`` (start time in ``zone``, default local)."""
    jps = j_per_sample(run)
    spk = samples_per_kwh(run)
    co2_g = run.co2_g
    tag_text = fmt.tags(run.tags)
    device_text = devices_label(run.devices)
    cells = (
        str(run.run_id),
        run.name,
        run.status,
        fmt.number(run.steps),
        fmt.duration(run.duration_s),
        fmt.energy_wh(run.energy_j),
        fmt.co2(co2_g),
        fmt.number(jps),
        fmt.number(spk),
        tag_text,
        run.framework or "–",
        device_text,
        fmt.timestamp(run.started_at, zone=zone),
    )
    missing = float("-inf")
    sort_values: tuple[float | str, ...] = (
        run.run_id,
        run.name.lower(),
        run.status,
        run.steps,
        run.duration_s,
        run.energy_j,
        missing if co2_g is None else co2_g,
        missing if jps is None else jps,
        missing if spk is None else spk,
        tag_text,
        run.framework,
        device_text,
        run.started_at,
    )
    search = " ".join((run.name, run.status, tag_text, run.framework, device_text)).lower()
    return HistoryRow(run.run_id, cells, sort_values, search)


def history_rows(
    runs: Iterable[RunInfo],
    *,
    query: str = "",
    sort_column: int = 0,
    reverse: bool = True,
    zone: tzinfo | None = None,
) -> list[HistoryRow]:
    """Rows for ``runs`` that match ``query``, sorted by column index ``sort_column``."""
    rows = [row for row in (history_row(run, zone=zone) for run in runs) if row.matches(query)]
    rows.sort(key=lambda row: (row.sort_values[sort_column], row.run_id), reverse=reverse)
    return rows

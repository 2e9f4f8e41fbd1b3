"""CSV export of runs, devices, steps, per-device step energies, epochs and sensor samples.

``greenprof export csv --table TABLE [RUN...] [--tag K=V] [--since ISO] [--until ISO] [-o FILE]``

Column names are stable (a rename is a breaking change) and carry their unit: ``_j``
joules, ``_kwh`` kilowatt-hours, ``_g`` grams CO2e, ``_s`` seconds, ``_w`` watts,
``_pct`` percent. Times: ``*_s`` columns of steps, epochs and samples are seconds since
the run started; ``started_at`` / ``ended_at`` / ``time`` are absolute ISO-8601 UTC
(``2025-03-01T12:00:00.250Z``, millisecond precision). Empty cell = unknown / not
applicable (e.g. ``co2_g`` of a run without grid-intensity settings).

Steps come in two shapes, both long (a fixed set of columns, whatever devices a run has):
``steps`` has one row per step with the energy of all devices together; ``step-devices``
has one row per step per device. Pivot ``step-devices`` yourself for one column per device.

Large tables (steps, step-devices, samples) are streamed by the store
(:meth:`~greenprof.store.RunStore.export_batches`: one query per run, joined in the
database, not through ``RunStore.iter_steps``: several times faster), in bounded batches
of ``_FETCH`` rows, so memory stays flat however long the run. Each batch
is formatted with one ``%`` per row (no csv.writer, no per-row function call) and its
ISO times built in Python from the integer milliseconds the store gives, with a
per-second cache (SQLite's strftime was half the cost); the output is byte-for-byte
what csv.writer would write.
Floats are written as Python's ``repr`` (shortest round-trip form), as before.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return: a run named ``=HYPERLINK(...)``) get a ``'`` in front
(:func:`greenprof.textsafe.csv_value`); numbers are never changed, so a negative number
stays a number.
``co2_g`` of a step, epoch or device is its energy × PUE × grid intensity of its run,
like the run's own ``co2_g``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO, cast

from greenprof.exporters._common import iso_utc
from greenprof.metrics import j_per_sample, run_j_per_sample
from greenprof.records import RunInfo
from greenprof.textsafe import csv_value
from greenprof.units import J_PER_KWH

if TYPE_CHECKING:
    from greenprof.store.api import ExportTable
    from greenprof.store.reader import RunStore

RUNS_COLUMNS = (
    "run_id",
    "name",
    "status",
    "host",
    "rank",
    "pid",
    "framework",
    "tags",
    "started_at",
    "ended_at",
    "duration_s",
    "setup_s",
    "setup_energy_j",
    "steps",
    "samples",
    "energy_j",
    "energy_kwh",
    "step_energy_j",
    "co2_g",
    "j_per_sample",
    "intensity_g_per_kwh",
    "intensity_source",
    "pue",
    "country",
    "region",
    "devices",
    "error",
    "greenprof_version",
)
"""``tags``: JSON object; ``devices``: ``device=method`` pairs joined by ``;``.
``setup_s`` / ``setup_energy_j``: the phase from the run's start to its first step
(imports, data loading, compilation) and the energy of all devices in it; the energy
outside steps is ``energy_j - step_energy_j`` (setup included). ``j_per_sample`` is run
energy over samples (:func:`greenprof.metrics.run_j_per_sample`)."""

DEVICES_COLUMNS = (
    "run_id",
    "run_name",
    "device",
    "kind",
    "method",
    "name",
    "uuid",
    "power_limit_w",
    "idle_power_w",
    "node_wide",
    "energy_j",
    "energy_kwh",
    "co2_g",
    "note",
)

STEPS_COLUMNS = (
    "run_id",
    "run_name",
    "step",
    "epoch",
    "start_s",
    "end_s",
    "duration_s",
    "started_at",
    "ended_at",
    "samples",
    "energy_j",
    "co2_g",
    "interpolated",
    "loss",
    "energy_uncertainty_j",
)
"""``interpolated``: 1 when the step was shorter than a sensor's update period.
``energy_uncertainty_j``: bound on the step's energy error (95 %), empty where not known; a
window's bound is not the sum of its steps' (shared boundaries cancel: ``greenprof show``)."""

STEP_DEVICES_COLUMNS = (
    "run_id",
    "run_name",
    "step",
    "epoch",
    "device",
    "method",
    "start_s",
    "end_s",
    "started_at",
    "energy_j",
    "co2_g",
    "energy_uncertainty_j",
)
"""``energy_uncertainty_j``: this device's bound on its share (empty where not known)."""

EPOCHS_COLUMNS = (
    "run_id",
    "run_name",
    "epoch",
    "steps",
    "start_s",
    "end_s",
    "duration_s",
    "started_at",
    "ended_at",
    "samples",
    "energy_j",
    "co2_g",
    "j_per_sample",
)

SAMPLES_COLUMNS = (
    "run_id",
    "run_name",
    "device",
    "time_s",
    "time",
    "energy_j",
    "power_w",
    "utilization_pct",
    "memory_used_bytes",
    "temperature_c",
)
"""``energy_j``: the device's cumulative energy since the run started."""

TABLES: dict[str, tuple[str, ...]] = {
    "runs": RUNS_COLUMNS,
    "devices": DEVICES_COLUMNS,
    "steps": STEPS_COLUMNS,
    "step-devices": STEP_DEVICES_COLUMNS,
    "epochs": EPOCHS_COLUMNS,
    "samples": SAMPLES_COLUMNS,
}
"""Every exportable table and its columns, in order."""

_FETCH = 5_000


def co2_factor(run: RunInfo) -> float | None:
    """Grams CO2e per joule of IT energy for ``run`` (None without carbon settings)."""
    return None if run.carbon is None else run.carbon.co2_g(1.0)


def _times(value: float | None, factor: float | None) -> float | None:
    return None if value is None or factor is None else value * factor


def write_csv(store: RunStore, runs: Sequence[RunInfo], table: str, out: TextIO) -> int:
    """Write ``table`` for ``runs`` as CSV (header first) to ``out``; return the data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TABLES[table])
    small: list[tuple[object, ...]] | None = None
    if table == "runs":
        small = [_run_row(run) for run in runs]
    elif table == "devices":
        small = list(_device_rows(store, runs))
    elif table == "epochs":
        small = list(_epoch_rows(store, runs))
    if small is not None:
        writer.writerows([[csv_value(value) for value in row] for row in small])
        return len(small)
    count = 0
    stream = cast("ExportTable", table)
    for run in runs:
        render = _Renderer(table, run)
        batches = store.export_batches(
            stream,
            run.run_id,
            started_at=run.started_at,
            co2_g_per_j=co2_factor(run),
            batch_rows=_FETCH,
        )
        for rows in batches:
            out.write(render(rows))
            count += len(rows)
    return count


def _run_row(run: RunInfo) -> tuple[object, ...]:
    carbon = run.carbon
    return (
        run.run_id,
        run.name,
        run.status,
        run.host,
        run.rank,
        run.pid,
        run.framework,
        json.dumps(run.tags, sort_keys=True),
        iso_utc(run.started_at),
        iso_utc(run.ended_at),
        run.duration_s,
        run.setup_s,
        run.setup_energy_j,
        run.steps,
        run.samples,
        run.energy_j,
        run.energy_kwh,
        run.step_energy_j,
        run.co2_g,
        run_j_per_sample(run),
        carbon.intensity_g_per_kwh if carbon else None,
        carbon.source if carbon else None,
        carbon.pue if carbon else None,
        carbon.country if carbon else None,
        carbon.region if carbon else None,
        ";".join(f"{d.device}={d.method}" for d in run.devices),
        run.error,
        run.greenprof_version,
    )


def _device_rows(store: RunStore, runs: Sequence[RunInfo]) -> Iterable[tuple[object, ...]]:
    for run in runs:
        energies = store.device_energy_j(run.run_id)
        factor = co2_factor(run)
        for dev in run.devices:
            energy = energies.get(dev.device, 0.0)
            yield (
                run.run_id,
                run.name,
                dev.device,
                dev.kind,
                dev.method,
                dev.name,
                dev.uuid,
                dev.power_limit_w,
                dev.idle_power_w,
                int(dev.node_wide),
                energy,
                energy / J_PER_KWH,
                _times(energy, factor),
                dev.note,
            )


def _epoch_rows(store: RunStore, runs: Sequence[RunInfo]) -> Iterable[tuple[object, ...]]:
    for run in runs:
        factor = co2_factor(run)
        for ep in store.epochs(run.run_id):
            yield (
                run.run_id,
                run.name,
                ep.epoch,
                ep.steps,
                ep.start_s,
                ep.end_s,
                ep.duration_s,
                iso_utc(run.started_at + ep.start_s),
                iso_utc(run.started_at + ep.end_s),
                ep.samples,
                ep.energy_j,
                _times(ep.energy_j, factor),
                j_per_sample(ep.energy_j, ep.samples),
            )


_TIME_COLUMNS = {"steps": (5, 6), "step-devices": (6,), "samples": (2,)}
"""Which columns of the store's export rows are Unix milliseconds, per table."""

_CACHED = 4096
"""Most entries kept by a :class:`_IsoSeconds` or :class:`_Cells` cache."""

_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
"""The end of an ISO time after its whole seconds: ``_MILLIS[250] == "250Z"``."""


class _IsoSeconds(dict[int, str]):
    """``2025-03-01T12:00:00.`` for whole Unix seconds, each computed once.

    Rows come nearly in time order, so a small cache serves almost every lookup.
    """

    def __missing__(self, second: int) -> str:
        text = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        if len(self) >= _CACHED:
            self.clear()
        self[second] = text
        return text


class _Cells(dict[object, str]):
    """The CSV cell of each text value (quoted where CSV needs it, '' for None), cached."""

    def __missing__(self, value: object) -> str:
        cell = _cell(value)
        if len(self) < _CACHED:
            self[value] = cell
        return cell


def _cell(value: object) -> str:
    """``value`` as csv.writer writes it in a row of several cells (text neutralised)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow((csv_value(value), ""))
    return buffer.getvalue()[:-2]


def _iso_ms(ms: int | None) -> str:
    """Integer Unix milliseconds as an ISO time; '' for None or out of range (like SQLite)."""
    if ms is None:
        return ""
    try:
        return _IsoSeconds()[ms // 1000] + _MILLIS[ms % 1000]
    except (ValueError, OverflowError, OSError):
        return ""


class _Renderer:
    """Formats batches of the store's export rows of one run as CSV text.

    The fast path is one ``%`` format per row, with the constant ``run_id`` and
    ``run_name`` cells baked into the line, floats written by ``str`` (``repr``, like
    csv.writer), times from a per-second cache and text through :class:`_Cells`. A batch
    the fast path cannot take (a NULL or out-of-range time) goes through csv.writer.
    """

    def __init__(self, table: str, run: RunInfo) -> None:
        self._head = (run.run_id, run.name)
        self._times = _TIME_COLUMNS[table]
        head = (_cell(run.run_id) + "," + _cell(run.name) + ",").replace("%", "%%")
        sec, ms, cells = _IsoSeconds(), _MILLIS, _Cells()
        fast: Callable[[list[Any]], str]
        if table == "steps":
            line = head + "%s,%s,%s,%s,%s,%s%s,%s%s,%s,%s,%s,%s,%s,%s\n"

            def fast(rows: list[Any]) -> str:
                return "".join(
                    [
                        line
                        % (
                            step,
                            ep,
                            s0,
                            s1,
                            d,
                            sec[a // 1000],
                            ms[a % 1000],
                            sec[b // 1000],
                            ms[b % 1000],
                            n,
                            e,
                            c,
                            i,
                            loss,
                            u,
                        )
                        for step, ep, s0, s1, d, a, b, n, e, c, i, loss, u in rows
                    ]
                )

        elif table == "step-devices":
            line = head + "%s,%s,%s,%s,%s,%s,%s%s,%s,%s,%s\n"

            def fast(rows: list[Any]) -> str:
                return "".join(
                    [
                        line
                        % (
                            step,
                            ep,
                            cells[dev],
                            cells[how],
                            s0,
                            s1,
                            sec[a // 1000],
                            ms[a % 1000],
                            e,
                            c,
                            u,
                        )
                        for step, ep, dev, how, s0, s1, a, e, c, u in rows
                    ]
                )

        else:
            line = head + "%s,%s,%s%s,%s,%s,%s,%s,%s\n"

            def fast(rows: list[Any]) -> str:
                return "".join(
                    [
                        line % (cells[dev], t, sec[a // 1000], ms[a % 1000], e, p, u, m, c)
                        for dev, t, a, e, p, u, m, c in rows
                    ]
                )

        self._fast = fast

    def __call__(self, rows: list[Any]) -> str:
        try:
            return self._fast(rows)
        except (TypeError, ValueError, OverflowError, OSError):
            return self._slow(rows)

    def _slow(self, rows: list[Any]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            cells = [*self._head, *row]
            for index in self._times:
                cells[index + 2] = _iso_ms(row[index])
            writer.writerow([csv_value(cell) for cell in cells])
        return buffer.getvalue()

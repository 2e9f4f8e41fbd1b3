"""The report's tables: totals of the runs, devices of a run, epochs of a run.

Every figure goes through :mod:`greenprof.formatting` (three significant digits, the
prefix by magnitude: ``2.23 mWh``, ``40.0 mg``, never ``4e-05`` or eight decimals), and
every table of several rows ends with a total row. Long epoch tables are cut to their
first and last rows, with the command that exports all of them.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from greenprof import formatting as fmt
from greenprof.exporters.render import Table
from greenprof.metrics import j_per_sample, mean_power_w, run_samples_per_kwh, samples_per_kwh
from greenprof.records import EpochRecord, RunInfo

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore

EPOCH_ROWS_EACH_END = 10
"""Epoch rows shown at each end of a long epoch table."""

TOTAL = "Total"
_UTC = dt.timezone.utc


def run_label(run: RunInfo) -> str:
    """``name #id`` (and the rank when the run is one rank of a job)."""
    rank = "" if run.rank is None else f" rank {run.rank}"
    return f"{run.name} #{run.run_id}{rank}"


def count(value: int | None) -> str:
    """A count of steps or samples (``–`` when not counted)."""
    return fmt.number(value)


def co2_of(run: RunInfo, energy_j: float) -> str:
    """The CO2e of ``energy_j`` of ``run``'s IT energy, or ``–`` without carbon settings."""
    return fmt.MISSING if run.carbon is None else fmt.co2(run.carbon.co2_g(energy_j))


def totals_table(runs: Sequence[RunInfo]) -> Table:
    """One row per run, and a total row when there are several runs."""
    headers = (
        "Run", "Status", "Started", "Duration", "Setup", "Steps", "Samples", "Energy",
        "CO2e", "J / sample", "Samples / kWh", "Mean power",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = [
        (
            run_label(run),
            run.status,
            fmt.timestamp(run.started_at, zone=_UTC),
            fmt.duration(run.duration_s),
            fmt.duration(run.setup_s),
            count(run.steps),
            count(run.samples),
            fmt.energy_wh(run.energy_j),
            fmt.MISSING if run.co2_g is None else fmt.co2(run.co2_g),
            fmt.energy(j_per_sample(run.energy_j, run.samples)),
            fmt.number(run_samples_per_kwh(run)),
            fmt.power(mean_power_w(run.energy_j, run.duration_s)),
        )
        for run in runs
    ]
    if len(runs) > 1:
        rows.append(_total_row(runs))
    numeric = (False, False, False, *([True] * 9))
    return Table(headers, rows, numeric)


def _total_row(runs: Sequence[RunInfo]) -> tuple[str, ...]:
    """Sums of the runs; the duration is the wall-clock span from the first start to
    the last end (ranks of a job run at the same time), J/sample is total energy over
    total samples, mean power only for runs that overlap in time."""
    energy_j = sum(run.energy_j for run in runs)
    counted = [run.samples for run in runs if run.samples]
    samples = sum(counted) if len(counted) == len(runs) else None
    start = min(run.started_at for run in runs)
    end = max(run.started_at + run.duration_s for run in runs)
    co2 = [run.co2_g for run in runs]
    # Runs at the same time (the ranks of a job) draw their power together; one after
    # the other, a mean over the span would count the gaps between them.
    overlap = sum(run.duration_s for run in runs) > end - start
    return (
        f"{TOTAL} ({len(runs)} runs)",
        "",
        fmt.timestamp(start, zone=_UTC),
        fmt.duration(end - start),
        fmt.duration(sum(run.setup_s for run in runs)),
        count(sum(run.steps for run in runs)),
        count(samples),
        fmt.energy_wh(energy_j),
        fmt.MISSING if any(g is None for g in co2) else fmt.co2(sum(g or 0.0 for g in co2)),
        fmt.energy(j_per_sample(energy_j, samples)),
        fmt.number(samples_per_kwh(samples, energy_j)),
        fmt.power(mean_power_w(energy_j, end - start)) if overlap else fmt.MISSING,
    )


def devices_table(store: RunStore, run: RunInfo) -> Table:
    """Each device of ``run``: method, energy, share, mean power; then the total."""
    energies = store.device_energy_j(run.run_id)
    total = sum(energies.values())
    rows: list[tuple[str, ...]] = []
    for dev in run.devices:
        joules = energies.get(dev.device, 0.0)
        rows.append(
            (
                dev.device,
                dev.kind,
                dev.name or fmt.MISSING,
                dev.method,
                fmt.energy_wh(joules),
                fmt.percent(joules / total * 100 if total else None),
                fmt.power(mean_power_w(joules, run.duration_s)),
                fmt.power(dev.idle_power_w),
                dev.note or "",
            )
        )
    if len(run.devices) > 1:
        share = fmt.percent(100.0 if total else None)
        mean = fmt.power(mean_power_w(total, run.duration_s))
        rows.append((TOTAL, "", "", "", fmt.energy_wh(total), share, mean, "", ""))
    headers = (
        "Device", "Kind", "Model", "Method", "Energy", "Share", "Mean power", "Idle power",
        "Note",
    )  # fmt: skip
    return Table(headers, rows, (False, False, False, False, True, True, True, True, False))


def _epoch_row(run: RunInfo, ep: EpochRecord) -> tuple[str, ...]:
    return (
        str(ep.epoch),
        count(ep.steps),
        fmt.duration(ep.duration_s),
        count(ep.samples),
        fmt.energy_wh(ep.energy_j),
        fmt.energy(j_per_sample(ep.energy_j, ep.samples)),
        co2_of(run, ep.energy_j),
    )


def epochs_table(run: RunInfo, epochs: Sequence[EpochRecord]) -> tuple[Table, int]:
    """The epochs of ``run`` (the first and last :data:`EPOCH_ROWS_EACH_END` of a long
    run, a ``… N more`` row between them) and a total row over every epoch; with the
    number of epochs left out."""
    each = EPOCH_ROWS_EACH_END
    hidden = max(0, len(epochs) - 2 * each)
    rows = [_epoch_row(run, ep) for ep in (epochs[:each] if hidden else epochs)]
    if hidden:
        rows.append((f"… {hidden} more", *([""] * 6)))
        rows += [_epoch_row(run, ep) for ep in epochs[-each:]]
    energy_j = sum(ep.energy_j for ep in epochs)
    samples = [ep.samples for ep in epochs]
    known = None if any(n is None for n in samples) else sum(n or 0 for n in samples)
    rows.append(
        (
            f"{TOTAL} ({len(epochs)})",
            count(sum(ep.steps for ep in epochs)),
            fmt.duration(sum(ep.duration_s for ep in epochs)),
            count(known),
            fmt.energy_wh(energy_j),
            fmt.energy(j_per_sample(energy_j, known)),
            co2_of(run, energy_j),
        )
    )
    headers = ("Epoch", "Steps", "Duration", "Samples", "Energy", "J / sample", "CO2e")
    return Table(headers, rows, (True,) * 7), hidden


def epochs_command(store: RunStore, run: RunInfo) -> str:
    """The command that exports every epoch of ``run`` as CSV (``--db`` as the report
    names its database: the file name, or a server store's display)."""
    location = store.location
    db = location.path.name if location.kind == "sqlite" else location.display
    output = f"epochs-{run.run_id}.csv"
    words = ["greenprof", "export", "csv", "--table", "epochs", "--db", db, str(run.run_id)]
    return shlex.join([*words, "-o", output])

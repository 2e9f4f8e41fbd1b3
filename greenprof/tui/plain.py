"""The terminal UI's views as plain text and JSON, for pipes, files and scripts.

``greenprof compare`` and ``history`` draw full-screen views on a terminal; on a pipe
(or with ``--json``) they print what those views show and exit. The figures come from
the same pure code as the screens (:mod:`greenprof.tui.comparison` for the comparison
and its verdict, :mod:`greenprof.tui.view_models` for history rows), so text, JSON and
screen cannot disagree. No Textual here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING

from greenprof import jsonout
from greenprof.records import RunInfo
from greenprof.summary import text_table
from greenprof.textsafe import terminal_text
from greenprof.tui.comparison import Comparison, RunSummary, VerdictMetric, pct_diff, summarize
from greenprof.tui.view_models import HISTORY_COLUMNS, history_rows

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Runs are lettered as on the compare screen: A is the reference of every delta."""
VERDICT_FIELDS: dict[VerdictMetric, str] = {
    "sample": "energy_per_sample_j",
    "step": "step_energy_j_median",
    "loss": "energy_to_loss_j",
}
"""The field of each compared run that the verdict ranked by, per verdict metric."""


def load_summaries(store: RunStore, refs: Sequence[str]) -> list[RunSummary]:
    """Summaries of the runs ``refs`` (ids or names), in the given order, read as the
    compare screen reads them (few rows even for long runs)."""
    from greenprof.tui.queries import step_digest

    summaries = []
    for ref in refs:
        run = store.run(ref)
        summaries.append(
            summarize(run, step_digest(store, run.run_id), store.device_energy_j(run.run_id))
        )
    return summaries


def _letter(index: int) -> str:
    return LETTERS[index % len(LETTERS)]


def comparison_lines(comparison: Comparison) -> list[str]:
    """The compare screen as text: the runs, the table with deltas from A, the verdict."""
    lines = [f"{_letter(i)}  {terminal_text(label)}" for i, label in enumerate(comparison.labels)]
    header = ["metric"]
    for index in range(len(comparison.labels)):
        header.append(_letter(index))
        if index:
            header.append(f"Δ{_letter(index)} vs A")
    rows = []
    for row in comparison.rows:
        cells = [terminal_text(row.metric)]
        for index, value in enumerate(row.values):
            cells.append(value)
            if index:
                cells.append(row.deltas[index])
        rows.append(cells)
    lines += ["", *text_table(header, rows), ""]
    if comparison.caveat_details:
        lines += [
            f"{'caveat' if c.partial else 'note'}: {terminal_text(c.text)}"
            for c in comparison.caveat_details
        ]
    else:
        lines += [f"caveat: {terminal_text(line)}" for line in comparison.caveats]
    lines += [f"verdict: {terminal_text(line)}" for line in comparison.verdicts]
    if comparison.note:
        lines.append(f"note: {comparison.note}")
    return lines


def comparison_document(
    summaries: Sequence[RunSummary], comparison: Comparison, *, database: str
) -> jsonout.Document:
    """``greenprof compare --json``: each run's figures, deltas from the first, the
    verdict, the figure it ranked by (``verdict_metric``: a field of each run) and its
    winner, and the caveats."""
    reference = summaries[0] if summaries else None
    best = comparison.best_index
    return jsonout.envelope(
        "comparison",
        database=database,
        loss_target=jsonout.number(comparison.loss_target),
        verdicts=list(comparison.verdicts),
        verdict_metric=(
            None if comparison.ranked_by is None else VERDICT_FIELDS[comparison.ranked_by]
        ),
        most_efficient_run_id=(
            None if best is None or best >= len(summaries) else summaries[best].run.run_id
        ),
        caveats=[
            {
                "kind": c.kind,
                "runs": list(c.letters),
                "run_ids": list(c.run_ids),
                "text": c.text,
            }
            for c in comparison.caveat_details
        ],
        note=comparison.note,
        runs=[
            _summary_json(_letter(index), summary, reference, comparison.loss_target)
            for index, summary in enumerate(summaries)
        ],
    )


def _summary_json(
    letter: str, summary: RunSummary, reference: RunSummary | None, loss_target: float | None
) -> jsonout.Document:
    run = summary.run
    figures = {
        "energy_j": summary.energy_j,
        "co2_g": summary.co2_g,
        "duration_s": run.duration_s,
        "energy_per_sample_j": summary.j_per_sample,
        "samples_per_kwh": summary.samples_per_kwh,
    }
    baseline = (
        None
        if reference is None or reference is summary
        else {
            "energy_j": reference.energy_j,
            "co2_g": reference.co2_g,
            "duration_s": reference.run.duration_s,
            "energy_per_sample_j": reference.j_per_sample,
            "samples_per_kwh": reference.samples_per_kwh,
        }
    )
    return {
        "letter": letter,
        "label": summary.label,
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "steps": run.steps,
        "samples": summary.samples,
        **{key: jsonout.number(value) for key, value in figures.items()},
        "step_energy_j_median": jsonout.number(summary.step_j_median),
        "step_energy_j_p90": jsonout.number(summary.step_j_p90),
        "sample_energy_j_median": jsonout.number(summary.sample_j_median),
        "sample_energy_j_p90": jsonout.number(summary.sample_j_p90),
        "best_loss": jsonout.number(summary.best_loss),
        "energy_to_loss_j": (
            None if loss_target is None else jsonout.number(summary.energy_to_loss_j(loss_target))
        ),
        "device_shares": {
            device: jsonout.number(share) for device, share in sorted(summary.device_shares.items())
        },
        "sampled_every": summary.sampled_every,
        "vs_first_pct": (
            None
            if baseline is None
            else {
                key: jsonout.number(pct_diff(value, baseline[key]))
                for key, value in figures.items()
            }
        ),
    }


def history_lines(runs: Sequence[RunInfo], *, zone: tzinfo | None = None) -> list[str]:
    """The history screen's table as text, newest run first (start in ``zone``, default
    local)."""
    rows = history_rows(runs, sort_column=HISTORY_COLUMNS.index("id"), reverse=True, zone=zone)
    return text_table(
        list(HISTORY_COLUMNS), [[terminal_text(cell) for cell in row.cells] for row in rows]
    )

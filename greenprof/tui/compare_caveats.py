"""What a comparison of runs must not be read without: its caveats, each with a kind.

Pure. Two families:

- *partial runs* (``failed``, ``interrupted``, ``running``, ``lost_steps``,
  ``incomplete``, ``no_samples``): a run whose figures cover only part of what it set out
  to do, or lack a figure the verdict may need; the compare screen shows these.
- *unlike runs* (``batch_size``, ``devices``): runs that differ in what was trained on or
  measured, so per-step figures or energies are not like for like. Comparing batch sizes
  is what ``compare`` is for, so these are notes (text and JSON), not warnings.

``greenprof compare --json`` lists every caveat with its kind and runs
(:func:`greenprof.tui.plain.comparison_document`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from greenprof import formatting as fmt
from greenprof.records import RunInfo
from greenprof.tui.run_summary import INCOMPLETE_STATUSES, LETTERS, RunSummary

CaveatKind = Literal[
    "failed",
    "interrupted",
    "running",
    "lost_steps",
    "incomplete",
    "no_samples",
    "batch_size",
    "devices",
]
PARTIAL_KINDS: frozenset[CaveatKind] = frozenset(
    {"failed", "interrupted", "running", "lost_steps", "incomplete", "no_samples"}
)
"""The caveats of runs whose figures are partial (the others compare unlike runs)."""
_STATUS_KINDS: dict[str, CaveatKind] = {
    "failed": "failed",
    "interrupted": "interrupted",
    "running": "running",
    "incomplete": "lost_steps",
}


@dataclass(frozen=True, slots=True)
class Caveat:
    """One caveat: its kind, the runs it is about (their letters, A first), and the
    sentence the compare screen, its text form and its JSON say."""

    kind: CaveatKind
    letters: tuple[str, ...]
    run_ids: tuple[int, ...]
    text: str

    @property
    def partial(self) -> bool:
        """About a run whose figures are partial (shown as a warning on the screen)."""
        return self.kind in PARTIAL_KINDS


def comparison_caveats(summaries: Sequence[RunSummary]) -> tuple[Caveat, ...]:
    """Every caveat of comparing ``summaries`` (lettered A, B, ... in order): each run's
    partial figures first, then how the runs differ (batch size, devices)."""
    caveats: list[Caveat] = []
    for index, summary in enumerate(summaries):
        caveats += _partial(index, summary)
    caveats += _unlike_batches(summaries)
    caveats += _unlike_devices(summaries)
    return tuple(caveats)


def _letter(index: int) -> str:
    return LETTERS[index % len(LETTERS)]


def _partial(index: int, summary: RunSummary) -> list[Caveat]:
    run = summary.run
    name = f"{_letter(index)} ({summary.label})"

    def caveat(kind: CaveatKind, text: str) -> Caveat:
        return Caveat(kind, (_letter(index),), (run.run_id,), f"{name} {text}")

    out = []
    kind = _STATUS_KINDS.get(run.status)
    if kind == "lost_steps" or run.lost_steps:
        out.append(
            caveat(
                "lost_steps",
                f"lost {fmt.number(run.lost_steps)} steps it could not store: "
                "its per-step figures miss them",
            )
        )
    elif kind is not None:
        what = INCOMPLETE_STATUSES[run.status]
        out.append(caveat(kind, f"{what}: its figures cover only the part that ran"))
    if run.expected_steps and run.steps < run.expected_steps and kind is None:
        out.append(
            caveat(
                "incomplete",
                f"stopped at step {fmt.number(run.steps)} of "
                f"{fmt.number(run.expected_steps)} planned",
            )
        )
    if summary.samples is None:
        out.append(caveat("no_samples", "counted no samples: no J/sample for it"))
    return out


def batch_size(run: RunInfo, samples: int | None) -> str | None:
    """The run's batch size: its ``batch_size`` tag, else its samples per step when that
    is a whole number (a fixed batch), else None (not known)."""
    tagged = run.tags.get("batch_size")
    if tagged:
        return str(tagged)
    if samples and run.steps and samples % run.steps == 0:
        return str(samples // run.steps)
    return None


def _unlike_batches(summaries: Sequence[RunSummary]) -> list[Caveat]:
    sizes = [batch_size(s.run, s.samples) for s in summaries]
    known = {size for size in sizes if size is not None}
    if len(known) < 2:
        return []
    each = ", ".join(f"{_letter(i)} {size}" for i, size in enumerate(sizes) if size is not None)
    return [
        Caveat(
            "batch_size",
            tuple(_letter(i) for i, size in enumerate(sizes) if size is not None),
            tuple(
                s.run.run_id for s, size in zip(summaries, sizes, strict=True) if size is not None
            ),
            f"different batch sizes ({each}): per-step figures differ by design; "
            "compare J/sample, and the curves by samples",
        )
    ]


def _devices(run: RunInfo) -> str:
    """What measured the run: each device with its name and method."""
    parts = [
        f"{d.device} {d.name} ({d.method})" if d.name else f"{d.device} ({d.method})"
        for d in sorted(run.devices, key=lambda d: d.device)
    ]
    return ", ".join(parts) or "no device"


def _unlike_devices(summaries: Sequence[RunSummary]) -> list[Caveat]:
    measured = [_devices(s.run) for s in summaries]
    if len(set(measured)) < 2:
        return []
    each = "; ".join(f"{_letter(i)}: {what}" for i, what in enumerate(measured))
    return [
        Caveat(
            "devices",
            tuple(_letter(i) for i in range(len(summaries))),
            tuple(s.run.run_id for s in summaries),
            f"measured on different devices or by different methods ({each}): "
            "their energies are not like for like",
        )
    ]

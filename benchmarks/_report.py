"""Shared by the benchmark scripts: report rows with targets, and percentiles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the report: a figure, its target, and whether it meets it."""

    what: str
    figure: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


def print_table(title: str, rows: list[Row]) -> None:
    """Print rows aligned, each with its target and PASS/MISS."""
    width = max(len(r.what) for r in rows)
    fig = max(len(r.figure) for r in rows)
    tgt = max(len(r.target) for r in rows)
    print(f"\n## {title}\n")
    for r in rows:
        print(f"{r.what:<{width}}  {r.figure:>{fig}}  {r.target:<{tgt}}  {r.verdict}".rstrip())


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]

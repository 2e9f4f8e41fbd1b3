"""The bench summary for people (a text table) and for scripts (a JSON document).

Pure functions of :class:`~greenprof.bench.results.VariantSummary`; the command does
the reading. Every table says how energy was measured (the sensor methods): a CPU-only
machine without readable RAPL measures a CPU-load × TDP *model*, and a reader must see
that before trusting a ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from greenprof.bench import stats
from greenprof.bench.results import VariantSummary, best_settings, setting_label, verdicts
from greenprof.formatting import MISSING, significant
from greenprof.jsonout import envelope
from greenprof.summary import text_table
from greenprof.units import MG_PER_G

METHOD_NOTES = {
    "counter": "hardware energy counter",
    "power_integration": "integrated power readings",
    "model": "a CPU-load × TDP model, not a measurement",
    "simulated": "a simulated sensor (tests), not a measurement",
}

MJ_PER_J = 1000.0
"""Millijoules in a joule (J/sample figures of small models are printed in mJ)."""


def plus_minus(value: stats.Interval, scale: float = 1.0) -> str:
    """``12.3 ± 0.4`` (``± ?`` with one repeat)."""
    if math.isnan(value.mean):
        return MISSING
    spread = "?" if math.isnan(value.half_width) else significant(value.half_width * scale, 2)
    return f"{significant(value.mean * scale)} ± {spread}"


def methods_line(summaries: Sequence[VariantSummary]) -> str:
    methods = sorted({m for s in summaries for m in s.methods})
    described = ", ".join(f"{m} ({METHOD_NOTES.get(m, m)})" for m in methods) or "unknown"
    return f"energy measured by: {described}"


def table_row(s: VariantSummary) -> list[str]:
    target = MISSING
    if s.to_target_s is not None and s.to_target_j is not None:
        target = f"{significant(s.to_target_s.mean)} s / {significant(s.to_target_j.mean)} J"
    co2 = MISSING if s.co2_g_per_sample is None else significant(s.co2_g_per_sample * MG_PER_G)
    return [
        s.variant,
        plus_minus(s.j_per_sample, MJ_PER_J),
        plus_minus(s.samples_per_s),
        significant(s.warmup_energy_j.mean),
        f"{target} ({s.reached}/{s.j_per_sample.n})",
        co2,
        MISSING if s.final_loss is None else significant(s.final_loss),
        str(s.j_per_sample.n),
    ]


HEADER = (
    "variant",
    "mJ/sample (95 % CI)",
    "samples/s",
    "warm-up J",
    "to target loss (reached)",
    "mg CO2e/sample",
    "final loss",
    "n",
)


def hardware_line(summaries: Sequence[VariantSummary]) -> str:
    devices = sorted({d for s in summaries for d in s.devices})
    return "devices: " + ("; ".join(devices) or "unknown")


SHORT_WINDOW_S = 1.0
"""A measured window shorter than this spans few sensor updates (NVIDIA's counter and
RAPL update about every 100 ms; greenprof samples every 100 ms): its energy leans on
interpolation between updates."""


def caution_lines(summaries: Sequence[VariantSummary]) -> list[str]:
    """What a reader must know before trusting the ranking."""
    short = sorted({s.variant for s in summaries if s.window_s < SHORT_WINDOW_S})
    if not short:
        return []
    return [
        f"caution: measured windows under {SHORT_WINDOW_S:g} s ({', '.join(short)}): few "
        "sensor updates, energy partly interpolated; use more --steps or --min-window for a ranking"
    ]


def summary_lines(bench_id: str, summaries: Sequence[VariantSummary]) -> list[str]:
    """The terminal summary: one table per setting, the verdicts, the sensor methods."""
    lines = [
        f"bench {bench_id}",
        methods_line(summaries),
        hardware_line(summaries),
        *caution_lines(summaries),
    ]
    settings = list(dict.fromkeys(s.setting for s in summaries))
    for setting in settings:
        group = [s for s in summaries if s.setting == setting]
        lines += ["", setting_label(setting)]
        lines += text_table(HEADER, [table_row(s) for s in group])
    found = verdicts(summaries)
    if found:
        lines += ["", *found]
    best = best_settings(summaries)
    if best:
        lines += ["", *best]
    versions = sorted(
        {f"{k} {v}" for s in summaries for k, v in s.versions if k != "keras_backend"}
    )
    if versions:
        lines += ["", "versions: " + ", ".join(versions)]
    return lines


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _interval(value: stats.Interval | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"mean": _number(value.mean), "ci95_half_width": _number(value.half_width), "n": value.n}


def document(
    bench_id: str, summaries: Sequence[VariantSummary], skipped: Sequence[str]
) -> dict[str, Any]:
    """The ``--json`` document: one entry per variant and setting, SI units."""
    return envelope(
        "bench",
        bench=bench_id,
        skipped=list(skipped),
        results=[
            {
                "variant": s.variant,
                "framework": s.framework,
                "workload": s.setting[0],
                "size": s.setting[1],
                "batch_size": s.setting[2],
                "precision": s.setting[3],
                "energy_j_per_sample": _interval(s.j_per_sample),
                "samples_per_s": _interval(s.samples_per_s),
                "warmup_energy_j": _interval(s.warmup_energy_j),
                "setup_energy_j": _number(s.setup_energy_j),
                "co2_g_per_sample": _number(s.co2_g_per_sample),
                "to_target_s": _interval(s.to_target_s),
                "to_target_j": _interval(s.to_target_j),
                "target_reached": s.reached,
                "final_loss": _number(s.final_loss),
                "methods": list(s.methods),
                "versions": dict(s.versions),
                "devices": list(s.devices),
                "window_s": _number(s.window_s),
                "repeats_j_per_sample": [_number(v) for v in s.values_j_per_sample],
            }
            for s in summaries
        ],
        cautions=caution_lines(summaries),
        verdicts=verdicts(summaries),
        best_settings=best_settings(summaries),
    )

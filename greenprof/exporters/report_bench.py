"""``greenprof report --bench ID``: a bench's comparison as Markdown or HTML.

Built from the bench's runs in the store (:mod:`greenprof.bench.results`, the same
summary the terminal showed), in the report document model
(:mod:`greenprof.exporters.render`). The chart is J/sample per variant with 95 %
confidence intervals as error bars (inline SVG in HTML; text bars in Markdown), one
per setting (workload, size, batch size, precision).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from greenprof import formatting
from greenprof.bench.results import (
    VariantSummary,
    best_settings,
    load,
    setting_label,
    summarize,
    verdicts,
)
from greenprof.bench.table import (
    HEADER,
    MJ_PER_J,
    caution_lines,
    hardware_line,
    methods_line,
    plus_minus,
    table_row,
)
from greenprof.errors import GreenprofError
from greenprof.exporters.chart import (
    PALETTE,
    fit_text,
    nice_ticks,
    svg_open,
    text_width,
    tick_label,
)
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
from greenprof.formatting import significant
from greenprof.store.reader import RunStore
from greenprof.textsafe import html_text as escape


def error_bar_chart(
    items: Sequence[tuple[str, float, float]], *, unit: str, title: str, width: int = 760
) -> str:
    """Horizontal bars (label, value, half-width of its interval) with error whiskers;
    a nan half-width (one repeat) draws no whisker."""
    texts = [
        f"{significant(v)} ± {'?' if math.isnan(h) else significant(h, 2)} {unit}"
        for _, v, h in items
    ]
    bar_h, gap, pad_t, axis_h = 18, 8, 30, 22
    label_room = min(width * 0.4, max((text_width(label) for label, _, _ in items), default=0.0))
    pad_l = math.ceil(16 + label_room)
    pad_r = math.ceil(16 + max((text_width(text) for text in texts), default=0.0))
    height = pad_t + len(items) * (bar_h + gap) + axis_h
    top = max(
        (v + (0.0 if math.isnan(h) else h) for _, v, h in items if math.isfinite(v)),
        default=1.0,
    )
    ticks = nice_ticks(0.0, top or 1.0, 4)
    top = ticks[-1] or 1.0
    plot_w = max(10.0, width - pad_l - pad_r)

    def x_of(value: float) -> float:
        return pad_l + plot_w * max(value, 0.0) / top

    bottom = pad_t + len(items) * (bar_h + gap)
    out = svg_open(width, height, title)
    for tick in ticks:
        x = x_of(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{pad_t - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
            f"{escape(tick_label(tick))}</text>"
        )
    for index, ((label, value, half), text) in enumerate(zip(items, texts, strict=True)):
        y = pad_t + index * (bar_h + gap)
        end = x_of(value) if math.isfinite(value) else pad_l
        out.append(
            f'<text x="{pad_l - 8}" y="{y + 13}" text-anchor="end">'
            f"{escape(fit_text(label, label_room))}</text>"
            f'<rect x="{pad_l}" y="{y}" width="{end - pad_l:.1f}" height="{bar_h}" '
            f'fill="{PALETTE[index % len(PALETTE)]}" fill-opacity="0.85"/>'
        )
        whisker_end = end
        if math.isfinite(value) and not math.isnan(half):
            low, high = x_of(value - half), x_of(value + half)
            middle = y + bar_h / 2
            out.append(
                f'<line x1="{low:.1f}" y1="{middle}" x2="{high:.1f}" y2="{middle}" '
                'stroke="#1d1d1d" stroke-width="1.4"/>'
                f'<line x1="{low:.1f}" y1="{y + 4}" x2="{low:.1f}" y2="{y + bar_h - 4}" '
                'stroke="#1d1d1d" stroke-width="1.4"/>'
                f'<line x1="{high:.1f}" y1="{y + 4}" x2="{high:.1f}" y2="{y + bar_h - 4}" '
                'stroke="#1d1d1d" stroke-width="1.4"/>'
            )
            whisker_end = max(end, high)
        out.append(f'<text x="{whisker_end + 6:.1f}" y="{y + 13}">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _text_bars(group: Sequence[VariantSummary], width: int = 30) -> list[str]:
    top = max(
        (s.j_per_sample.mean for s in group if math.isfinite(s.j_per_sample.mean)), default=0.0
    )
    name_w = max(len(s.variant) for s in group)
    lines = []
    for s in group:
        share = s.j_per_sample.mean / top if top > 0 and math.isfinite(s.j_per_sample.mean) else 0.0
        bar = "█" * max(1, round(share * width))
        lines.append(
            f"{s.variant.ljust(name_w)}  {bar.ljust(width)}  "
            f"{plus_minus(s.j_per_sample, MJ_PER_J)} mJ/sample"
        )
    return lines


def _chart(setting: tuple[str, str, int, str], group: Sequence[VariantSummary]) -> Figure:
    items = [
        (s.variant, s.j_per_sample.mean * MJ_PER_J, s.j_per_sample.half_width * MJ_PER_J)
        for s in group
    ]
    title = f"Energy per sample, {setting_label(setting)}"
    return Figure(
        svg=error_bar_chart(items, unit="mJ/sample", title=title),
        text=_text_bars(group),
        caption=f"{title}: mean over repeats, error bars the 95 % confidence interval "
        "(none with one repeat); shorter is better.",
    )


def build_bench_report(
    store: RunStore, bench_id: str, *, clock: Callable[[], float] = time.time
) -> list[Block]:
    """The bench report as document blocks; :class:`GreenprofError` if it has no runs."""
    summaries = summarize(load(store, bench_id))
    if not summaries:
        raise GreenprofError(
            f"no runs of bench {bench_id!r} with a measured window in {store.location.display}"
        )
    blocks: list[Block] = [
        Heading(f"greenprof bench {bench_id}", 1),
        Paragraph(
            f"Generated {formatting.timestamp(clock(), zone=dt.timezone.utc)} (UTC) by greenprof "
            "from "
            f"{store.location.display}. Each repeat is a run tagged bench={bench_id}, trained "
            "in a fresh process; warm-up (one pass over the data pool: compilation, tracing) "
            "is measured apart from the measured window."
        ),
        Paragraph(methods_line(summaries), warning="model" in methods_line(summaries)),
        Paragraph(hardware_line(summaries)),
        *(Paragraph(line, warning=True) for line in caution_lines(summaries)),
    ]
    numeric = (False, *([True] * (len(HEADER) - 1)))
    for setting in dict.fromkeys(s.setting for s in summaries):
        group = [s for s in summaries if s.setting == setting]
        blocks += [
            Heading(setting_label(setting)),
            Table(HEADER, [table_row(s) for s in group], numeric),
            _chart(setting, group),
        ]
    found = verdicts(summaries)
    if found:
        blocks += [Heading("Differences"), Bullets(found)]
    best = best_settings(summaries)
    if best:
        blocks += [Heading("Most efficient setting per variant"), Bullets(best)]
    blocks += [
        Heading("Runs and versions"),
        Bullets(
            [
                f"{s.variant}, {setting_label(s.setting)}: runs "
                + ", ".join(str(r) for r in s.run_ids)
                + (f" ({', '.join(f'{k} {v}' for k, v in s.versions)})" if s.versions else "")
                for s in summaries
            ]
        ),
    ]
    return blocks


def bench_report_text(
    store: RunStore, bench_id: str, *, fmt: str, clock: Callable[[], float] = time.time
) -> str:
    """Bench ``bench_id``'s report as ``md`` or ``html`` text."""
    blocks = build_bench_report(store, bench_id, clock=clock)
    title = f"greenprof bench {bench_id}"
    return to_html(blocks, title=title) if fmt == "html" else to_markdown(blocks)


def write_bench_report(
    store: RunStore,
    bench_id: str,
    out: TextIO,
    *,
    fmt: str,
    clock: Callable[[], float] = time.time,
) -> None:
    """Write bench ``bench_id``'s report to ``out`` as ``md`` or ``html``."""
    out.write(bench_report_text(store, bench_id, fmt=fmt, clock=clock))

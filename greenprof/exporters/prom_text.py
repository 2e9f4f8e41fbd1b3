"""The Prometheus text format (0.0.4) for greenprof's metric families, written directly.

Why not ``prometheus_client.generate_latest``: it validates and escapes every label name
of every sample (two regular expressions per label), which made a 100-run scrape cost
several times the store reads. greenprof's label names are fixed or already sanitized
(:func:`~greenprof.exporters.prom_series.tag_label_name`), so only values are escaped
here. The output is what ``generate_latest`` writes: a counter ``x`` is exposed as
``x_total`` and its ``_created`` samples as a gauge ``x_created``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    """A sample value as Prometheus parses it (``+Inf``, ``-Inf``, ``NaN``, else repr)."""
    if math.isfinite(value):
        return repr(float(value))
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _sample_line(sample: Sample) -> str:
    if sample.labels:
        labels = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sample.labels.items())
        return f"{sample.name}{{{labels}}} {_number(sample.value)}\n"
    return f"{sample.name} {_number(sample.value)}\n"


def render(families: Iterable[Metric]) -> bytes:
    """``families`` in the text format, UTF-8."""
    out: list[str] = []
    for family in families:
        name, kind, doc = family.name, family.type, _escape_help(family.documentation)
        created = []
        if kind == "counter":
            name = f"{family.name}_total"
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for sample in family.samples:
            if kind == "counter" and sample.name.endswith("_created"):
                created.append(sample)
            else:
                out.append(_sample_line(sample))
        if created:
            created_name = f"{family.name}_created"
            out.append(f"# HELP {created_name} {doc}\n# TYPE {created_name} gauge\n")
            out.extend(_sample_line(sample) for sample in created)
    return "".join(out).encode("utf-8")

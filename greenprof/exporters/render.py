"""A tiny document model for reports and its Markdown and HTML renderers (standard library).

Every text in a block is plain text (run names, notes and errors included): each
renderer escapes it for its format (:mod:`greenprof.textsafe`), so no data can add
markup, HTML, table cells or lines to a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from greenprof.textsafe import html_text as escape
from greenprof.textsafe import markdown_fence, markdown_text


@dataclass(frozen=True)
class Heading:
    """A section title (level 1 is the document title)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Plain text; ``warning`` paragraphs are highlighted."""

    text: str
    warning: bool = False


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain-text items."""

    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """Headers and rows of text; ``numeric`` columns are right-aligned."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[bool] = field(default_factory=tuple)


@dataclass(frozen=True)
class Figure:
    """A chart: inline SVG in HTML, ``text`` (sparklines) in Markdown."""

    svg: str
    text: Sequence[str]
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def _md_cell(text: str) -> str:
    return markdown_text(text, block_start=False)


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {markdown_text(block.text)}")
        elif isinstance(block, Paragraph):
            text = markdown_text(block.text)
            out.append(f"> **Note:** {text}" if block.warning else text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {markdown_text(item)}" for item in block.items))
        elif isinstance(block, Table):
            aligns = [
                "---:" if i < len(block.numeric) and block.numeric[i] else "---"
                for i in range(len(block.headers))
            ]
            lines = [
                "| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
                "| " + " | ".join(aligns) + " |",
            ]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"{markdown_text(block.caption)}\n\n{markdown_fence(block.text)}")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1d;
       max-width: 980px; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 3px solid #1b7f5b; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .55rem; vertical-align: top; }
th { background: #f3f6f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.warning { background: #fff6e0; border-left: 4px solid #d98c1f; padding: .5rem .8rem; }
figure { margin: 1rem 0; } figcaption { font-size: .85rem; color: #555; }
svg { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def to_html(blocks: Sequence[Block], *, title: str) -> str:
    """Render blocks as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="warning"' if block.warning else ""
            out.append(f"<p{css}>{escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{escape(item)}</li>" for item in block.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
            rows = []
            for row in block.rows:
                cells = []
                for i, cell in enumerate(row):
                    css = ' class="num"' if i < len(block.numeric) and block.numeric[i] else ""
                    cells.append(f"<td{css}>{escape(cell)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            out.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        else:
            out.append(
                f"<figure>{block.svg}<figcaption>{escape(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"

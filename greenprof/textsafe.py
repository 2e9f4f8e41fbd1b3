"""Text from the run database made safe for the medium it is written to (pure functions).

Run names, tags, host names, device names, notes and errors are data: anyone who can
start a run (or write the SQLite file) chooses them. Every output medium has characters
that are instructions rather than text, and data must never reach a medium as
instructions:

- **Terminals** (:func:`terminal_text`): C0 controls (ESC starts escape sequences that
  set the window title, clear the screen or move the cursor; a newline forges table
  rows), DEL, C1 controls (0x9B is a one-byte CSI on some terminals), line and paragraph
  separators, bidirectional overrides (they reorder what is shown: "Trojan source"), and
  lone surrogates (they cannot be encoded and would crash ``print``). Each is shown as a
  visible escape (``\\x1b``, ``\\n``, ``\\u202e``); all other text, including non-ASCII
  letters and emoji, is kept.
- **CSV cells** (:func:`csv_text`): a spreadsheet runs a cell that starts with ``=``,
  ``+``, ``-``, ``@``, tab or carriage return as a formula. Such text cells get a single
  quote in front (OWASP's rule for CSV injection); numbers are left alone.
- **Markdown** (:func:`markdown_text`, :func:`markdown_fence`): raw HTML, emphasis, links,
  table pipes and line breaks in data would change the document; they are
  backslash-escaped, and newlines become spaces.
- **HTML and SVG** (:func:`html_text`): ``html.escape``, and control characters (invalid
  in XML, and executed when the page is printed to a terminal) shown as escapes.

One module, so that every printer uses the same rules (the Textual UI also puts its data
through :func:`terminal_text`, then into ``rich.text.Text`` objects, never markup).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

_UNSAFE_FOR_TERMINAL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""C0, DEL, C1, Arabic letter mark, LRM/RLM, line/paragraph separators, bidi embeddings,
overrides and isolates, surrogates."""

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_text(text: str, *, keep: str = "") -> str:
    """``text`` with every character a terminal would act on shown as a visible escape.

    ``keep`` names characters to pass through (e.g. ``"\\n\\t"`` for multi-line output
    that greenprof itself lays out). Backslashes are not doubled: this is for reading,
    not a reversible encoding.
    """
    if not _UNSAFE_FOR_TERMINAL.search(text):
        return text  # the common case: no copy
    if keep:
        return _UNSAFE_FOR_TERMINAL.sub(
            lambda m: m.group() if m.group() in keep else _visible(m), text
        )
    return _UNSAFE_FOR_TERMINAL.sub(_visible, text)


def terminal_lines(lines: Iterable[str]) -> str:
    """Lines that greenprof laid out, joined by newlines, each made terminal-safe."""
    return "\n".join(terminal_text(line) for line in lines)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP)."""


def csv_text(text: str) -> str:
    """A text cell that no spreadsheet evaluates: ``'`` before a formula-like start."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_value(value: object) -> object:
    """:func:`csv_text` for text; numbers, None and everything else unchanged.

    The distinction is by type, not by look: a negative number in a numeric column
    (``-3.5``) stays a number, while the text ``"-3.5"`` in a name column is quoted.
    """
    return csv_text(value) if isinstance(value, str) else value


_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
"""Characters with inline meaning in GitHub-flavoured Markdown: escapes, code, emphasis,
links and images, raw HTML and entities, table cells, strikethrough."""

_MARKDOWN_BLOCK_START = re.compile(r"^(?:([#+=-])|(\d{1,9})([.)])(?=\s|$))")
"""What turns the start of a line into a heading, a list item or a setext underline."""

_WHITESPACE_BREAKS = re.compile(r"[\n\r\t\v\f\u2028\u2029]+")


def markdown_text(text: str, *, block_start: bool = True) -> str:
    """``text`` as literal Markdown: one line, nothing in it interpreted.

    ``block_start``: the text may start a line (a paragraph, a heading's or a list
    item's text), so a leading ``#``, ``-``, ``+``, ``=`` or ``1.`` is escaped too.
    Table cells pass False: a leading ``+5.0 %`` stays readable there.
    """
    line = terminal_text(_WHITESPACE_BREAKS.sub(" ", text))
    line = _MARKDOWN_INLINE.sub(r"\\\1", line)
    if block_start:
        line = _MARKDOWN_BLOCK_START.sub(
            lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3),
            line,
        )
    return line


def markdown_fence(lines: Iterable[str], *, info: str = "text") -> str:
    """A fenced code block of ``lines``, shown verbatim whatever they contain.

    The fence is longer than any run of backticks in the body (CommonMark's rule), and
    each line is kept on one line with terminal-unsafe characters escaped.
    """
    body = [terminal_text(_WHITESPACE_BREAKS.sub(" ", line)) for line in lines]
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence + info, *body, fence])


def html_text(text: str) -> str:
    """``text`` for HTML or SVG element content and attribute values."""
    return html.escape(terminal_text(text, keep="\n\t"))

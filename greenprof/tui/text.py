"""Data into widgets as ``rich.text.Text``, never as markup.

Textual reads a ``str`` given to ``Static.update``, a ``DataTable`` cell or a column
label as markup: a run named ``resnet50[bs=64]`` loses its brackets, ``[/x]`` raises
``MarkupError`` and ``[@click=app.quit]`` is an action. A ``Text`` is shown as it is.
Data also goes through :func:`~greenprof.textsafe.terminal_text` first, because Textual
writes text to the terminal as is: an escape sequence in a run name would be run by the
terminal, not shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from greenprof.textsafe import terminal_text


def plain(text: str, style: str = "") -> Text:
    """One piece of data, shown literally on one line."""
    return Text(terminal_text(text), style=style, end="")


def plain_lines(lines: Iterable[str], style: str = "") -> Text:
    """Lines that greenprof laid out, each shown literally (data newlines escaped)."""
    return Text("\n".join(terminal_text(line) for line in lines), style=style, end="")

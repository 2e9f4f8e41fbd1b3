"""The help screen (``?``): the keys of the screen below and of the whole app."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GLOBAL_HELP = """\
[b]Everywhere[/b]
  ?        this help          q        quit
  h        run history        escape   back
  ctrl+p   command palette

Energy is gross IT energy of the measured devices; carbon is energy × PUE × grid
intensity (see a run's detail view for the source). Figures marked [b]simulated[/b]
come from fake sensors and are not measurements. Units: a run's energy in Wh or kWh,
per step and per sample in J; J/sample is the whole run's energy over its samples."""


class HelpScreen(ModalScreen[None]):
    """Key bindings and what the figures mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self._title = title
        self._text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(f"[b]{self._title}[/b]\n{self._text}\n\n{GLOBAL_HELP}", id="help-text")

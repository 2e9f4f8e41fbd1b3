"""The Textual application behind ``greenprof top``, ``history`` and ``compare``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from greenprof.store.location import parse_location
from greenprof.tui.screens.base import StoreRef, StoreScreen
from greenprof.tui.screens.compare import CompareScreen
from greenprof.tui.screens.help import HelpScreen
from greenprof.tui.screens.history import HistoryScreen
from greenprof.tui.screens.live import LiveScreen

Mode = Literal["live", "history", "compare"]


class GreenprofApp(App[int]):
    """Live monitor, run history and comparison over one greenprof database.

    The app only reads the SQLite file (each screen through its own
    :class:`~greenprof.store.RunStore`), so it can watch a run trained by another process.
    """

    CSS_PATH = "greenprof.tcss"
    TITLE = "greenprof"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("h", "history", "History"),
    ]

    def __init__(
        self,
        location: StoreRef,
        mode: Mode = "history",
        refs: Sequence[str] = (),
        *,
        refresh_s: float = 1.0,
        banner: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.location = parse_location(location)
        """The store every screen reads (a file or a server; never a ``Path`` of a URL)."""
        self.wall_clock = wall_clock
        """Unix time now, for the live screen's "ended … ago" and paused state."""
        self.mode: Mode = mode
        self.refs = list(refs)
        self.refresh_s = refresh_s
        self.banner = banner
        self.sub_title = self.location.display

    def get_default_screen(self) -> Screen[None]:
        """The screen the command asked for; escape never pops past it."""
        if self.mode == "live":
            run_id = int(self.refs[0]) if self.refs else None
            return LiveScreen(
                self.location,
                run_id,
                refresh_s=self.refresh_s,
                banner=self.banner,
                wall_clock=self.wall_clock,
            )
        if self.mode == "compare":
            return CompareScreen(self.location, self.refs)
        return HistoryScreen(self.location)

    def action_help(self) -> None:
        """Show the keys of the current screen."""
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        text = screen.HELP if isinstance(screen, StoreScreen) else ""
        self.push_screen(HelpScreen("greenprof help", text))

    def action_history(self) -> None:
        """Open the run history (or go back to it)."""
        for index, screen in enumerate(self.screen_stack):
            if isinstance(screen, HistoryScreen):
                while len(self.screen_stack) > index + 1:
                    self.pop_screen()
                return
        self.push_screen(HistoryScreen(self.location))

"""The history screen (``greenprof history``): every run, sortable and filterable.

Mark runs with space and press ``c`` to compare them; enter opens a run's detail view.
A marked run shows ``●`` in the first column and its row in the mark colour; space only
toggles the mark (the cursor stays, so marking #10 then moving to #9 marks what you see).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from greenprof.errors import StoreError
from greenprof.records import RunInfo
from greenprof.tui.screens.base import StoreRef, StoreScreen
from greenprof.tui.text import plain, plain_lines
from greenprof.tui.view_models import HISTORY_COLUMNS, HistoryRow, history_rows

EMPTY_TEXT = (
    "No runs yet in {path}.\n\nRun `greenprof demo` to create one (or `greenprof top --demo` "
    "to watch a simulated run)."
)
MARK = "●"
MARKED_STYLE = "bold magenta"
"""A marked row: colour and weight, so marks read without the mark column too."""


class HistoryScreen(StoreScreen):
    """All runs in a table; filter, sort, mark and compare, open details."""

    HELP = """\
[b]Run history[/b]
  up/down  move            enter    run details (epochs, devices, carbon source)
  space    mark / unmark   c        compare the marked runs (or this one and the next)
  /        filter          escape   clear the filter
  s        next sort key   r        reverse the sort
  t        watch live      click a column header to sort by it
Space marks the run under the cursor (● and the row's colour) and leaves the cursor there.
J/sample is whole-run energy over samples; samples/kWh is its inverse, scaled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse_sort", "Reverse", show=False),
        Binding("t", "live", "Live", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, location: StoreRef, *, refresh_s: float = 2.0) -> None:
        super().__init__(location)
        self.refresh_s = refresh_s
        self.runs: list[RunInfo] = []
        self.rows: list[HistoryRow] = []
        self.marked: set[int] = set()
        self.sort_column = HISTORY_COLUMNS.index("id")
        self.reverse = True
        self.query_text = ""
        self.loaded = False
        self._widths: list[int] = []

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter by name, tag, framework, device, status  ( / )", id="history-filter"
        )
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-empty")
        yield Static("loading…", id="history-status")
        yield Footer()

    def on_mount(self) -> None:
        """Load the runs, then reload periodically (running runs change)."""
        table = self.query_one("#history-table", DataTable)
        self._set_columns(table, [len(name) for name in HISTORY_COLUMNS])
        self.query_one("#history-empty").display = False
        table.focus()
        self.load()
        self.set_interval(self.refresh_s, self.load)

    @work(thread=True, exclusive=True, group="history-load")
    def load(self) -> None:
        """Read all runs (one query over the runs table) in a worker thread."""
        try:
            with self.store_lock:
                runs: list[RunInfo] | str = self.store.runs()
        except StoreError as exc:
            runs = str(exc)
        self.deliver(self._loaded, runs)

    def _loaded(self, runs: list[RunInfo] | str) -> None:
        if isinstance(runs, str):
            self._set_status(runs)
            return
        changed = runs != self.runs or not self.loaded
        self.runs = runs
        self.loaded = True
        if changed:
            self._rebuild()

    def _rebuild(self) -> None:
        table = self.query_one("#history-table", DataTable)
        empty = self.query_one("#history-empty", Static)
        empty.display = not self.runs
        table.display = bool(self.runs)
        if not self.runs:
            empty.update(plain_lines(EMPTY_TEXT.format(path=self.location.display).split("\n")))
        current = self.highlighted_run_id()
        self.rows = history_rows(
            self.runs, query=self.query_text, sort_column=self.sort_column, reverse=self.reverse
        )
        widths = [len(name) for name in HISTORY_COLUMNS]
        for row in self.rows:
            widths = [max(w, plain(c).cell_len) for w, c in zip(widths, row.cells, strict=True)]
        if widths != self._widths:
            self._set_columns(table, widths)  # explicit widths: no re-measuring on idle
        table.clear()
        for row in self.rows:
            table.add_row(*self._cells(row), key=str(row.run_id))
        if current is not None:
            with contextlib.suppress(Exception):
                table.move_cursor(row=table.get_row_index(str(current)))
        self._update_status()

    def _cells(self, row: HistoryRow) -> list[Text]:
        """The row's cells, the mark first; a marked row in the mark style."""
        marked = row.run_id in self.marked
        style = MARKED_STYLE if marked else ""
        return [plain(MARK if marked else "", style=style)] + [
            plain(cell, style=style) for cell in row.cells
        ]

    def _set_columns(self, table: DataTable[str], widths: list[int]) -> None:
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        for name, width in zip(HISTORY_COLUMNS, widths, strict=True):
            table.add_column(name, key=name, width=min(width, 40))
        self._widths = widths

    def _set_status(self, text: str) -> None:
        self.query_one("#history-status", Static).update(plain(text))

    def highlighted_run_id(self) -> int | None:
        """The run under the cursor."""
        table = self.query_one("#history-table", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row].run_id

    def action_mark(self) -> None:
        """Mark or unmark the highlighted run for comparison (the cursor stays put)."""
        table = self.query_one("#history-table", DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return
        row = self.rows[table.cursor_row]
        self.marked ^= {row.run_id}
        keys = ("mark", *HISTORY_COLUMNS)
        for key, cell in zip(keys, self._cells(row), strict=True):
            table.update_cell(str(row.run_id), key, cell)
        self._update_status()

    def _update_status(self) -> None:
        direction = "↓" if self.reverse else "↑"
        self._set_status(
            f"{len(self.rows)} of {len(self.runs)} runs · {len(self.marked)} marked · "
            f"sort: {HISTORY_COLUMNS[self.sort_column]} {direction} · {self.location.display}"
        )

    def action_compare(self) -> None:
        """Compare the marked runs (at least two; else the highlighted and the next)."""
        from greenprof.tui.screens.compare import CompareScreen

        ids = [row.run_id for row in self.rows if row.run_id in self.marked]
        if len(ids) < 2:
            current = self.query_one("#history-table", DataTable).cursor_row
            ids = [row.run_id for row in self.rows[current : current + 2]]
        if len(ids) < 2:
            self.notify("mark two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen(self.location, [str(i) for i in ids]))

    def action_focus_filter(self) -> None:
        """Type a filter."""
        self.query_one("#history-filter", Input).focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and go back to the table."""
        self.query_one("#history-filter", Input).value = ""
        self.query_one("#history-table", DataTable).focus()

    def action_next_sort(self) -> None:
        """Sort by the next column."""
        self.sort_column = (self.sort_column + 1) % len(HISTORY_COLUMNS)
        self._rebuild()

    def action_reverse_sort(self) -> None:
        """Reverse the sort order."""
        self.reverse = not self.reverse
        self._rebuild()

    def action_live(self) -> None:
        """Watch the highlighted run on the live screen."""
        from greenprof.tui.screens.live import LiveScreen

        run_id = self.highlighted_run_id()
        if run_id is not None:
            self.app.push_screen(LiveScreen(self.location, run_id))

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._rebuild()

    @on(Input.Submitted, "#history-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#history-table", DataTable).focus()

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_index - 1  # the mark column comes first
        if not 0 <= column < len(HISTORY_COLUMNS):
            return
        if column == self.sort_column:
            self.reverse = not self.reverse
        self.sort_column = column
        self._rebuild()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        from greenprof.tui.screens.detail import RunDetailScreen

        if event.row_key.value is not None:
            self.app.push_screen(RunDetailScreen(self.location, int(event.row_key.value)))

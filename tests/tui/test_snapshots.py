"""Snapshot tests of the screens (pytest-textual-snapshot's SVG snapshots).

Deterministic data: fixed start times, fixed energies, TZ=UTC. Screens that print the
database path (history) are checked by content in test_app.py instead. Update the
snapshots after an intended UI change with ``pytest tests/tui --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from greenprof.tui.app import GreenprofApp
from greenprof.tui.snapshot import screen_text
from tests.tui.conftest import T0

SnapCompare = Callable[..., bool]


async def _settle(pilot: Pilot[Any]) -> None:
    """Wait for the screen's worker to load and render its data."""
    for _ in range(100):
        await pilot.pause(0.05)
        text = screen_text(pilot.app)
        if "comparing…" not in text and "waiting for data" not in text and "━" in text:
            break
    await pilot.pause(0.1)


def test_compare_screen_snapshot(two_runs_db: Path, snap_compare: SnapCompare) -> None:
    app = GreenprofApp(two_runs_db, "compare", ["1", "2"])
    assert snap_compare(app, terminal_size=(100, 40), run_before=_settle)


def test_live_screen_of_a_finished_run_snapshot(
    two_runs_db: Path, snap_compare: SnapCompare
) -> None:
    app = GreenprofApp(two_runs_db, "live", ["1"], refresh_s=30, wall_clock=lambda: T0 + 3600)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)

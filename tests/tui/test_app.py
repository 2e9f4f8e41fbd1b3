"""The app driven with Pilot: navigation, selection → compare, details, help, live updates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from greenprof.records import DeviceInfo
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter
from greenprof.tui.app import GreenprofApp
from greenprof.tui.screens.compare import CompareScreen
from greenprof.tui.screens.detail import RunDetailScreen
from greenprof.tui.screens.help import HelpScreen
from greenprof.tui.snapshot import screen_text
from tests.tui.conftest import CARBON, run_async, write_run


async def wait_until(
    pilot: Pilot[int], condition: Callable[[], bool], timeout_s: float = 5.0
) -> None:
    """Let the app run until ``condition()`` holds (fails the test on timeout)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, screen_text(pilot.app)
        await pilot.pause(0.05)


def test_history_lists_runs_with_efficiency_columns(two_runs_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "Compare" in (t := screen_text(app)) and "bs64" in t)
            return screen_text(app)

    text = run_async(body)
    assert "resnet-bs64" in text
    assert "resnet-bs128" in text
    assert "J/sample" in text
    assert "0.797" in text  # bs64: whole-run J/sample
    assert "2 of 2 runs" in text
    assert "Compare" in text  # the footer shows the bindings


def test_history_empty_state_says_how_to_create_a_run(empty_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(empty_db, "history")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "No runs yet" in screen_text(app))
            return screen_text(app)

    assert "greenprof demo" in run_async(body)


def test_history_filter_and_sort(two_runs_db: Path) -> None:
    async def body() -> tuple[str, str]:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "resnet-bs64" in screen_text(app))
            await pilot.press("slash", *"bs128", "enter")
            await wait_until(pilot, lambda: "1 of 2 runs" in screen_text(app))
            filtered = screen_text(app)
            await pilot.press("escape")
            for _ in range(7):  # id → ... → J/sample
                await pilot.press("s")
            await wait_until(pilot, lambda: "sort: J/sample" in screen_text(app))
            return filtered, screen_text(app)

    filtered, by_cost = run_async(body)
    assert "resnet-bs128" in filtered
    assert "resnet-bs64 " not in filtered
    assert by_cost.index("resnet-bs64") < by_cost.index("resnet-bs128")  # costliest first


def test_mark_two_runs_in_history_then_compare(two_runs_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: "resnet-bs64" in screen_text(app))
            await pilot.press("space", "down", "space", "c")
            await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
            await wait_until(pilot, lambda: "more energy-efficient" in screen_text(app))
            text = screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: "2 marked" in screen_text(app))
            return text

    text = run_async(body)
    assert "resnet-bs128 #2 is 25.0 % more energy-efficient per sample than" in text
    assert "J/sample p90" in text
    assert "-20.0 %" in text


def test_enter_opens_run_details_with_carbon_source_and_epochs(two_runs_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: "resnet-bs64" in screen_text(app))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            table = app.screen.query_one("#detail-epochs", DataTable)
            await wait_until(pilot, lambda: table.row_count == 2)
            return screen_text(app)

    text = run_async(body)
    assert "test grid data, 2023" in text
    assert "PUE 1.2" in text
    assert "NVIDIA H100" in text
    assert "epochs" in text


def test_help_screen_opens_and_closes(two_runs_db: Path) -> None:
    async def body() -> tuple[str, bool]:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = screen_text(app)
            await pilot.press("escape")
            await pilot.pause(0.1)
            return text, isinstance(app.screen, HelpScreen)

    text, still_open = run_async(body)
    assert "Run history" in text
    assert "mark / unmark" in text
    assert not still_open


def _write_live(path: Path, stop: threading.Event, started: threading.Event) -> None:
    writer = StoreWriter(path, flush_interval_s=0.05)
    writer.create_run(
        RunSpec(
            "live-run",
            started_at=time.time(),
            interval_s=0.1,
            devices=(DeviceInfo("gpu:0", "gpu", "counter", idle_power_w=40.0),),
            carbon=CARBON,
            expected_steps=100_000,
        )
    )
    started.set()
    step, energy = 0, 0.0
    while not stop.is_set():
        rows = [
            (step + i, 0, (step + i) * 0.01, (step + i + 1) * 0.01, 32, 2.5, 0, None)
            for i in range(20)
        ]
        writer.add_steps(rows, [(row[0], "gpu:0", 2.5) for row in rows])
        writer.add_samples([("gpu:0", step * 0.01, energy, 250.0, 97.0, 1 << 30, 70.0)])
        step += 20
        energy += 50.0
        writer.set_totals(
            RunTotals(step, step * 32, energy, energy, step * 0.01, {"gpu:0": energy})
        )
        time.sleep(0.02)
    writer.close()


def test_live_screen_updates_while_another_thread_writes(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=_write_live, args=(path, stop, started), daemon=True)
    thread.start()
    assert started.wait(5)

    def steps_shown(text: str) -> int:
        line = next(line for line in text.splitlines() if " steps " in f" {line} ")
        return int(line.split("steps", 1)[1].split()[0].replace("k", "00"))

    async def body() -> tuple[str, str]:
        app = GreenprofApp(path, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "live-run" in (t := screen_text(app)) and "J/step" in t)
            await pilot.pause(0.1)
            first = screen_text(app)
            await pilot.pause(1.0)
            return first, screen_text(app)

    try:
        first, later = run_async(body)
    finally:
        stop.set()
        thread.join(5)
    assert "RUNNING" in first
    assert steps_shown(later) > steps_shown(first)
    assert "forecast at step 100k" in later
    assert "250 W" in later
    assert "97.0%" in later  # utilization
    assert "idle baseline 40.0 W" in later
    assert "SIMULATED" not in later


def test_live_screen_without_runs_explains_what_to_do(empty_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(empty_db, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "No runs yet" in screen_text(app))
            return screen_text(app)

    assert "greenprof top --demo" in run_async(body)


def test_live_screen_shows_a_finished_run_by_id_and_marks_simulated(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    write_run(path, "older", started_at=1_700_000_000.0)
    writer = StoreWriter(path)
    writer.create_run(
        RunSpec(
            "sim",
            started_at=time.time(),
            interval_s=0.1,
            devices=(DeviceInfo("gpu:0", "gpu", "simulated"),),
        )
    )
    writer.close()

    async def body(run: str) -> str:
        app = GreenprofApp(path, "live", [run], refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "#" in screen_text(app).splitlines()[0])
            return screen_text(app)

    older = run_async(lambda: body("1"))
    assert "older  #1  COMPLETED" in older
    assert "SIMULATED" not in older
    assert "SIMULATED" in run_async(lambda: body("2"))


def test_compare_keys_reach_the_screen_and_set_a_loss_target(two_runs_db: Path) -> None:
    async def body() -> tuple[str, str]:
        app = GreenprofApp(two_runs_db, "compare", ["1", "2"])
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(
                pilot, lambda: "energy to loss" in (t := screen_text(app)) and "Loss target" in t
            )
            before = screen_text(app)
            await pilot.press("l", "ctrl+a", "ctrl+k", *"1.2", "enter")
            await wait_until(pilot, lambda: "loss≤1.20" in screen_text(app))
            return before, screen_text(app)

    before, after = run_async(body)
    assert "Loss target" in before  # the footer shows the screen's own keys
    assert "loss≤1.20" not in before
    # bs128 learns faster per step (loss 2·exp(-step·128/4000)+0.2): fewer joules to 1.2
    line = next(row for row in after.splitlines() if "energy to loss≤1.20" in row.lstrip()[:20])
    assert "%" in line
    # the verdict follows the target the user just set, and says so
    assert "verdict by energy to loss≤1.20" in after
    assert "more energy-efficient to reach loss≤1.20 than" in after


def test_no_color_keeps_series_distinguishable(
    two_runs_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def body() -> tuple[bool, str]:
        app = GreenprofApp(two_runs_db, "compare", ["1", "2"])
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: "16.0k┤" in screen_text(app))
            return app.no_color, screen_text(app)

    no_color, text = run_async(body)
    assert no_color
    chart = text[text.index("16.0k┤") :]
    assert "B" in chart.splitlines()[0]  # each curve ends with its run's letter
    plot = [line.split("┤", 1)[-1] for line in chart.splitlines() if "┤" in line]
    assert any("A" in line for line in plot)  # A ends earlier: half the samples of B


def test_live_follows_the_next_running_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    write_run(path, "finished", started_at=time.time() - 100)

    async def body() -> tuple[str, str]:
        app = GreenprofApp(path, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "finished  #1" in screen_text(app))
            first = screen_text(app)
            writer = StoreWriter(path)
            writer.create_run(RunSpec("next-run", started_at=time.time(), interval_s=0.1))
            try:
                await wait_until(pilot, lambda: "next-run  #2  RUNNING" in screen_text(app))
            finally:
                writer.close()
            return first, screen_text(app)

    first, later = run_async(body)
    assert "COMPLETED" in first
    assert "next-run" in later

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
from greenprof.tui.screens.history import HistoryScreen
from greenprof.tui.screens.live import LiveScreen
from greenprof.tui.snapshot import screen_text
from tests.tui.conftest import CARBON, run_async, write_run


async def wait_until(
    pilot: Pilot[int], condition: Callable[[], bool], timeout_s: float = 20.0
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
    # the run's energy outside its steps is accounted for: 2 % of it, between steps
    assert "before the first step; between steps" in text
    assert "(2.0 % of the run)" in text


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

    def steps_shown(text: str) -> float:
        """The steps total on screen (``1,234`` or ``12.3k``); -1 while not shown."""
        line = next((line for line in text.splitlines() if " steps " in f" {line} "), "")
        words = line.split("steps", 1)[1].split()[:1] if line else []
        word = words[0].replace(",", "") if words else ""
        try:
            return float(word.removesuffix("k")) * (1000 if word.endswith("k") else 1)
        except ValueError:
            return -1

    def updated(text: str, since: float) -> bool:
        """Later steps shown, and every part of the screen filled in."""
        return steps_shown(text) > since and all(
            part in text
            for part in ("forecast at step 100k", "250 W", "97.0%", "idle baseline 40.0 W")
        )

    async def body() -> tuple[str, str]:
        app = GreenprofApp(path, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(
                pilot,
                lambda: "live-run" in (t := screen_text(app)) and steps_shown(t) >= 0,
            )
            first = screen_text(app)
            await wait_until(pilot, lambda: updated(screen_text(app), steps_shown(first)))
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


def test_a_poll_that_lands_after_the_screen_is_gone_draws_nothing(empty_db: Path) -> None:
    """A live poll that finishes while the app closes must not end the app with an
    error (it once did: NoMatches for '#live-title' in a worker, failing the demo)."""

    async def body() -> bool:
        app = GreenprofApp(empty_db, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "No runs yet" in screen_text(app))
            screen = app.screen
            assert isinstance(screen, LiveScreen)
            await screen.query_one("#live-title").remove()  # as when the app tears down
            worker = threading.Thread(target=screen.deliver, args=(screen._show, "late"))
            worker.start()
            while worker.is_alive():
                await pilot.pause(0.05)
            await pilot.pause(0.3)  # the UI thread has run the late draw
            return app.is_running

    assert run_async(body)


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


def test_space_marks_without_moving_and_marked_rows_show_it(two_runs_db: Path) -> None:
    async def body() -> tuple[int, str, str]:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "resnet-bs64" in screen_text(app))
            table = app.screen.query_one("#history-table", DataTable)
            await pilot.press("space")
            await wait_until(pilot, lambda: "1 marked" in screen_text(app))
            marked = screen_text(app)
            row = table.cursor_row
            await pilot.press("space")
            await wait_until(pilot, lambda: "0 marked" in screen_text(app))
            return row, marked, screen_text(app)

    row, marked, unmarked = run_async(body)
    assert row == 0  # the cursor stayed on the run it marked
    newest = next(line for line in marked.splitlines() if "resnet-bs128" in line)
    assert newest.lstrip().startswith("●")  # visible at 80 columns, first column
    assert "●" not in unmarked


def test_compare_x_axis_switches_between_samples_time_and_step(two_runs_db: Path) -> None:
    async def body() -> list[str]:
        app = GreenprofApp(two_runs_db, "compare", ["1", "2"])
        seen = []
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: "B resnet-bs128 #2 " in screen_text(app))
            for _ in range(3):
                seen.append(screen_text(app))
                await pilot.press("x")
                await pilot.pause(0.1)
        return seen

    samples, seconds, steps = run_async(body)
    assert "25.6k" in samples.split("vs samples")[1]  # B trained 25.6k samples
    assert "energy (J) vs time (s)" in seconds
    axis = [line for line in seconds.splitlines() if "time (s)" in line and "┤" not in line]
    assert axis[-1].rstrip().endswith("80")  # B ran 80 s: its curve ends there
    assert "energy (J) vs step" in steps


def test_compare_verdict_metric_is_the_users_choice(two_runs_db: Path) -> None:
    async def body() -> tuple[str, str]:
        app = GreenprofApp(two_runs_db, "compare", ["1", "2"])
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: "more energy-efficient per sample" in screen_text(app))
            first = screen_text(app)
            await pilot.press("v")
            await wait_until(pilot, lambda: "more energy-efficient per step" in screen_text(app))
            return first, screen_text(app)

    per_sample, per_step = run_async(body)
    assert "resnet-bs128 #2 is 25.0 % more energy-efficient per sample" in per_sample
    # per step the small batch wins: the verdict follows the metric and says so
    assert "resnet-bs64 #1 is 60.0 % more energy-efficient per step" in per_step


def test_compare_warns_about_a_failed_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    write_run(path, "ok")
    write_run(path, "broken", status="failed", started_at=1_700_000_600.0)

    async def body() -> str:
        app = GreenprofApp(path, "compare", ["1", "2"])
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: "equally energy-efficient" in screen_text(app))
            return screen_text(app)

    text = run_async(body)
    assert "B (broken #2) failed: its figures cover only the part that ran" in text
    assert "medians and p90 cover steps only" in text


def test_top_waits_for_the_first_run_when_the_database_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "later.db"

    async def body() -> tuple[str, str]:
        app = GreenprofApp(path, "live", refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "Waiting for the first run" in screen_text(app))
            waiting = screen_text(app)
            writer = StoreWriter(path)
            writer.create_run(RunSpec("first-run", started_at=time.time(), interval_s=0.1))
            try:
                await wait_until(pilot, lambda: "first-run  #1  RUNNING" in screen_text(app))
            finally:
                writer.close()
            return waiting, screen_text(app)

    waiting, found = run_async(body)
    assert str(path) in waiting
    assert "setting up" in found  # no step yet


def _paused_run(path: Path, now: float) -> StoreWriter:
    """A running run whose last step ended 5 minutes before ``now`` (close the writer)."""
    writer = StoreWriter(path, flush_interval_s=60, wall_clock=lambda: now)
    writer.create_run(RunSpec("stalled", started_at=now - 400, interval_s=0.1, devices=(DEVICE,)))
    rows = [(i, 0, i * 1.0, i + 1.0, 32, 25.0, 0, None) for i in range(100)]
    writer.add_steps(rows, [(row[0], "gpu:0", 25.0) for row in rows])
    writer.add_samples([("gpu:0", t * 1.0, t * 25.0, 25.0, None, None, None) for t in range(100)])
    writer.set_totals(RunTotals(100, 3200, 2500.0, 2500.0, 100.0, {"gpu:0": 2500.0}))
    writer.flush()
    return writer


DEVICE = DeviceInfo("gpu:0", "gpu", "counter")


def test_live_shows_paused_and_ended_with_a_moving_now(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    now = time.time()
    write_run(path, "done", started_at=now - 3600)  # 50 s long, ended ~59 min ago
    clock = [now]

    async def body(ref: str) -> tuple[str, str]:
        app = GreenprofApp(path, "live", [ref], refresh_s=0.2, wall_clock=lambda: clock[0])
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(
                pilot,
                lambda: "ENDED" in screen_text(app).splitlines()[0] and "W" in screen_text(app),
            )
            first = screen_text(app)
            clock[0] += 120
            # another part of the screen may redraw first: wait for the title itself
            await wait_until(pilot, lambda: "1 h 01 min" in screen_text(app).splitlines()[0])
            return first, screen_text(app)

    first, later = run_async(lambda: body("1"))
    assert "ENDED 59 min 10 s ago" in first.splitlines()[0]
    assert "ENDED 1 h 01 min ago" in later.splitlines()[0]  # "now" keeps moving
    assert "40.0 W" in first  # flat power is drawn with its level, not an empty chart
    assert "⠒" in first or "⠉" in first or "⠤" in first


def test_live_says_paused_when_no_step_arrives(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    now = time.time()
    writer = _paused_run(path, now)

    async def body() -> str:
        app = GreenprofApp(path, "live", ["1"], refresh_s=0.2, wall_clock=lambda: now)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "PAUSED" in screen_text(app))
            return screen_text(app)

    try:
        text = run_async(body)
    finally:
        writer.close()
    assert "PAUSED: no new step for 5 min 00 s" in text


def test_live_at_80x24_keeps_energy_and_the_power_chart(two_runs_db: Path) -> None:
    async def body() -> str:
        app = GreenprofApp(two_runs_db, "live", ["1"], refresh_s=30)
        async with app.run_test(size=(80, 24)) as pilot:
            # the device table and the chart fill in after the header: wait for all of it
            await wait_until(
                pilot,
                lambda: all(
                    part in screen_text(app)
                    for part in ("time since start", "0.797", "2.28 Wh", "cpu:0", "gpu:0")
                ),
            )
            return screen_text(app)

    text = run_async(body)
    header = next(line for line in text.splitlines() if "device" in line and "power" in line)
    assert "energy" in header and "util" in header
    assert "2.28 Wh" in text  # the GPU's energy, not cut
    assert "cpu:0" in text and "gpu:0" in text  # a band per device
    assert "J/sample" in text and "0.797" in text
    assert len(text.splitlines()) <= 24


def test_a_server_store_keeps_its_url_through_every_screen() -> None:
    url = "postgresql://me@db.example/greenprof"
    app = GreenprofApp(url, "history")
    assert app.location.kind == "postgresql"
    assert app.location.target == url  # Path(url) would have collapsed the //
    screen = app.get_default_screen()
    assert isinstance(screen, HistoryScreen)
    assert screen.location.target == url
    for other in (CompareScreen(screen.location, ["1", "2"]), RunDetailScreen(screen.location, 1)):
        assert other.location.target == url


def test_run_details_state_the_step_energies_error_bounds(two_runs_db: Path) -> None:
    """Run 1 stores its steps' bounds, run 2 does not. The step total and each epoch get
    `± x`: the bound of the sum (shared boundaries cancel), far below the sum of the
    steps' bounds; a run whose bounds are unknown says n/a rather than nothing."""
    from greenprof.step_windows import step_window_bounds
    from greenprof.store.reader import RunStore
    from greenprof.summary import plus_minus

    with RunStore(two_runs_db) as store:
        bounds = step_window_bounds(store.iter_step_bounds(1))
        summed_j = sum(s.energy_uncertainty_j or 0.0 for s in store.steps(1))
    assert bounds.run_j is not None and bounds.run_j < summed_j / 20

    async def body(run_id: int) -> tuple[str, list[str]]:
        app = GreenprofApp(two_runs_db, "history")
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "resnet-bs64" in screen_text(app))
            await pilot.press(*(["down"] if run_id == 1 else []), "enter")  # newest first
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            assert app.screen.run_id == run_id
            table = app.screen.query_one("#detail-epochs", DataTable)
            await wait_until(
                pilot,
                lambda: table.row_count == 2 and "±" in str(table.get_row_at(1)[4]),
            )
            return screen_text(app), [str(table.get_row_at(k)[4]) for k in range(2)]

    text, cells = run_async(lambda: body(1))
    assert plus_minus(bounds.run_j) in text
    assert plus_minus(summed_j) not in text
    for epoch, cell in enumerate(cells):
        assert cell.endswith(plus_minus(bounds.epoch_j[epoch]))
    _, cells = run_async(lambda: body(2))
    assert all(cell.endswith("± n/a") for cell in cells)

"""`greenprof top --demo`: a simulated run through the real Profiler, labelled SIMULATED."""

from __future__ import annotations

from pathlib import Path

from greenprof.store import RunStore
from greenprof.tui.app import GreenprofApp
from greenprof.tui.demo import BANNER, DemoPlan, SimulatedTraining
from greenprof.tui.snapshot import screen_text
from tests.tui.conftest import run_async
from tests.tui.test_app import wait_until


def test_demo_drives_the_live_screen_and_is_labelled_simulated(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    plan = DemoPlan(steps=40, baseline_s=0.2, repeat=False)
    training = SimulatedTraining(path, plan).start()
    assert training.wait_for_run() is not None, training.error

    async def body() -> str:
        app = GreenprofApp(path, "live", refresh_s=0.2, banner=BANNER)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "J/sample" in screen_text(app))
            await wait_until(pilot, lambda: "sim-bs" in screen_text(app))
            return screen_text(app)

    try:
        text = run_async(body)
    finally:
        training.stop()
    assert training.error is None
    assert "SIMULATED RUN" in text
    assert "SIMULATED — not a measurement" in text
    with RunStore(path) as store:
        runs = store.runs()
    assert runs
    assert all(device.method == "simulated" for run in runs for device in run.devices)
    assert runs[-1].tags["batch_size"] == 64

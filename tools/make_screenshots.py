"""Export SVG screenshots of the live (demo), history and compare screens for the docs.

    .venv/bin/python tools/make_screenshots.py [OUTPUT_DIR]   (default: docs/screenshots)

Runs simulated training (fake sensors, labelled SIMULATED) into a temporary database:
two short completed runs at batch sizes 64 and 128, then a third run watched live.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from greenprof.tui.app import GreenprofApp, Mode
from greenprof.tui.demo import BANNER, DemoPlan, SimulatedTraining
from greenprof.tui.snapshot import screen_text

SIZE = (100, 32)


async def _capture(
    app: GreenprofApp, ready: str, path: Path, settle_s: float, keys: tuple[str, ...] = ()
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 30
        while ready not in screen_text(app) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.press(*keys)  # e.g. mark a run in the history
        await pilot.pause(settle_s)
        path.write_text(app.export_screenshot(title=f"greenprof {app.mode}"), encoding="utf-8")


def _shoot(
    db: Path,
    mode: Mode,
    refs: list[str],
    ready: str,
    out: Path,
    *,
    keys: tuple[str, ...] = (),
    **kw: object,
) -> None:
    app = GreenprofApp(db, mode, refs, **kw)  # type: ignore[arg-type]
    asyncio.run(_capture(app, ready, out, settle_s=1.0 if mode != "live" else 4.0, keys=keys))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Write live.svg, history.svg and compare.svg into the output directory."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="greenprof-shots-") as directory:
        db = Path(directory) / "demo.db"
        finished = SimulatedTraining(db, DemoPlan(steps=200, repeat=False)).start()
        finished.join(timeout_s=120)
        if finished.error is not None:
            raise finished.error
        live = SimulatedTraining(db, DemoPlan(steps=3000), seed=2).start()
        try:
            live.wait_for_run()
            _shoot(db, "live", [], "J/sample", out / "live.svg", banner=BANNER)
        finally:
            live.stop()
        _shoot(db, "history", [], "sim-bs128", out / "history.svg", keys=("space",))
        refs = [str(run_id) for run_id in finished.run_ids]
        _shoot(db, "compare", refs, "more energy-efficient", out / "compare.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())

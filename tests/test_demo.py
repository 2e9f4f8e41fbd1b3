"""`greenprof demo`: the epochs asked for are the epochs recorded; the progress line has
an ETA, and in a log (not a terminal) it is whole lines, never `\\r`-joined."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from pathlib import Path

import pytest

import greenprof
from greenprof.demo import DemoConfig, Progress, epoch_of, progress_text, run_demo
from greenprof.sensors.fake import FakeSensor


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _ticking(step_s: float) -> itertools.count[float]:
    return itertools.count(0.0, step_s)


@pytest.mark.parametrize(("steps", "epochs"), [(300, 3), (10, 3), (100, 3), (7, 7), (2, 3)])
def test_steps_are_split_into_the_epochs_asked_for(steps: int, epochs: int) -> None:
    sizes = Counter(epoch_of(step, steps, epochs) for step in range(steps))
    assert sorted(sizes) == list(range(min(steps, epochs)))
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_the_demo_records_the_epochs_asked_for_and_logs_whole_lines(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    db = tmp_path / "runs.db"
    log = io.StringIO()  # not a terminal: a CI log
    ticks = _ticking(4.0)
    config = DemoConfig(steps=10, batch_size=4, epochs=3, width=4)
    with greenprof.Profiler("demo", db=db, sensors=[FakeSensor("gpu:0", 50.0)]) as prof:
        run_demo(prof, config, progress=log, clock=lambda: next(ticks))
    with greenprof.RunStore(db) as store:
        epochs = store.epochs(prof.run_id or 0)
        losses = [s.loss for s in store.steps(prof.run_id or 0)]
    assert [(e.epoch, e.steps) for e in epochs] == [(0, 4), (1, 3), (2, 3)]  # not 3+3+3+1
    assert all(loss is not None and loss > 0 for loss in losses)  # set inside each step
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) >= 2 and all(line.startswith("  step ") for line in lines)
    assert "ETA" in lines[0]
    assert lines[-1].startswith("  step 10/10  loss ") and "done in" in lines[-1]


def test_on_a_terminal_the_line_is_updated_in_place_about_once_a_second() -> None:
    screen = Terminal()
    ticks = _ticking(0.5)
    report = Progress(4, screen, clock=lambda: next(ticks))
    for done in range(1, 5):
        report.step_done(done, 1.0 / done)
    report.finish()
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")  # steps 2 and 4: 1 s apart
    assert "\r  step 2/4  loss 0.500  ETA " in text


def test_progress_text_states_the_time_left() -> None:
    assert progress_text(100, 300, 1.23456, 50.0) == "  step 100/300  loss 1.235  ETA 1 min 40 s"
    assert progress_text(300, 300, 0.5, 150.0) == "  step 300/300  loss 0.500  done in 2 min 30 s"
    assert "  loss 1.30e-08  " in progress_text(300, 300, 1.3e-08, 1.0)  # a tiny loss is not 0

import threading
import time
from pathlib import Path

import pytest

import greenprof
from greenprof.ledger import BEGIN, END, EPOCH
from greenprof.marks import ClockedStepMarks, StepMarks, batch_size, ns_clock
from greenprof.sensors.fake import FakeSensor


def _ticks() -> StepMarks:
    now = iter(range(100, 1_000_000, 100))
    return ClockedStepMarks(lambda: next(now))


def test_marks_are_queued_in_order_and_drained_once() -> None:
    marks = _ticks()
    marks.epoch_begin(2)
    with marks.step(samples=8, loss=0.5):
        pass
    marks.step_begin()
    marks.step_end(4)
    marks.step_end(time_ns=7)
    assert len(marks) == 6
    assert marks.drain() == [
        (EPOCH, 2),
        (BEGIN, 100),
        (END, 200, 8, 0.5),
        (BEGIN, 300),
        (END, 400, 4, None),
        (END, 7, None, None),
    ]
    assert marks.drain() == [] and len(marks) == 0


def test_the_loop_wrapper_marks_each_iteration_and_counts_its_batch() -> None:
    marks = _ticks()
    assert list(marks.steps([([1, 2, 3], "y"), ({"ids": [1, 2]}, "y"), 5])) == [
        ([1, 2, 3], "y"),
        ({"ids": [1, 2]}, "y"),
        5,
    ]
    ends = [m for m in marks.drain() if m[0] == END]
    assert [m[2] for m in ends] == [3, 2, None]


def test_a_forked_childs_marks_are_bounded_even_through_methods_held_before() -> None:
    marks = _ticks()
    held = marks.step_end
    marks.discard()
    for _ in range(50):
        held()
        marks.step_begin()
    assert len(marks) == 1


def test_the_default_clock_is_monotonic_and_an_injected_one_is_used() -> None:
    plain = StepMarks.on_clock(time.monotonic)
    assert type(plain) is StepMarks
    before = time.monotonic_ns()
    with plain.step():
        pass
    plain.step_end()
    assert all(before <= mark[1] <= time.monotonic_ns() for mark in plain.drain())
    clocked = StepMarks.on_clock(lambda: 2.5)
    with clocked.step():
        pass
    clocked.step_begin()
    assert {mark[1] for mark in clocked.drain()} == {2_500_000_000}


def test_the_usual_clocks_keep_their_integer_twins() -> None:
    assert ns_clock(time.monotonic) is time.monotonic_ns
    assert ns_clock(time.perf_counter) is time.perf_counter_ns
    assert ns_clock(lambda: 1.5)() == 1_500_000_000


def test_batch_size_reads_the_first_element() -> None:
    class Tensor:
        shape = (32, 10)

    assert batch_size((Tensor(), Tensor())) == 32
    assert batch_size(([0.0] * 64, [0] * 64)) == 64
    assert batch_size({"input_ids": Tensor()}) == 32
    assert batch_size(7) is None


def test_a_loss_set_inside_the_step_is_the_one_recorded() -> None:
    for marks in (_ticks(), StepMarks()):
        with marks.step(samples=8, loss=9.0) as step:
            step.loss = 0.25  # known only once the step has computed it
            step.samples = 6
        with marks.step() as step:  # the reused context starts each step afresh
            pass
        ends = [m for m in marks.drain() if m[0] == END]
        assert [(m[2], m[3]) for m in ends] == [(6, 0.25), (None, None)]


def test_a_tensor_loss_is_stored_as_a_number_converted_off_the_training_thread(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    converted_on: list[str] = []

    class WatchedLoss:
        """A 0-d tensor that says which thread converted it."""

        def __init__(self, value: float) -> None:
            self.tensor = torch.tensor(value)

        def __float__(self) -> float:
            converted_on.append(threading.current_thread().name)
            return float(self.tensor.item())

    db = tmp_path / "runs.db"
    with greenprof.Profiler("loss", db=db, sensors=[FakeSensor("gpu:0", 50.0)]) as prof:
        for value in (2.0, 1.5):
            with prof.step(samples=4) as step:
                step.loss = WatchedLoss(value)
        with prof.step(samples=4) as step:
            step.loss = torch.tensor(0.75, requires_grad=True) * 2  # a tensor with a graph
        deadline = time.monotonic() + 30.0  # the writer converts within its flush interval
        while not converted_on and time.monotonic() < deadline:
            time.sleep(0.01)
        during_the_run = list(converted_on)
    with greenprof.RunStore(db) as store:
        assert [s.loss for s in store.steps(prof.run_id or 0)] == [2.0, 1.5, 1.5]
    assert during_the_run and threading.current_thread().name not in during_the_run

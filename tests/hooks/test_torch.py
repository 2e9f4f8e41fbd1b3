"""PyTorch adapter: real CPU trainings, and the CUDA-event watcher with fake events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import greenprof  # noqa: E402
from greenprof.hooks import torch as torch_hooks  # noqa: E402
from tests.hooks.conftest import assert_consistent, fake_sensors, only_run, read_runs  # noqa: E402

N, BATCH, EPOCHS = 200, 16, 3  # 13 batches an epoch, the last one of 8


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader[tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = TensorDataset(torch.randn(N, 8), torch.randn(N, 1))
    return model, optimizer, DataLoader(data, batch_size=BATCH)


def _train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    epochs: int = EPOCHS,
    prof: greenprof.Profiler | None = None,
) -> None:  # type: ignore[type-arg]
    for epoch in range(epochs):
        if prof is not None:
            prof.epoch_begin(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():  # evaluation batches are not training samples
            for x, _ in loader:
                model(x)


def test_attach_marks_one_step_per_optimizer_step(db_path: Path) -> None:
    model, optimizer, loader = _setup()
    with greenprof.Profiler("torch", db=db_path, sensors=fake_sensors(), framework="torch") as prof:
        handle = torch_hooks.attach(optimizer)
        assert handle.profiler is prof
        _train(model, optimizer, loader, prof=prof)
        handle.remove()
        optimizer.step()  # detached: not counted
    stored = only_run(db_path)
    assert len(stored.steps) == 13 * EPOCHS
    assert [s.samples for s in stored.steps[:13]] == [16] * 12 + [8]
    assert stored.run.samples == N * EPOCHS
    assert [(e.epoch, e.steps, e.samples) for e in stored.epochs] == [(e, 13, N) for e in range(3)]
    assert stored.run.status == "completed"
    assert stored.run.framework == "torch"
    assert_consistent(stored)
    assert all(s.end_s >= s.start_s for s in stored.steps)


def test_gradient_accumulation_sums_micro_batches_and_samples_override(db_path: Path) -> None:
    model, optimizer, loader = _setup()
    with greenprof.Profiler("acc", db=db_path, sensors=fake_sensors()) as prof:
        with torch_hooks.attach(optimizer, prof):
            for i, (x, y) in enumerate(loader):
                torch.nn.functional.mse_loss(model(x), y).backward()
                if i % 2 == 1:
                    optimizer.step()
                    optimizer.zero_grad()
        with torch_hooks.attach(optimizer, prof, samples=7):
            optimizer.step()
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [32] * 6 + [7]
    # The profiler was started without framework=: the hook that joined it says which.
    assert stored.run.framework == "torch"


def test_attach_inside_profile_decorator_is_one_run(db_path: Path) -> None:
    model, optimizer, loader = _setup()

    @greenprof.profile("decorated", db=db_path, sensors=fake_sensors(), framework="torch")
    def train() -> None:
        with torch_hooks.attach(optimizer):  # joins the decorator's run
            _train(model, optimizer, loader, epochs=1)

    train()
    stored = only_run(db_path)
    assert stored.run.name == "decorated"
    assert len(stored.steps) == 13
    assert stored.run.status == "completed"


def test_attach_without_profiler_runs_its_own_and_records_failure(db_path: Path) -> None:
    model, optimizer, loader = _setup()
    with (
        pytest.raises(RuntimeError, match="boom"),
        torch_hooks.attach(optimizer, run="own", db=db_path, sensors=fake_sensors()),
    ):
        _train(model, optimizer, loader, epochs=1)
        raise RuntimeError("boom")
    stored = only_run(db_path)
    assert stored.run.name == "own"
    assert stored.run.status == "failed"
    assert stored.run.framework == "torch"
    assert "boom" in (stored.run.error or "")
    assert len(stored.steps) == 13


def test_global_hook_counts_every_optimizer_once(db_path: Path) -> None:
    model, optimizer, loader = _setup()
    other = torch.optim.Adam(model.parameters())
    with greenprof.Profiler("global", db=db_path, sensors=fake_sensors()) as prof:
        handle = torch_hooks.install_global_hook(prof)
        _train(model, optimizer, loader, epochs=1)
        other.step()
        with torch_hooks.attach(other, prof, samples=1):
            other.step()  # counted once, by its own hook
        handle.remove()
        optimizer.step()
    stored = only_run(db_path)
    assert len(stored.steps) == 15
    assert [s.samples for s in stored.steps[-2:]] == [None, 1]


class FakeEvent:
    """Stands in for torch.cuda.Event: completes ``delay_s`` after record()."""

    created = 0

    def __init__(self, delay_s: float = 0.02) -> None:
        FakeEvent.created += 1
        self.delay_s = delay_s
        self.recorded_ns = 0
        self.waited_on: str | None = None

    def record(self) -> None:
        self.recorded_ns = time.monotonic_ns()

    def synchronize(self) -> None:
        self.waited_on = threading.current_thread().name
        remaining = self.recorded_ns / 1e9 + self.delay_s - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def test_watcher_stamps_completion_in_order_off_the_training_thread(db_path: Path) -> None:
    FakeEvent.created = 0
    events: list[FakeEvent] = []

    def factory() -> FakeEvent:
        events.append(FakeEvent())
        return events[-1]

    with greenprof.Profiler("events", db=db_path, sensors=fake_sensors()) as prof:
        ender = torch_hooks.StepEnder(prof, event_factory=factory, use_events=True)
        ender.epoch(0)
        t0 = time.monotonic()
        for _ in range(20):
            ender.end(samples=4)
            time.sleep(0.005)
        host_s = time.monotonic() - t0
        ender.epoch(1)
        for _ in range(10):
            ender.end(samples=4)
            ender.flush()  # a step at a time: the pool recycles one event
        ender.close()
    stored = only_run(db_path)
    assert len(stored.steps) == 30
    assert [e.steps for e in stored.epochs] == [20, 10]
    assert all(e.waited_on == "greenprof-cuda-events" for e in events)
    assert len(events) < 20  # recycled through the pool
    durations = [s.duration_s for s in stored.steps[1:20]]
    assert min(s.end_s - s.start_s for s in stored.steps[1:20]) >= 0
    assert all(
        b.start_s == pytest.approx(a.end_s)
        for a, b in zip(stored.steps, stored.steps[1:], strict=False)
    )
    # Each end is the completion (record + 20 ms), not the host's return.
    assert stored.steps[19].end_s - stored.steps[0].start_s >= host_s
    assert sum(durations) > 0
    assert_consistent(stored)


def test_exact_mode_synchronizes_at_most_once_a_second(db_path: Path) -> None:
    syncs: list[float] = []
    with greenprof.Profiler("exact", db=db_path, sensors=fake_sensors(), exact=True) as prof:
        ender = torch_hooks.StepEnder(
            prof,
            event_factory=lambda: FakeEvent(0.0),
            use_events=True,
            synchronize=lambda: syncs.append(time.monotonic()),
        )
        deadline = time.monotonic() + 1.3
        steps = 0
        while time.monotonic() < deadline:
            ender.end()
            steps += 1
            time.sleep(0.001)
        ender.close()
    assert 1 <= len(syncs) <= 2
    assert len(read_runs(db_path)[0].steps) == steps


def test_cpu_steps_never_touch_cuda(db_path: Path) -> None:
    with greenprof.Profiler("cpu", db=db_path, sensors=fake_sensors()) as prof:
        ender = torch_hooks.StepEnder(prof)
        ender.end(3)
        assert ender._watcher is None
    assert only_run(db_path).steps[0].samples == 3

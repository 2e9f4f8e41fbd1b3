"""PyTorch counting rules with real (CPU) trainings: one step per optimizer step however the
hooks combine, peeks and evaluation batches are not samples, DataLoader passes are epochs.

Every case trains EPOCHS passes over N samples in batches of BATCH (13 steps an epoch, the
last one of 8 samples) and reads the run back from the database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.dataloader import _BaseDataLoaderIter

import greenprof
from greenprof.hooks import _common
from greenprof.hooks import torch as torch_hooks
from tests.hooks.conftest import StoredRun, assert_consistent, fake_sensors, only_run

N, BATCH, EPOCHS = 200, 16, 3
STEPS_PER_EPOCH = 13
REPO = Path(__file__).resolve().parents[2]


class Training:
    """A tiny model, its optimizer, a training loader and a validation loader."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.train = DataLoader(TensorDataset(torch.randn(N, 8), torch.randn(N, 1)), BATCH)
        self.val = DataLoader(TensorDataset(torch.randn(50, 8), torch.randn(50, 1)), 10)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        torch.nn.functional.mse_loss(self.model(x), y).backward()
        self.optimizer.step()

    def epoch(self) -> None:
        for x, y in self.train:
            self.step(x, y)


def _profiled(db: Path, body: Callable[[greenprof.Profiler], None]) -> StoredRun:
    with greenprof.Profiler("counting", db=db, sensors=fake_sensors()) as prof:
        body(prof)
    stored = only_run(db)
    assert_consistent(stored)
    return stored


def _epochs(stored: StoredRun) -> list[tuple[int, int, int | None]]:
    return [(e.epoch, e.steps, e.samples) for e in stored.epochs]


def _assert_plain_epochs(stored: StoredRun, first: int = 0) -> None:
    assert stored.run.steps == EPOCHS * STEPS_PER_EPOCH
    assert stored.run.samples == EPOCHS * N
    assert [s.samples for s in stored.steps[:STEPS_PER_EPOCH]] == [BATCH] * 12 + [8]
    assert _epochs(stored) == [(first + e, STEPS_PER_EPOCH, N) for e in range(EPOCHS)]


def test_attach_alone_records_steps_samples_and_epochs(db_path: Path) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof):
            for _ in range(EPOCHS):
                t.epoch()

    stored = _profiled(db_path, body)
    _assert_plain_epochs(stored)
    assert stored.run.error is None


def _with_step(t: Training, prof: greenprof.Profiler) -> None:
    for x, y in t.train:
        with prof.step(samples=len(x)):
            t.step(x, y)


def _with_steps(t: Training, prof: greenprof.Profiler) -> None:
    for x, y in prof.steps(t.train):
        t.step(x, y)


def _with_begin_end(t: Training, prof: greenprof.Profiler) -> None:
    for x, y in t.train:
        prof.step_begin()
        t.step(x, y)
        prof.step_end(samples=len(x))


@pytest.mark.parametrize("marking", [_with_step, _with_steps, _with_begin_end])
@pytest.mark.parametrize("hook", ["attach", "global"])
def test_own_step_marks_and_a_hook_count_each_step_once(
    db_path: Path, marking: Callable[[Training, greenprof.Profiler], None], hook: str
) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        handle = (
            torch_hooks.attach(t.optimizer, prof)
            if hook == "attach"
            else torch_hooks.install_global_hook(prof)
        )
        with handle:
            for _ in range(EPOCHS):
                marking(t, prof)
        assert _common.claimed_by(prof) == _common.USER

    stored = _profiled(db_path, body)
    _assert_plain_epochs(stored)  # the user's steps; epochs still from the DataLoader
    assert stored.run.error is None  # no "nested steps" warning either


def test_global_hook_as_zero_code_installs_it(db_path: Path) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.install_global_hook(prof):  # what greenprof run's sitecustomize calls
            for _ in range(EPOCHS):
                t.epoch()
                with torch.no_grad():
                    for x, _ in t.val:
                        t.model(x)

    _assert_plain_epochs(_profiled(db_path, body))


def test_peeked_batches_are_not_samples(db_path: Path) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.install_global_hook(prof):
            x, _ = next(iter(t.train))  # a look at the shapes
            kept = iter(t.train)  # the CIFAR-10 tutorial's `dataiter`, kept alive
            next(kept)
            assert x.shape == (BATCH, 8)
            for _ in range(EPOCHS):
                t.epoch()

    _assert_plain_epochs(_profiled(db_path, body))


def test_explicit_epochs_override_the_dataloader_rule(db_path: Path) -> None:
    t = Training()

    def numbered(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof):
            for epoch in range(EPOCHS):
                prof.epoch_begin(10 + epoch)
                t.epoch()

    _assert_plain_epochs(_profiled(db_path, numbered), first=10)


def test_explicit_next_epoch_marks_are_not_doubled(db_path: Path) -> None:
    t = Training()

    def unnumbered(prof: greenprof.Profiler) -> None:
        with torch_hooks.install_global_hook(prof):
            for _ in range(EPOCHS):
                prof.epoch_begin()  # the next epoch: 1, 2, 3
                t.epoch()

    _assert_plain_epochs(_profiled(db_path, unnumbered), first=1)


def test_validation_passes_are_neither_samples_nor_epochs(db_path: Path) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof):
            t.model.eval()  # no torch.no_grad(): validation batches have gradients enabled
            for x, _ in t.val:  # a validation before training
                t.model(x)
            t.model.train()
            for _ in range(EPOCHS):
                for i, (x, y) in enumerate(t.train):
                    t.step(x, y)
                    if i == 5:  # a validation in the middle of an epoch
                        for vx, _ in t.val:
                            t.model(vx)
                for vx, _ in t.val:  # and after it, with and without gradients
                    t.model(vx)
                with torch.no_grad():
                    for vx, _ in t.val:
                        t.model(vx)

    _assert_plain_epochs(_profiled(db_path, body))


@pytest.mark.parametrize("hook", ["attach", "global"])
def test_setup_and_evaluation_are_not_charged_to_the_next_step(db_path: Path, hook: str) -> None:
    """Model building before the first batch is the setup phase, and a validation pass
    between epochs falls between steps, not into the next epoch's first step."""
    setup_s, evaluation_s = 0.05, 0.05
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        handle = (
            torch_hooks.attach(t.optimizer, prof)
            if hook == "attach"
            else torch_hooks.install_global_hook(prof)
        )
        with handle:
            time.sleep(setup_s)  # building the model, loading weights...
            for _ in range(EPOCHS):
                t.epoch()
                with torch.no_grad():
                    for vx, _ in t.val:
                        t.model(vx)
                    time.sleep(evaluation_s)  # a slow validation

    stored = _profiled(db_path, body)
    _assert_plain_epochs(stored)
    assert stored.run.setup_s is not None and stored.run.setup_s >= setup_s
    for epoch in range(1, EPOCHS):
        last = stored.steps[epoch * STEPS_PER_EPOCH - 1]
        first = stored.steps[epoch * STEPS_PER_EPOCH]
        assert first.epoch == last.epoch + 1
        assert first.start_s - last.end_s >= evaluation_s  # the validation is between them
    inside = [s for s in stored.steps if s.step % STEPS_PER_EPOCH]  # contiguous in an epoch
    for before, step in zip(stored.steps, stored.steps[1:], strict=False):
        if step in inside:
            assert step.start_s == pytest.approx(before.end_s, abs=1e-5)


def test_gradient_accumulation_counts_micro_batches_by_epoch(db_path: Path) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof):
            for _ in range(2):
                for i, (x, y) in enumerate(t.train):
                    torch.nn.functional.mse_loss(t.model(x), y).backward()
                    if i % 2 == 1 or i == STEPS_PER_EPOCH - 1:
                        t.optimizer.step()
                        t.optimizer.zero_grad()

    stored = _profiled(db_path, body)
    assert [s.samples for s in stored.steps] == ([32] * 6 + [8]) * 2
    assert _epochs(stored) == [(0, 7, N), (1, 7, N)]


def test_a_pass_left_by_break_is_no_epoch_and_its_unstepped_batch_no_sample(
    db_path: Path,
) -> None:
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof):
            for _ in range(2):
                for i, (x, y) in enumerate(t.train):
                    if i == 5:
                        break  # drawn, never stepped
                    t.step(x, y)
            t.epoch()

    stored = _profiled(db_path, body)
    assert stored.run.samples == 10 * BATCH + N
    assert _epochs(stored) == [(0, 10 + STEPS_PER_EPOCH, 10 * BATCH + N)]


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ((torch.zeros(32, 8), torch.zeros(32)), 32),
        ({"input_ids": torch.zeros(8, 5)}, 8),
        (([torch.zeros(4, 2)], torch.zeros(4)), 4),
        (torch.zeros(3), 3),
        (torch.tensor(1.0), None),
        ([1, 2, 3], None),
        ((), 0),
        ("abc", 3),
        (5, None),
    ],
)
def test_batch_size(batch: object, expected: int | None) -> None:
    assert _common.batch_size(batch) == expected


def test_cuda_event_steps_and_epochs_stay_in_order(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.hooks.test_torch import FakeEvent

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch_hooks, "_new_cuda_event", lambda: FakeEvent(0.002))
    t = Training()

    def body(prof: greenprof.Profiler) -> None:
        with torch_hooks.attach(t.optimizer, prof) as handle:
            for _ in range(EPOCHS):
                t.epoch()
            assert handle.ender._watcher is not None

    _assert_plain_epochs(_profiled(db_path, body))


def test_removing_the_hooks_restores_dataloader_and_profiler(db_path: Path) -> None:
    original_next = _BaseDataLoaderIter.__next__
    t = Training()
    with greenprof.Profiler("restore", db=db_path, sensors=fake_sensors()) as prof:
        first = torch_hooks.attach(t.optimizer, prof)
        second = torch_hooks.install_global_hook(prof)
        assert _BaseDataLoaderIter.__next__ is not original_next
        assert "step" in vars(prof)
        first.remove()
        assert "step" in vars(prof)  # the global hook still watches
        second.remove()
        assert _BaseDataLoaderIter.__next__ is original_next
        assert not {"step", "steps", "step_begin", "epoch_begin"} & set(vars(prof))
        t.epoch()
    assert only_run(db_path).run.steps == 0


MNIST_LIKE = """
    # The structure of pytorch/examples mnist/main.py (train()/test(), Adadelta, StepLR,
    # log interval, evaluation under no_grad), with synthetic data instead of MNIST.
    import argparse
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader, TensorDataset


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, 1)
            self.fc1 = nn.Linear(4 * 13 * 13, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            return F.log_softmax(self.fc1(torch.flatten(x, 1)), dim=1)


    def train(args, model, device, train_loader, optimizer, epoch):
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                print(f"Train Epoch: {epoch} [{batch_idx * len(data)}] Loss: {loss.item():.6f}")


    def test(model, device, test_loader):
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                pred = model(data).argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        print(f"Test set: Accuracy: {correct}/{len(test_loader.dataset)}")


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--test-batch-size", type=int, default=1000)
        parser.add_argument("--epochs", type=int, default=14)
        parser.add_argument("--log-interval", type=int, default=10)
        args = parser.parse_args()
        torch.manual_seed(1)
        device = torch.device("cpu")
        dataset1 = TensorDataset(torch.randn(640, 1, 28, 28), torch.randint(0, 10, (640,)))
        dataset2 = TensorDataset(torch.randn(200, 1, 28, 28), torch.randint(0, 10, (200,)))
        train_loader = DataLoader(dataset1, batch_size=args.batch_size, shuffle=True)
        test_loader = DataLoader(dataset2, batch_size=args.test_batch_size)
        images, labels = next(iter(train_loader))  # a look at the data, as tutorials do
        print("batch shape", tuple(images.shape))
        model = Net().to(device)
        optimizer = optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
        for epoch in range(1, args.epochs + 1):
            train(args, model, device, train_loader, optimizer, epoch)
            test(model, device, test_loader)
            scheduler.step()


    if __name__ == "__main__":
        main()
"""


@pytest.mark.slow
def test_mnist_like_script_under_greenprof_run(db_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(MNIST_LIKE))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["GREENPROF_DB"] = str(db_path)
    child = [sys.executable, str(script), "--epochs", "3", "--batch-size", "64"]
    result = subprocess.run(
        [sys.executable, "-m", "greenprof", "run", "--", *child],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Test set: Accuracy") == 3
    stored = only_run(db_path)
    assert stored.run.status == "completed"
    assert stored.run.steps == 3 * 10
    assert stored.run.samples == 3 * 640
    assert _epochs(stored) == [(e, 10, 640) for e in range(3)]

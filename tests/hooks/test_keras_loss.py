"""Keras 3 per-step loss: recovered from Keras's running epoch mean, exact to the
batch's own loss, with asynchronous dispatch left alone (real ``fit``, TF backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from greenprof.hooks._running_loss import RunningMeanLoss, StepLoss  # noqa: E402
from greenprof.hooks.keras import GreenprofCallback  # noqa: E402
from tests.hooks.conftest import fake_sensors, only_run  # noqa: E402

N, BATCH = 100, 16  # 7 batches an epoch, the last one of 4 samples


class BatchLosses(keras.callbacks.Callback):  # type: ignore[misc]
    """A plain Keras callback computing each batch's loss from the logs it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.epoch_losses: list[float] = []
        self._seen = 0
        self._mean = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._seen, self._mean = 0, 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {})["loss"])
        samples = min(BATCH, N - self._seen)
        seen = self._seen + samples
        self.losses.append((seen * mean - self._seen * self._mean) / samples)
        self._seen, self._mean = seen, mean

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_losses.append(float((logs or {})["loss"]))


def _fit(
    db_path: Path, callbacks: list[Any] | None = None, **compile_options: Any
) -> tuple[keras.Model, Any]:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype("float32")
    y = rng.normal(size=(N, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", **compile_options)
    greenprof_cb = GreenprofCallback(run="loss", db=db_path, sensors=fake_sensors())
    history = model.fit(
        x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[greenprof_cb, *(callbacks or [])]
    )
    return model, history


def _sample_weighted_mean(losses: list[float], samples: list[int]) -> float:
    return sum(loss * n for loss, n in zip(losses, samples, strict=True)) / sum(samples)


def test_each_step_stores_its_batch_loss_and_they_average_to_the_epoch_loss(
    db_path: Path,
) -> None:
    _, history = _fit(db_path)
    stored = only_run(db_path)
    losses = [s.loss for s in stored.steps]
    assert all(loss is not None for loss in losses)
    for epoch, epoch_loss in enumerate(history.history["loss"]):
        steps = [s for s in stored.steps if s.epoch == epoch]
        assert len(steps) == 7
        mean = _sample_weighted_mean(
            [s.loss or 0.0 for s in steps], [s.samples or 0 for s in steps]
        )
        assert mean == pytest.approx(epoch_loss, abs=1e-5)


def test_stored_losses_match_what_a_plain_keras_callback_computes(db_path: Path) -> None:
    """The same fit, a reading callback beside greenprof's (TensorFlow's dispatch is
    synchronous anyway, so it changes nothing there)."""
    reader = BatchLosses()
    _fit(db_path, callbacks=[reader])
    stored = only_run(db_path)
    assert len(reader.losses) == len(stored.steps) == 14
    assert [s.loss for s in stored.steps] == pytest.approx(reader.losses, abs=1e-5)


def test_steps_per_execution_stores_each_executions_mean_batch_loss(db_path: Path) -> None:
    _, history = _fit(db_path, steps_per_execution=4)
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [64, 36] * 2
    for epoch, epoch_loss in enumerate(history.history["loss"]):
        steps = [s for s in stored.steps if s.epoch == epoch]
        mean = _sample_weighted_mean(
            [s.loss or 0.0 for s in steps], [s.samples or 0 for s in steps]
        )
        assert mean == pytest.approx(epoch_loss, abs=1e-5)


def test_running_mean_is_turned_into_step_losses_only_when_read() -> None:
    class Lazy:
        reads = 0

        def __init__(self, value: float) -> None:
            self.value = value

        def __float__(self) -> float:
            Lazy.reads += 1
            return self.value

    losses = RunningMeanLoss()
    first = losses.step(Lazy(4.0), samples=10)  # batch loss 4
    second = losses.step(Lazy(3.0), samples=30)  # batch loss 8/3 so the 40-sample mean is 3
    assert Lazy.reads == 0
    assert float(first) == 4.0
    assert float(second) == pytest.approx((40 * 3.0 - 10 * 4.0) / 30)
    losses.reset()
    assert float(losses.step(2.0, samples=None)) == 2.0
    assert float(StepLoss(2.5, 20.0, 3.0, 10.0)) == 2.0

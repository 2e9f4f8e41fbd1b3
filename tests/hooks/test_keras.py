"""Keras 3 callback: real ``fit`` runs on CPU (TensorFlow backend here, torch backend in a
subprocess), asynchronous batch dispatch left on, failures recorded."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import greenprof  # noqa: E402
from greenprof.hooks.keras import GreenprofCallback, patch_fit  # noqa: E402
from tests.hooks.conftest import assert_consistent, fake_sensors, only_run  # noqa: E402

N, BATCH, EPOCHS = 100, 16, 3  # 7 batches an epoch, the last one of 4
REPO = Path(__file__).resolve().parents[2]


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 4)).astype("float32"), rng.normal(size=(N, 1)).astype("float32")


def test_fit_records_batches_epochs_and_energy_logs(db_path: Path, tmp_path: Path) -> None:
    x, y = _data()
    log = tmp_path / "log.csv"
    callback = GreenprofCallback(run="keras-fit", db=db_path, sensors=fake_sensors())
    history = _model().fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[callback, keras.callbacks.CSVLogger(str(log))],
    )
    stored = only_run(db_path)
    assert stored.run.status == "completed"
    assert stored.run.framework == "keras"
    assert len(stored.steps) == 7 * EPOCHS
    assert [s.samples for s in stored.steps[:7]] == [16] * 6 + [4]
    assert stored.run.samples == N * EPOCHS
    assert [(e.epoch, e.steps, e.samples) for e in stored.epochs] == [(e, 7, N) for e in range(3)]
    assert_consistent(stored)
    assert len(history.history["energy_j"]) == EPOCHS
    assert all(e >= 0 for e in history.history["energy_j"])
    assert "co2_g" in history.history
    with log.open() as f:
        assert "energy_j" in next(csv.reader(f))
    assert callback.model.train_function is not None
    assert not getattr(callback.model.train_function, "_greenprof_wrapped", False)  # restored


def test_steps_per_execution_records_executions_with_exact_samples(db_path: Path) -> None:
    """One step per execution of 4 batches; the epoch's last execution runs 3 (16+16+4)."""
    x, y = _data()
    model = _model()
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    callback = GreenprofCallback(run="spe", db=db_path, sensors=fake_sensors())
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback])
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [64, 36] * 2
    assert stored.run.samples == 2 * N
    assert_consistent(stored)


def test_callback_overrides_no_batch_hook_so_async_dispatch_stays_on() -> None:
    from keras.src import utils

    callback = GreenprofCallback()
    for hook in ("on_batch_end", "on_train_batch_end", "on_train_batch_begin"):
        assert utils.is_default(getattr(callback, hook)), hook


def test_failure_inside_fit_fails_the_run_and_propagates(db_path: Path) -> None:
    class Boom(keras.layers.Layer):  # type: ignore[misc]
        armed = False

        def call(self, inputs: object) -> object:
            if self.armed:
                raise ValueError("boom in the model")
            return inputs

    boom = Boom()
    model = keras.Sequential([keras.Input((4,)), boom])
    boom.armed = True
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    with pytest.raises(ValueError, match="boom in the model"):
        model.fit(
            x,
            y[:, :1].repeat(4, axis=1),
            verbose=0,
            callbacks=[GreenprofCallback(run="boom", db=db_path, sensors=fake_sensors())],
        )
    stored = only_run(db_path)
    assert stored.run.status == "failed"
    assert "boom in the model" in (stored.run.error or "")


def test_callback_joins_the_decorators_run(db_path: Path) -> None:
    x, y = _data()

    @greenprof.profile("decorated-keras", db=db_path, sensors=fake_sensors(), framework="keras")
    def train() -> None:
        model = _model()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[GreenprofCallback()])
        model.fit(x, y, batch_size=50, epochs=1, verbose=0, callbacks=[GreenprofCallback()])

    train()
    stored = only_run(db_path)
    assert stored.run.name == "decorated-keras"
    assert [s.samples for s in stored.steps] == [16] * 6 + [4, 50, 50]


def test_patch_fit_adds_the_callback_once(db_path: Path) -> None:
    x, y = _data()
    with greenprof.Profiler("patched", db=db_path, sensors=fake_sensors()) as prof:
        undo = patch_fit(prof)
        try:
            _model().fit(x, y, batch_size=50, epochs=2, verbose=0)
            _model().fit(x, y, batch_size=50, epochs=1, verbose=0, callbacks=[GreenprofCallback()])
        finally:
            undo()
        _model().fit(x, y, batch_size=50, epochs=1, verbose=0)  # unpatched: no steps
    assert len(only_run(db_path).steps) == 6


TORCH_BACKEND_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras.src.callbacks.callback_list import CallbackList
    from greenprof.hooks.keras import GreenprofCallback
    from greenprof.sensors.fake import FakeSensor

    assert keras.backend.backend() == "torch"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = GreenprofCallback(run="keras-torch", sensors=[FakeSensor("cpu:0", 50.0)])
    print("async_train", CallbackList([callback], model=model)._async_train)
    x = np.random.rand(40, 4).astype("float32")
    y = np.random.rand(40, 1).astype("float32")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    """
)


@pytest.mark.slow
def test_torch_backend_fit_keeps_async_dispatch(db_path: Path) -> None:
    pytest.importorskip("torch")
    env = dict(os.environ, KERAS_BACKEND="torch", GREENPROF_DB=str(db_path))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", TORCH_BACKEND_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "async_train True" in result.stdout
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [16, 16, 8] * 2
    assert stored.run.framework == "keras"
    assert_consistent(stored)

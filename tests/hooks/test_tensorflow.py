"""TensorFlow adapters: a custom loop around a tf.function, a TF1 Session, and a
MonitoredTrainingSession hook — real trainings on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import greenprof  # noqa: E402
from greenprof.hooks.tensorflow import (  # noqa: E402
    GreenprofSessionHook,
    ProfiledSession,
    wrap_step,
)
from tests.hooks.conftest import assert_consistent, fake_sensors, only_run  # noqa: E402

N, BATCH = 100, 16


def _dataset() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype("float32")
    y = rng.normal(size=(N, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def test_custom_loop_around_a_tf_function(db_path: Path) -> None:
    w = tf.Variable(tf.zeros((4, 1)))
    optimizer = tf.keras.optimizers.SGD(0.01)

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((x @ w - y) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, [w]), [w], strict=True))
        return loss

    with wrap_step(train_step, run="tf-loop", db=db_path, sensors=fake_sensors()) as step:
        for epoch in range(2):
            step.epoch(epoch)
            for x, y in _dataset():
                step(x, y)
    stored = only_run(db_path)
    assert stored.run.framework == "tensorflow"
    assert stored.run.status == "completed"
    assert [s.samples for s in stored.steps] == ([16] * 6 + [4]) * 2
    assert [(e.epoch, e.steps, e.samples) for e in stored.epochs] == [(0, 7, N), (1, 7, N)]
    assert_consistent(stored)


def test_custom_loop_failure_and_decorator_join(db_path: Path) -> None:
    @greenprof.profile("decorated-tf", db=db_path, sensors=fake_sensors(), framework="tensorflow")
    def train() -> None:
        step = wrap_step(lambda x: x * 2)
        with step:  # joins the decorator's run
            for x, _ in _dataset():
                step(x)
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train()
    stored = only_run(db_path)
    assert stored.run.status == "failed"
    assert len(stored.steps) == 7


def _graph() -> tuple[tf.Graph, object, object, object, object]:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4))
        y = tf.compat.v1.placeholder(tf.float32, (None, 1))
        w = tf.compat.v1.get_variable("w", (4, 1), initializer=tf.compat.v1.zeros_initializer())
        loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(
            loss, global_step=global_step
        )
    return graph, x, y, loss, train_op


def _batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    sizes = [16] * 6 + [4]
    return [
        (rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 1)).astype("float32"))
        for n in sizes
    ]


def test_tf1_session_counts_train_op_runs(db_path: Path) -> None:
    graph, x, y, loss, train_op = _graph()
    with graph.as_default():
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    with ProfiledSession(session, train_op, run="tf1", db=db_path, sensors=fake_sensors()) as sess:
        sess.run(init)  # not a step
        for bx, by in _batches():
            sess.run([train_op, loss], feed_dict={x: bx, y: by})
        sess.run(loss, feed_dict={x: bx, y: by})  # evaluation: not a step
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [16] * 6 + [4]
    assert stored.run.framework == "tensorflow"
    assert_consistent(stored)


def test_monitored_training_session_hook(db_path: Path) -> None:
    graph, x, y, _loss, train_op = _graph()
    hook = GreenprofSessionHook(run="tf1-monitored", db=db_path, sensors=fake_sensors())
    with (
        graph.as_default(),
        tf.compat.v1.train.MonitoredTrainingSession(
            hooks=[hook], save_summaries_steps=None
        ) as sess,
    ):
        for bx, by in _batches():
            sess.run(train_op, feed_dict={x: bx, y: by})
    stored = only_run(db_path)
    assert stored.run.status == "completed"
    assert [s.samples for s in stored.steps] == [16] * 6 + [4]
    assert_consistent(stored)

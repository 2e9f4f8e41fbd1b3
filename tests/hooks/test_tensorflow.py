"""TensorFlow adapters: a custom loop around a tf.function, a TF1 Session, and a
MonitoredTrainingSession hook — real trainings on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
from tests.hooks.conftest import (  # noqa: E402
    assert_consistent,
    fake_sensors,
    only_run,
    read_runs,
)

N, BATCH = 100, 16
REPO = Path(__file__).resolve().parents[2]


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


def test_session_hook_finds_the_train_op_from_the_global_step(db_path: Path) -> None:
    """Without ``train_op``, runs that only log or evaluate are not steps."""
    graph, x, y, loss, train_op = _graph()
    hook = GreenprofSessionHook(run="tf1-auto", db=db_path, sensors=fake_sensors())
    with (
        graph.as_default(),
        tf.compat.v1.train.MonitoredTrainingSession(
            hooks=[hook], save_summaries_steps=None
        ) as sess,
    ):
        for bx, by in _batches():
            sess.run(train_op, feed_dict={x: bx, y: by})
            sess.run(loss, feed_dict={x: bx, y: by})  # logging only: not a step
    stored = only_run(db_path)
    assert [s.samples for s in stored.steps] == [16] * 6 + [4]
    assert_consistent(stored)


def test_session_hook_finds_the_train_op_collection(db_path: Path) -> None:
    graph, x, y, loss, train_op = _graph()
    with graph.as_default():
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, train_op)
    hook = GreenprofSessionHook(run="tf1-collection", db=db_path, sensors=fake_sensors())
    with (
        graph.as_default(),
        tf.compat.v1.train.MonitoredTrainingSession(
            hooks=[hook], save_summaries_steps=None
        ) as sess,
    ):
        for bx, by in _batches():
            sess.run([train_op, loss], feed_dict={x: bx, y: by})
            sess.run(loss, feed_dict={x: bx, y: by})
    assert [s.samples for s in only_run(db_path).steps] == [16] * 6 + [4]


def test_mirrored_strategy_samples_are_summed_over_replicas(db_path: Path) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        w = tf.Variable(tf.zeros((4, 1)))
    dataset = strategy.experimental_distribute_dataset(_dataset())

    @tf.function
    def distributed_step(inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        def replica_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((x @ w - y) ** 2)
            w.assign_sub(0.01 * tape.gradient(loss, w))
            return loss

        losses = strategy.run(replica_step, args=inputs)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    with wrap_step(distributed_step, run="mirrored", db=db_path, sensors=fake_sensors()) as step:
        for inputs in dataset:
            step(inputs)
    assert [s.samples for s in only_run(db_path).steps] == [16] * 6 + [4]


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import greenprof
    from greenprof.hooks.tensorflow import ProfiledSession, wrap_step
    from greenprof.sensors.fake import FakeSensor

    step = wrap_step(tf.function(lambda x: x * 2), run="loop", sensors=[FakeSensor("cpu:0", 5.0)])
    for _ in range(3):
        step(tf.ones((8, 4)))

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4))
        w = tf.compat.v1.get_variable("w", (4, 1))
        loss = tf.reduce_mean(tf.matmul(x, w) ** 2)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(loss)
        init = tf.compat.v1.global_variables_initializer()
    own = greenprof.Profiler("session", sensors=[FakeSensor("cpu:0", 5.0)])  # not joined
    sess = ProfiledSession(tf.compat.v1.Session(graph=graph), train_op, own)
    sess.run(init)
    for _ in range(2):
        sess.run(train_op, feed_dict={x: np.ones((8, 4), "float32")})
    if sys.argv[1] == "raise":
        raise RuntimeError("diverged")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("ending", "status"), [("clean", "completed"), ("raise", "failed")])
def test_one_line_forms_end_with_the_scripts_outcome(
    db_path: Path, ending: str, status: str
) -> None:
    """README-style ``wrap_step(...)`` / ``ProfiledSession(...)`` with no explicit end."""
    env = dict(os.environ, GREENPROF_DB=str(db_path), TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, ending],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == (0 if ending == "clean" else 1), result.stderr[-3000:]
    runs = {r.run.name: r for r in read_runs(db_path)}
    assert {name: r.run.status for name, r in runs.items()} == {"loop": status, "session": status}
    assert [len(runs["loop"].steps), len(runs["session"].steps)] == [3, 2]
    if status == "failed":
        assert "diverged" in (runs["loop"].run.error or "")

"""TensorFlow custom training loop: a ``tf.function`` step with ``tf.GradientTape``.

Imported only inside a worker process (``KERAS_BACKEND=tensorflow``). The model is the
Keras definition (:mod:`greenprof.bench.models_keras`; ``tf.keras`` is Keras 3), as
TensorFlow 2 code writes models today; what differs from the Keras variant is the
loop: no ``fit``, a traced step called from Python.
"""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from greenprof.bench import models_keras
from greenprof.bench.spec import Passes
from greenprof.bench.variants import Variant
from greenprof.bench.workloads import Batches, Workload
from greenprof.marks import StepAPI


def parameter_count(w: Workload) -> int:
    return models_keras.parameter_count(w)


def versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def train(
    profiler: StepAPI,
    w: Workload,
    batches: Batches,
    *,
    variant: Variant,
    passes: Passes,
    precision: str,
    seed: int,
) -> None:
    """Train the ``passes`` over ``batches``: epoch 0 is the warm-up (tracing)."""
    keras.utils.set_random_seed(seed)
    models_keras.set_precision(precision)
    model = models_keras.build(w)
    optimizer = keras.optimizers.Adam(models_keras.LEARNING_RATE, epsilon=models_keras.ADAM_EPSILON)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function  # type: ignore[untyped-decorator]
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    data = [
        (tf.constant(x), tf.constant(y), len(y)) for x, y in zip(batches.x, batches.y, strict=True)
    ]
    done, measured_from = 0, math.inf
    while passes.more(done, time.monotonic() - measured_from):
        profiler.epoch_begin(0 if done == 0 else 1)
        if done == 1:
            measured_from = time.monotonic()
        for x, y, samples in data:
            profiler.step_begin()
            loss = step(x, y)
            profiler.step_end(samples, loss=float(loss))
        done += 1

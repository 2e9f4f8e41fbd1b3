"""Keras 3 definitions of the bench's models, and the ``fit`` loop (any backend).

Imported only inside a worker process, after the worker has set ``KERAS_BACKEND``.
Keras's defaults are the shared initialisation scheme (Glorot-uniform kernels, zero
biases, embeddings uniform in ±0.05); Adam(1e-3, epsilon 1e-7); bf16 is the
``mixed_bfloat16`` policy.

Steps are marked by :class:`BenchSteps`, not by :class:`greenprof.hooks.keras.
GreenprofCallback`: the bench needs each step's loss (time to a target loss), which
that callback does not record. Reading the loss at every batch end makes Keras's
callbacks synchronous, as every other variant reads its loss every step.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras

from greenprof.bench.spec import Passes
from greenprof.bench.variants import Variant
from greenprof.bench.workloads import Batches, Workload
from greenprof.marks import StepAPI

LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7


class PositionalEmbedding(keras.layers.Layer):  # type: ignore[misc]
    """A learned position vector added to each token's embedding."""

    def __init__(self, seq_len: int, d_model: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.position = self.add_weight(
            shape=(seq_len, d_model),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            name="position",
        )

    def call(self, x: Any) -> Any:
        return x + keras.ops.cast(self.position, x.dtype)


def build(w: Workload) -> Any:
    """``w``'s model as a functional ``keras.Model``."""
    layers = keras.layers
    if w.kind == "mlp":
        inputs = keras.Input((w.features,))
        x = inputs
        for _ in range(w.depth):
            x = layers.Dense(w.hidden, activation="relu")(x)
    elif w.kind == "cnn":
        inputs = keras.Input(w.image)
        first, second = w.channels
        x = layers.Conv2D(first, 3, padding="same", activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(second, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
    else:
        inputs = keras.Input((w.seq_len,), dtype="int32")
        x = layers.Embedding(w.vocab, w.d_model)(inputs)
        x = PositionalEmbedding(w.seq_len, w.d_model)(x)
        for _ in range(w.layers):
            attended = layers.MultiHeadAttention(w.heads, w.d_model // w.heads)(x, x)
            x = layers.LayerNormalization(epsilon=1e-5)(layers.Add()([x, attended]))
            fed = layers.Dense(w.ff, activation="relu")(x)
            fed = layers.Dense(w.d_model)(fed)
            x = layers.LayerNormalization(epsilon=1e-5)(layers.Add()([x, fed]))
        x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(w.classes)(x)
    return keras.Model(inputs, outputs)


def parameter_count(w: Workload) -> int:
    return sum(math.prod(int(d) for d in v.shape) for v in build(w).trainable_weights)


def versions() -> dict[str, str]:
    out = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    elif keras.backend.backend() == "torch":
        import torch

        out["torch"] = torch.__version__
    elif keras.backend.backend() == "jax":
        import jax  # type: ignore[import-not-found]

        out["jax"] = str(jax.__version__)
    return out


def set_precision(precision: str) -> None:
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")


class BenchSteps(keras.callbacks.Callback):  # type: ignore[misc]
    """One greenprof step per batch, with that batch's loss; epoch 0 is the warm-up.

    Keras reports the running mean of the epoch's batch losses (equal batches weigh
    the same); the batch's own loss is recovered as ``k·mean_k − (k−1)·mean_(k−1)``.
    """

    def __init__(self, profiler: StepAPI, batch_size: int, passes: Passes) -> None:
        super().__init__()
        self._profiler = profiler
        self._batch_size = batch_size
        self._passes = passes
        self._measured_from = math.inf
        self._epoch = 0
        self._count = 0
        self._mean = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._profiler.epoch_begin(0 if epoch == 0 else 1)
        self._count = 0
        self._mean = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._passes.more(epoch + 1, time.monotonic() - self._measured_from):
            self.model.stop_training = True

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._count == 0 and self._measured_from == math.inf and self._epoch == 1:
            self._measured_from = time.monotonic()  # the measured window's first step
        self._profiler.step_begin()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {}).get("loss", float("nan")))
        self._count += 1
        loss = self._count * mean - (self._count - 1) * self._mean
        self._mean = mean
        self._profiler.step_end(self._batch_size, loss=loss)


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
    """``model.fit``, one epoch per pass over the pool (epoch 0 is the warm-up), stopped
    by :class:`BenchSteps` when the passes are done."""
    import numpy as np

    keras.utils.set_random_seed(seed)
    set_precision(precision)
    x = np.concatenate(batches.x)
    y = np.concatenate(batches.y)
    batch_size = len(batches.y[0])
    model = build(w)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE, epsilon=ADAM_EPSILON),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=passes.maximum,
        shuffle=False,
        verbose=0,
        callbacks=[BenchSteps(profiler, batch_size, passes)],
    )

"""Added cost per step of each framework adapter (script, not a test).

Each adapter runs the same tiny training loop with and without it, in interleaved
repetitions within one process; the figure is the median over repetitions of the
per-step time ratio (with / without), and the median added time per step. The target
is < 1 % on a 5 ms step: ``added µs / 5000 µs``.

    .venv/bin/python benchmarks/bench_hooks.py [--reps 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import greenprof
from greenprof.sensors.fake import FakeSensor

Loop = Callable[[bool, greenprof.Profiler], float]  # (with adapter?, profiler) -> s/step


def torch_loops(steps: int) -> dict[str, Loop]:
    import torch

    from greenprof.hooks import torch as hooks

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(32 * steps, 64), torch.randn(32 * steps, 1)),
        batch_size=32,
    )

    def train() -> float:
        start = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    def attach(enabled: bool, prof: greenprof.Profiler) -> float:
        if not enabled:
            return train()
        with hooks.attach(optimizer, prof):
            return train()

    def global_hook(enabled: bool, prof: greenprof.Profiler) -> float:
        if not enabled:
            return train()
        handle = hooks.install_global_hook(prof)
        try:
            return train()
        finally:
            handle.remove()

    return {"torch attach()": attach, "torch global hook (greenprof run)": global_hook}


def keras_loops(steps: int) -> dict[str, Loop]:
    import keras
    import numpy as np

    from greenprof.hooks.keras import GreenprofCallback

    x = np.random.rand(32 * steps, 64).astype("float32")
    y = np.random.rand(32 * steps, 1).astype("float32")
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)  # trace once

    def fit(enabled: bool, prof: greenprof.Profiler) -> float:
        callbacks = [GreenprofCallback(prof)] if enabled else []
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
        return (time.perf_counter() - start) / steps

    return {f"keras fit callback ({keras.backend.backend()})": fit}


def tensorflow_loops(steps: int) -> dict[str, Loop]:
    import tensorflow as tf

    from greenprof.hooks.tensorflow import wrap_step

    w = tf.Variable(tf.zeros((64, 1)))
    opt = tf.keras.optimizers.SGD(0.01)
    data = [(tf.random.normal((32, 64)), tf.random.normal((32, 1))) for _ in range(steps)]

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((x @ w - y) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, [w]), [w], strict=True))
        return loss

    step(*data[0])

    def loop(enabled: bool, prof: greenprof.Profiler) -> float:
        fn = wrap_step(step, prof) if enabled else step
        start = time.perf_counter()
        for x, y in data:
            fn(x, y)
        return (time.perf_counter() - start) / steps

    return {"tensorflow wrap_step": loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    loops: dict[str, Loop] = {}
    for factory in (torch_loops, keras_loops, tensorflow_loops):
        try:
            loops.update(factory(args.steps))
        except ImportError as exc:
            print(f"skipped {factory.__name__}: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        prof = greenprof.Profiler(
            "bench-hooks", db=Path(tmp) / "bench.db", sensors=[FakeSensor("cpu:0", 50.0)]
        )
        with prof:
            rows = []
            for name, loop in loops.items():
                loop(False, prof)  # warm up
                loop(True, prof)
                ratios, added, bases = [], [], []
                for rep in range(args.reps):
                    order = (False, True) if rep % 2 == 0 else (True, False)
                    times = {enabled: loop(enabled, prof) for enabled in order}
                    ratios.append(times[True] / times[False])
                    added.append(times[True] - times[False])
                    bases.append(times[False])
                rows.append(
                    (
                        name,
                        statistics.median(bases) * 1e6,
                        statistics.median(ratios),
                        statistics.median(added) * 1e6,
                    )
                )
    print(f"{'adapter':<40} {'step µs':>9} {'ratio':>7} {'added µs':>9} {'on 5 ms':>8}")
    for name, base_us, ratio, added_us in rows:
        print(f"{name:<40} {base_us:9.0f} {ratio:7.3f} {added_us:9.1f} {added_us / 5000:8.2%}")


if __name__ == "__main__":
    main()

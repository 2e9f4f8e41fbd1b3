"""Added cost per step of each framework adapter (script, not a test).

Each adapter runs the same tiny training loop with and without it, in interleaved
repetitions within one process; the figure is the median over repetitions of the
per-step time ratio (with / without), and the median added time per step. The target
is < 1 % on a 5 ms step: ``added µs / 5000 µs``.

    .venv/bin/python benchmarks/bench_hooks.py [--reps 7] [--steps 200]
        [--keras-backend torch] [--only keras]

Rows named "a step" / "a batch" are the adapter's own CPU time on the training thread
(best of 25 runs of 200 calls around a step that does nothing): robust to a loaded
machine, unlike the whole-loop rows, whose ratio is only meaningful on an idle one.
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

    # The hooks' own costs on the training thread, with the loader's and the optimizer's
    # own work left out (a prepared batch, an optimizer whose step does nothing): CPU time
    # per batch drawn (the DataLoader observer) and per optimizer step (the step hook),
    # best of 25 runs of 200, so that a loaded machine still gives a clean figure.
    prepared = (torch.zeros(32, 64), torch.zeros(32, 1))
    iterator = iter(loader)
    iterator._next_data = lambda: prepared

    class NoOp(torch.optim.Optimizer):
        def step(self, closure: object = None) -> None:
            return None

    bare = NoOp([torch.nn.Parameter(torch.zeros(1))], {})

    def best_per_item(run: Callable[[], None]) -> float:
        times = []
        for _ in range(25):
            start = time.thread_time()
            run()
            times.append(time.thread_time() - start)
        return min(times) / 200

    def draw() -> None:
        for _ in range(200):
            next(iterator)

    def step() -> None:
        for _ in range(200):
            bare.step()

    def per_batch(enabled: bool, prof: greenprof.Profiler) -> float:
        if not enabled:
            return best_per_item(draw)
        with hooks.attach(bare, prof):
            return best_per_item(draw)

    def per_step(install: Callable[[greenprof.Profiler], hooks.Handle]) -> Loop:
        def loop(enabled: bool, prof: greenprof.Profiler) -> float:
            if not enabled:
                return best_per_item(step)
            with install(prof):
                return best_per_item(step)

        return loop

    return {
        "torch attach()": attach,
        "torch global hook (greenprof run)": global_hook,
        "torch hooks: a DataLoader batch": per_batch,
        "torch attach(): an optimizer step": per_step(lambda prof: hooks.attach(bare, prof)),
        "torch global hook: an optimizer step": per_step(hooks.install_global_hook),
    }


def _best_per_item(run: Callable[[], None], items: int = 200) -> float:
    """CPU time of this thread per item, best of 25 runs: a loaded machine still gives a
    clean figure for work that runs on the training thread."""
    times = []
    for _ in range(25):
        start = time.thread_time()
        run()
        times.append(time.thread_time() - start)
    return min(times) / items


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

    # The callback's own cost on the training thread: its wrapper around a step function
    # that does nothing, called with one prepared batch as ``fit`` would call it.
    bare = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
    bare.compile(optimizer="sgd", loss="mse")
    bare.make_train_function()
    batch = (keras.ops.zeros((32, 64)), keras.ops.zeros((32, 1)))
    data = [batch] if keras.backend.backend() != "tensorflow" else None

    def call_200() -> None:
        function = bare.train_function
        for _ in range(200):
            function(data)

    def per_step(enabled: bool, prof: greenprof.Profiler) -> float:
        bare.train_function = lambda _data: None
        if not enabled:
            return _best_per_item(call_200)
        callback = GreenprofCallback(prof, samples=None if data else 32)
        callback.set_model(bare)
        callback.on_train_begin()
        try:
            return _best_per_item(call_200)
        finally:
            callback.on_train_end()

    backend = keras.backend.backend()
    return {
        f"keras fit callback ({backend})": fit,
        f"keras callback: a step ({backend})": per_step,
    }


def tensorflow_loops(steps: int) -> dict[str, Loop]:
    import tensorflow as tf

    from greenprof.hooks.tensorflow import wrap_step

    w = tf.Variable(tf.zeros((64, 1)))
    data = [(tf.random.normal((32, 64)), tf.random.normal((32, 1))) for _ in range(steps)]

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((x @ w - y) ** 2)
        w.assign_sub(0.01 * tape.gradient(loss, w))  # no tf.keras: Keras may be on torch
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
    parser.add_argument(
        "--keras-backend",
        choices=("tensorflow", "torch", "jax"),
        help="Keras's backend for the Keras rows (default: $KERAS_BACKEND, else tensorflow)",
    )
    parser.add_argument("--only", help="only adapters whose name contains this text")
    args = parser.parse_args()
    if args.keras_backend:
        os.environ["KERAS_BACKEND"] = args.keras_backend  # read when keras is first imported
    loops: dict[str, Loop] = {}
    for factory in (torch_loops, keras_loops, tensorflow_loops):
        try:
            loops.update(factory(args.steps))
        except ImportError as exc:
            print(f"skipped {factory.__name__}: {exc}")
    if args.only:
        loops = {name: loop for name, loop in loops.items() if args.only in name}
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

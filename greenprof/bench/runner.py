"""The bench protocol: which repeats run in which order, each in a fresh process.

Repeats are interleaved: repeat 0 of every variant, then repeat 1 of every variant (in
an order rotated by one each time), and so on, so that a drift of the machine (heat,
another job, a turbo budget) spreads over all variants instead of landing on one. Each
repeat is ``python -m greenprof.bench.worker`` with a timeout; a repeat that fails or
times out is reported and left out, never retried silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from greenprof.bench.spec import RepeatSpec, passes_for, worker_argv
from greenprof.bench.variants import Variant


@dataclass(frozen=True, slots=True)
class Protocol:
    """What a bench runs: every variant × workload × batch size × precision, repeated."""

    bench_id: str
    variants: tuple[Variant, ...]
    workloads: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    precisions: tuple[str, ...]
    repeats: int
    size: str
    steps: int
    """Measured steps per repeat (rounded up to whole passes over the pool)."""
    pool: int
    """Batches in the data pool; one pass over it is the warm-up."""
    min_window_s: float = 0.0
    """Lengthen a repeat's measured window, by whole passes, to at least this long."""
    seed: int = 0
    db: str | None = None
    country: str | None = None
    region: str | None = None


def plan(protocol: Protocol) -> list[RepeatSpec]:
    """The repeats in the order they run (interleaved, variant order rotated)."""
    specs = []
    count = len(protocol.variants)
    for repeat in range(protocol.repeats):
        order = [protocol.variants[(i + repeat) % count] for i in range(count)]
        for name in protocol.workloads:
            for batch_size in protocol.batch_sizes:
                for precision in protocol.precisions:
                    specs += [
                        RepeatSpec(
                            bench_id=protocol.bench_id,
                            variant=v.name,
                            workload=name,
                            size=protocol.size,
                            batch_size=batch_size,
                            precision=precision,
                            repeat=repeat,
                            pool=protocol.pool,
                            passes=passes_for(protocol.steps, protocol.pool),
                            seed=protocol.seed,
                            db=protocol.db,
                            country=protocol.country,
                            region=protocol.region,
                            min_window_s=protocol.min_window_s,
                        )
                        for v in order
                    ]
    return specs


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one repeat's process ended."""

    spec: RepeatSpec
    run_id: int | None
    wall_s: float
    error: str | None = None


Launch = Callable[..., "subprocess.CompletedProcess[str]"]


def worker_env(spec: RepeatSpec, v: Variant, env: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: ours, with the Keras backend, quiet TensorFlow logs and
    no end-of-run summary (the bench prints its own; a failing worker's last stderr lines
    must be its error)."""
    out = dict(env)
    out["GREENPROF_SUMMARY"] = "0"
    if v.keras_backend is not None:
        out["KERAS_BACKEND"] = v.keras_backend
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return out


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"


def run_one(
    spec: RepeatSpec,
    v: Variant,
    *,
    env: Mapping[str, str] = os.environ,
    timeout_s: float = 600.0,
    launch: Launch = subprocess.run,
    clock: Callable[[], float] = time.monotonic,
    python: str = sys.executable,
) -> Outcome:
    """Run one repeat in a fresh interpreter and read its run id from its stdout."""
    start = clock()
    try:
        done = launch(
            worker_argv(spec, python),
            env=worker_env(spec, v, env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(spec, None, clock() - start, f"timed out after {timeout_s:g} s")
    wall_s = clock() - start
    if done.returncode != 0:
        return Outcome(spec, None, wall_s, f"exit {done.returncode}: {_last_lines(done.stderr)}")
    for line in reversed(done.stdout.splitlines()):
        try:
            return Outcome(spec, int(json.loads(line)["run_id"]), wall_s)
        except (ValueError, KeyError, TypeError):
            continue
    return Outcome(
        spec, None, wall_s, f"no run id in the worker's output: {_last_lines(done.stdout)}"
    )


def run_all(
    specs: Sequence[RepeatSpec],
    variants: Mapping[str, Variant],
    *,
    progress: TextIO | None = sys.stderr,
    run: Callable[[RepeatSpec, Variant], Outcome] = run_one,
) -> list[Outcome]:
    """Run every repeat in order, one progress line each on ``progress``."""
    outcomes = []
    for index, spec in enumerate(specs, start=1):
        if progress is not None:
            progress.write(f"  [{index}/{len(specs)}] {spec.label} ...")
            progress.flush()
        outcome = run(spec, variants[spec.variant])
        outcomes.append(outcome)
        if progress is not None:
            result = f"run {outcome.run_id}" if outcome.error is None else outcome.error
            progress.write(f" {outcome.wall_s:.1f} s, {result}\n")
            progress.flush()
    return outcomes

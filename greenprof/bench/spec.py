"""One repeat of the bench: what a worker process runs, and its command line.

The runner builds a :class:`RepeatSpec` per repeat and turns it into the worker's
argv (:func:`worker_argv`); the worker parses it back (:func:`parse_argv`). One place
for both directions keeps them in step.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

WORKER_MODULE = "greenprof.bench.worker"

FAKE_SENSORS_ENV = "GREENPROF_BENCH_FAKE_SENSORS"
"""Tests set it to ``1``: the worker measures a simulated device instead of detecting
sensors, so tests never depend on RAPL being readable. Never set it for a real bench."""


MAX_PASSES = 1000
"""Passes a repeat never exceeds while it lengthens a short window (the runner's
timeout bounds it too)."""


@dataclass(frozen=True, slots=True)
class Passes:
    """How many passes over the pool a repeat trains: at least ``minimum`` (the warm-up
    included), then more whole passes while the measured window is shorter than
    ``min_window_s`` (a window of a few sensor updates measures little), at most
    ``maximum``."""

    minimum: int
    min_window_s: float = 0.0
    maximum: int = MAX_PASSES

    def more(self, done: int, window_s: float) -> bool:
        """Whether to train another pass after ``done`` passes, the measured window
        having lasted ``window_s`` so far."""
        if done < self.minimum:
            return True
        return window_s < self.min_window_s and done < self.maximum


@dataclass(frozen=True, slots=True)
class RepeatSpec:
    """One variant × workload × batch size × precision × repeat, in a fresh process.

    The model trains ``passes`` passes over a pool of ``pool`` batches (more while the
    measured window is shorter than ``min_window_s``): the first pass is the warm-up
    (epoch 0: compilation, tracing, allocator warm-up), the others are the measured
    window (epoch 1).
    """

    bench_id: str
    variant: str
    workload: str
    size: str
    batch_size: int
    precision: str
    repeat: int
    pool: int
    passes: int
    seed: int = 0
    db: str | None = None
    country: str | None = None
    region: str | None = None
    min_window_s: float = 0.0

    @property
    def plan(self) -> Passes:
        return Passes(self.passes, self.min_window_s, max(self.passes, MAX_PASSES))

    @property
    def warmup_steps(self) -> int:
        return self.pool

    @property
    def measured_steps(self) -> int:
        return self.pool * (self.passes - 1)

    @property
    def label(self) -> str:
        return (
            f"{self.variant} {self.workload} bs{self.batch_size} {self.precision} "
            f"repeat {self.repeat}"
        )


def passes_for(steps: int, pool: int) -> int:
    """Passes over a pool of ``pool`` batches for at least ``steps`` measured steps,
    plus the warm-up pass."""
    return 1 + max(1, math.ceil(steps / pool))


def worker_argv(spec: RepeatSpec, python: str = sys.executable) -> list[str]:
    """The command that runs ``spec`` in a fresh interpreter."""
    argv = [
        python,
        "-m",
        WORKER_MODULE,
        "--bench",
        spec.bench_id,
        "--variant",
        spec.variant,
        "--workload",
        spec.workload,
        "--size",
        spec.size,
        "--batch-size",
        str(spec.batch_size),
        "--precision",
        spec.precision,
        "--repeat",
        str(spec.repeat),
        "--pool",
        str(spec.pool),
        "--passes",
        str(spec.passes),
        "--seed",
        str(spec.seed),
        "--min-window",
        repr(spec.min_window_s),
    ]
    for flag, value in (("--db", spec.db), ("--country", spec.country), ("--region", spec.region)):
        if value is not None:
            argv += [flag, value]
    return argv


def parse_argv(argv: Sequence[str]) -> RepeatSpec:
    """The :class:`RepeatSpec` of a worker's arguments (what :func:`worker_argv` wrote)."""
    parser = argparse.ArgumentParser(prog=WORKER_MODULE)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--precision", required=True)
    parser.add_argument("--repeat", type=int, required=True)
    parser.add_argument("--pool", type=int, required=True)
    parser.add_argument("--passes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-window", type=float, default=0.0)
    parser.add_argument("--db")
    parser.add_argument("--country")
    parser.add_argument("--region")
    args = parser.parse_args(list(argv))
    return RepeatSpec(
        bench_id=args.bench,
        variant=args.variant,
        workload=args.workload,
        size=args.size,
        batch_size=args.batch_size,
        precision=args.precision,
        repeat=args.repeat,
        pool=args.pool,
        passes=args.passes,
        seed=args.seed,
        db=args.db,
        country=args.country,
        region=args.region,
        min_window_s=args.min_window,
    )

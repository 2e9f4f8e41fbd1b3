"""``greenprof bench``: train the same workloads in each framework variant, compare.

Heavy work happens in worker processes (:mod:`greenprof.bench.worker`); this module
parses options, skips variants whose framework is missing (with the install line),
runs the protocol (:mod:`greenprof.bench.runner`) and prints the summary read back
from the store (:mod:`greenprof.bench.results`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greenprof import cliargs
from greenprof.bench.variants import PRECISIONS, VARIANT_NAMES, FindSpec
from greenprof.bench.workloads import SIZES, WORKLOADS
from greenprof.cliargs import add_db_argument, add_json_argument
from greenprof.textsafe import terminal_lines, terminal_text


@dataclass(frozen=True, slots=True)
class Defaults:
    """The protocol's defaults, full and ``--quick``."""

    workloads: tuple[str, ...] = WORKLOADS
    repeats: int = 5
    steps: int = 100
    pool: int = 10
    timeout_s: float = 600.0
    min_window_s: float = 2.0


FULL = Defaults()
QUICK = Defaults(workloads=("mlp",), repeats=2, steps=10, pool=5, timeout_s=150.0)
"""``--quick``: one small workload, two repeats, few steps (≤ 3 min on 2 CPU cores)."""


def _choices(allowed: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
        wrong = [i for i in items if i not in allowed]
        if wrong or not items:
            raise argparse.ArgumentTypeError(
                f"expected {what} from {', '.join(allowed)} (comma-separated), got {text!r}"
            )
        return items

    return parse


_BATCH = cliargs.integer(1, 65536, what="a batch size")


def _batch_sizes(text: str) -> tuple[int, ...]:
    return tuple(dict.fromkeys(_BATCH(i) for i in text.split(",") if i.strip())) or (_BATCH(text),)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``bench`` to the command line."""
    bench = subparsers.add_parser(
        "bench",
        help="train the same models in PyTorch, Keras and TensorFlow and compare their energy",
        description="Trains the same workloads (MLP, small CNN, small Transformer encoder; "
        "same architecture, initialisation, synthetic data, optimizer, batch size and "
        "precision) in each available framework variant, each repeat in a fresh process "
        "profiled as a normal run tagged bench=<id>, and prints J/sample, samples/s, "
        "warm-up energy, time and energy to a target loss and gCO2e with 95 %% confidence "
        "intervals. See docs/bench.md.",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="the MLP only, 2 repeats, 10 measured steps (minutes on a CPU machine)",
    )
    bench.add_argument(
        "--workloads",
        type=_choices(WORKLOADS, "workloads"),
        default=None,
        help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)",
    )
    bench.add_argument(
        "--variants",
        type=_choices(VARIANT_NAMES, "variants"),
        default=VARIANT_NAMES,
        help=f"comma-separated, from {','.join(VARIANT_NAMES)} (default: all available)",
    )
    bench.add_argument(
        "--repeats", type=cliargs.integer(1, 1000), default=None, help="repeats (5; quick 2)"
    )
    bench.add_argument(
        "--steps",
        type=cliargs.integer(1, 10**7),
        default=None,
        help="measured steps per repeat (100; quick 10), after one warm-up pass",
    )
    bench.add_argument(
        "--min-window",
        type=cliargs.real(0.0),
        default=None,
        metavar="SECONDS",
        help="train more passes until the measured window lasts this long (2; 0 = no)",
    )
    bench.add_argument(
        "--pool",
        type=cliargs.integer(1, 10_000),
        default=None,
        help="distinct batches of synthetic data, cycled; one pass is the warm-up (10; quick 5)",
    )
    bench.add_argument(
        "--batch-size",
        type=_batch_sizes,
        default=(64,),
        help="batch sizes to sweep, comma-separated (64)",
    )
    bench.add_argument(
        "--precision",
        type=_choices(PRECISIONS, "precisions"),
        default=("fp32",),
        help="precisions to sweep: fp32,bf16 (fp32)",
    )
    bench.add_argument(
        "--size", choices=SIZES, default="cpu", help="model and data size (cpu; tiny is for tests)"
    )
    bench.add_argument(
        "--timeout",
        type=cliargs.real(0.0, exclusive_minimum=True),
        default=None,
        help="seconds one repeat may take before it is stopped (600; quick 150)",
    )
    bench.add_argument(
        "--id",
        dest="bench_id",
        type=cliargs.text,
        default=None,
        help="the bench id (default: the start time, UTC)",
    )
    bench.add_argument("--country", help="ISO 3166-1 alpha-3 code of the grid, e.g. DEU")
    bench.add_argument("--region", help="cloud region or grid zone, e.g. europe-west1")
    add_db_argument(bench)
    add_json_argument(bench)
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    return run_bench(args)


def run_bench(
    args: argparse.Namespace,
    *,
    find_spec: FindSpec | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """The ``bench`` verb; ``find_spec`` decides which frameworks exist (tests)."""
    import importlib.util
    import os

    from greenprof.bench import runner, table
    from greenprof.bench.results import load, summarize
    from greenprof.bench.variants import select
    from greenprof.errors import ConfigError
    from greenprof.store.reader import RunStore

    defaults = QUICK if args.quick else FULL
    selection = select(args.variants, find_spec or importlib.util.find_spec)
    skipped = [line for _, line in selection.skipped]
    for line in skipped:
        print(f"greenprof bench: {terminal_text(line)}", file=sys.stderr)
    if not selection.run:
        raise ConfigError("no variant can run here: install one of the frameworks above")
    bench_id = args.bench_id or time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall_clock()))
    workloads = args.workloads or defaults.workloads
    protocol = runner.Protocol(
        bench_id=bench_id,
        variants=selection.run,
        workloads=tuple(str(w) for w in workloads),
        batch_sizes=args.batch_size,
        precisions=args.precision,
        repeats=args.repeats or defaults.repeats,
        size=args.size,
        steps=args.steps or defaults.steps,
        pool=args.pool or defaults.pool,
        min_window_s=defaults.min_window_s if args.min_window is None else args.min_window,
        db=args.db,
        country=args.country,
        region=args.region,
    )
    specs = runner.plan(protocol)
    timeout_s = args.timeout or defaults.timeout_s
    print(
        f"greenprof bench {terminal_text(bench_id)}: {len(specs)} repeats "
        f"({', '.join(v.name for v in selection.run)}), each in a fresh process",
        file=sys.stderr,
    )
    start = clock()
    variants = {v.name: v for v in selection.run}
    outcomes = runner.run_all(
        specs,
        variants,
        run=lambda spec, v: runner.run_one(spec, v, env=os.environ, timeout_s=timeout_s),
    )
    failed = [o for o in outcomes if o.error is not None]
    with RunStore(args.db) as store:
        summaries = summarize(load(store, bench_id))
    print(
        f"greenprof bench {terminal_text(bench_id)}: {len(outcomes) - len(failed)} of "
        f"{len(outcomes)} repeats done in {clock() - start:.0f} s"
        + (f"; {len(failed)} failed (listed above)" if failed else ""),
        file=sys.stderr,
    )
    if args.json:
        from greenprof.jsonout import dumps

        print(dumps(table.document(bench_id, summaries, skipped)))
    else:
        print(terminal_lines(table.summary_lines(bench_id, summaries)))
        print(
            f"\nEvery repeat is a run tagged bench={terminal_text(bench_id)}: "
            f"`greenprof report --bench {terminal_text(bench_id)}`, `greenprof runs`.",
            file=sys.stderr,
        )
    return 0 if summaries else 1

"""Cost of step attribution with error bounds, on the sampler thread (issue 14, item 3).

1. Live: ~1 ms contiguous steps, a 100 ms counter with power polled at 10 Hz, each step
   added 20 ms after its end and ``pop_ready()`` after every reading (as the sampler
   does): µs per step per device, the cost of the readings alone subtracted.
2. ``stop()``: N back-to-back steps still pending in the last counter interval when the
   run ends, then ``StepAttributor.finish()`` and ``StepLedger.finish()`` (what
   ``Session.close`` calls): µs per pending step.

No real time passes (synthetic readings); the CPU time of this process is measured
(``time.process_time``: the figure stays meaningful on a loaded machine, and it is what
the sampler thread would spend), best of ``--repeats``. Compare before/after on
one machine at one load: ``GREENPROF_CHECKOUT=/path/to/other/checkout python
benchmarks/bench_attribution.py`` measures another checkout's greenprof.

Run: ``python benchmarks/bench_attribution.py [--quick]`` (about a minute; --quick 20 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Benchmark the checkout this file lives in (or GREENPROF_CHECKOUT), whatever the venv has.
sys.path.insert(0, os.environ.get("GREENPROF_CHECKOUT", str(Path(__file__).resolve().parents[1])))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import live_cost, make_trace

from greenprof.energy import StepAttributor
from greenprof.ledger import END, StepLedger
from greenprof.records import Reading

POWER_W = 250.0


def live_us_per_step(duration_s: float, repeats: int) -> float:
    """Per step per device, readings' own cost subtracted (bench_accuracy's throughput)."""
    trace = make_trace("cost", 7, duration_s=duration_s, lengths_s=(0.8e-3, 1.2e-3), gap_prob=0.0)
    clock = time.process_time
    total_s = min(live_cost(trace, timer=clock)[0] for _ in range(repeats))
    readings_s = min(live_cost(trace, with_steps=False, timer=clock)[0] for _ in range(repeats))
    return 1e6 * (total_s - readings_s) / len(trace.starts_s)


def _counter(until_s: float, from_s: float = 0.0) -> list[Reading]:
    """A 100 ms counter at constant power with instantaneous power, polled at 10 Hz (+3 ms)."""
    times = [0.003 + 0.1 * k for k in range(int(until_s / 0.1) + 1)]
    return [
        Reading("gpu:0", t, POWER_W * (0.1 * int(t / 0.1)), POWER_W) for t in times if t >= from_s
    ]


def _burst(pending: int, start_s: float) -> list[tuple[float, float]]:
    """``pending`` back-to-back 5 µs steps from ``start_s`` (inside one counter interval)."""
    return [(start_s + 5e-6 * k, start_s + 5e-6 * (k + 1)) for k in range(pending)]


def attributor_finish_us(pending: int, repeats: int) -> float:
    best_s = float("inf")
    for _ in range(repeats):
        attributor = StepAttributor(update_period_s=0.1)
        for reading in _counter(2.0):
            attributor.add_reading(reading)
            attributor.pop_ready()
        for k, (a, b) in enumerate(_burst(pending, 1.95)):
            attributor.add_step(k, a, b)
        for reading in _counter(2.25, from_s=2.0):  # stop()'s settle: a few more polls
            attributor.add_reading(reading)
        t0 = time.process_time()
        done = attributor.pop_ready() + attributor.finish()
        best_s = min(best_s, time.process_time() - t0)
        assert len(done) == pending
    return 1e6 * best_s / pending


def ledger_finish_us(pending: int, repeats: int) -> float:
    best_s = float("inf")
    for _ in range(repeats):
        ledger = StepLedger(["gpu:0"], origin_s=0.0, update_periods_s={"gpu:0": 0.1})
        for reading in _counter(2.0):
            ledger.add_readings([reading])
        ledger.add_marks([(END, round(b * 1e9), 1, None) for _, b in _burst(pending, 1.95)])
        for reading in _counter(2.25, from_s=2.0):
            ledger.add_readings([reading])
        t0 = time.process_time()
        done = ledger.pop_finished() + ledger.finish()
        best_s = min(best_s, time.process_time() - t0)
        assert len(done) == pending
    return 1e6 * best_s / pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    duration_s, pending = (20.0, 26_000) if args.quick else (60.0, 100_000)
    print(
        f"live, ~1 ms steps, {duration_s:.0f} s: {live_us_per_step(duration_s, args.repeats):.1f}"
        " µs per step per device (readings' own cost subtracted)"
    )
    print(
        f"StepAttributor.finish() with {pending:,} pending steps: "
        f"{attributor_finish_us(pending, args.repeats):.1f} µs per step"
    )
    print(
        f"StepLedger.finish() with {pending:,} pending steps (1 device): "
        f"{ledger_finish_us(pending, args.repeats):.1f} µs per step"
    )


if __name__ == "__main__":
    main()

"""Recorded input sequences for the attributor, and the numbers the pre-package code gave.

``data/attributor_replay.json`` holds, per scenario, every input in live order (readings,
steps, queries) and every output of the ``greenprof/energy.py`` of commit e770e82 (before
it became a package). :func:`replay` feeds the inputs to today's attributor and returns the
outputs in the same shape, so a test can demand bit-for-bit equality wherever the
algorithm did not change. Regenerate only when an algorithm change is intended (and say
so in the commit): ``.venv/bin/python -m tests.energy.replay``.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprof.energy import StepAttributor
from greenprof.records import Reading

DATA = Path(__file__).parent / "data" / "attributor_replay.json"

Event = list[Any]
"""``["r", t_s, energy_j|None, power_w|None]`` a reading then ``pop_ready``;
``["s", step, start_s, end_s]`` a step; ``["q", t0_s, t1_s]`` ``energy_between`` plus the
detected period and total; ``["f"]`` ``pop_ready`` then ``finish`` twice."""


def _trace(
    seed: int,
    *,
    duration_s: float,
    lengths_s: tuple[float, float],
    gap_prob: float,
    period_s: float,
    poll_s: float = 0.1,
    counter: bool = True,
    power: bool = True,
    reset_at_s: float | None = None,
    delay_s: float = 0.02,
    odd_steps: bool = False,
) -> list[Event]:
    """A synthetic run (a power level per step, idle in gaps) as live-order events."""
    rng = random.Random(seed)
    steps: list[tuple[int, float, float]] = []
    breaks, powers = [0.0], [90.0]
    t, level = 0.5, 250.0
    lo, hi = math.log(lengths_s[0]), math.log(lengths_s[1])
    while t < duration_s - 0.5:
        length = math.exp(rng.uniform(lo, hi))
        level = min(400.0, max(150.0, level * (1.25 if rng.random() < 0.5 else 0.8)))
        breaks.append(t)
        powers.append(level)
        steps.append((len(steps), t, t + length))
        t += length
        if rng.random() < gap_prob:
            breaks.append(t)
            powers.append(90.0)
            t += rng.uniform(0.0, 0.3)
    breaks.append(t)
    powers.append(90.0)
    breaks.append(t + 0.5)
    cumulative = [0.0]
    for k in range(len(breaks) - 1):
        cumulative.append(cumulative[-1] + powers[k] * (breaks[k + 1] - breaks[k]))

    def energy_at(x: float) -> float:
        k = max(0, min(bisect_right(breaks, x) - 1, len(breaks) - 2))
        t0, t1 = breaks[k], breaks[k + 1]
        return cumulative[k] + (cumulative[k + 1] - cumulative[k]) * (x - t0) / (t1 - t0)

    if odd_steps:  # overlaps (clipped), zero-length steps, one beyond the last reading
        steps = [
            (i, start - (0.05 if i % 7 == 3 else 0.0), start if i % 11 == 5 else end)
            for i, start, end in steps
        ]
        steps.append((len(steps), t + 1.0, t + 1.5))
    phase_s = rng.uniform(0.0, period_s) if period_s > 0 else 0.0
    events: list[Event] = []
    s, n, poll, offset = 0, 0, 0.01, 1e6
    while poll < breaks[-1]:
        while s < len(steps) and steps[s][2] + delay_s <= poll:
            events.append(["s", *steps[s]])
            s += 1
        updated = phase_s + math.floor((poll - phase_s) / period_s) * period_s if period_s else poll
        raw = math.floor(energy_at(max(updated, 0.0)) / 1e-3) * 1e-3
        if reset_at_s is not None and poll >= reset_at_s:
            offset = -energy_at(reset_at_s) + 5.0
        k = min(bisect_right(breaks, poll) - 1, len(powers) - 1)
        events.append(["r", poll, raw + offset if counter else None, powers[k] if power else None])
        n += 1
        if n % 40 == 0:
            events.append(["q", poll - 3.0, poll - 1.0])
        poll += poll_s * rng.uniform(0.8, 1.2)
    events += [["s", *step] for step in steps[s:]]
    events.append(["q", steps[0][1], steps[-1][2]])
    events.append(["f"])
    return events


SCENARIOS: dict[str, Callable[[], list[Event]]] = {
    "100 ms counter and power, 1-3 s steps, gaps": lambda: _trace(
        1, duration_s=60.0, lengths_s=(1.0, 3.0), gap_prob=0.2, period_s=0.1
    ),
    "100 ms counter only, 5-50 ms steps": lambda: _trace(
        2, duration_s=40.0, lengths_s=(0.005, 0.05), gap_prob=0.02, period_s=0.1, power=False
    ),
    "100 ms counter and power, 5-50 ms steps": lambda: _trace(
        3, duration_s=30.0, lengths_s=(0.005, 0.05), gap_prob=0.0, period_s=0.1
    ),
    "20 ms counter, mixed 20 ms - 3 s steps": lambda: _trace(
        4, duration_s=40.0, lengths_s=(0.02, 3.0), gap_prob=0.2, period_s=0.02
    ),
    "continuous counter": lambda: _trace(
        5, duration_s=30.0, lengths_s=(0.3, 2.0), gap_prob=0.2, period_s=0.0, power=False
    ),
    "power only": lambda: _trace(
        6, duration_s=30.0, lengths_s=(0.05, 2.0), gap_prob=0.2, period_s=0.1, counter=False
    ),
    "reset, overlaps, empty and late steps": lambda: _trace(
        7,
        duration_s=40.0,
        lengths_s=(0.05, 2.0),
        gap_prob=0.2,
        period_s=0.1,
        reset_at_s=17.0,
        delay_s=0.7,
        odd_steps=True,
    ),
    "100 ms counter polled every 250 ms": lambda: _trace(
        8, duration_s=40.0, lengths_s=(0.5, 3.0), gap_prob=0.2, period_s=0.1, poll_s=0.25
    ),
}


def replay(events: list[Event], attributor: StepAttributor) -> list[Any]:
    """Feed ``events`` in order; every output, as plain JSON-able values."""
    out: list[Any] = []

    def energies(results: list[Any]) -> list[Any]:
        return [[r.step, r.energy_j, r.interpolated] for r in results]

    for event in events:
        kind = event[0]
        if kind == "r":
            attributor.add_reading(Reading("gpu:0", event[1], event[2], event[3]))
            ready = attributor.pop_ready()
            if ready:
                out.append(["ready", energies(ready)])
        elif kind == "s":
            attributor.add_step(event[1], event[2], event[3])
        elif kind == "q":
            between = attributor.energy_between(event[1], event[2])
            out.append(["q", between, attributor.update_period_s, attributor.total_energy_j])
        else:
            out.append(["ready", energies(attributor.pop_ready())])
            out.append(["finish", energies(attributor.finish())])
            out.append(["finish", energies(attributor.finish())])
    return out


def load() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(DATA.read_text())
    return data


def record() -> None:
    """Write the data file with the current code's outputs."""
    data = {}
    for name, make in SCENARIOS.items():
        events = make()
        data[name] = {"events": events, "outputs": replay(events, StepAttributor())}
    DATA.write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    record()

"""A tiny simulator: piecewise-constant power read through a stale counter (and power)."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass

from greenprof.energy import StepAttributor, StepEnergy
from greenprof.records import Reading


@dataclass
class Sim:
    """Piecewise-constant power (a level per step, idle in gaps) read through a stale counter."""

    steps: list[tuple[int, float, float]]
    readings: list[Reading]
    breaks_s: list[float]
    cumulative_j: list[float]

    def energy_at(self, t_s: float) -> float:
        k = max(0, min(bisect_right(self.breaks_s, t_s) - 1, len(self.breaks_s) - 2))
        t0, t1 = self.breaks_s[k], self.breaks_s[k + 1]
        e0, e1 = self.cumulative_j[k], self.cumulative_j[k + 1]
        return e0 + (e1 - e0) * (t_s - t0) / (t1 - t0)

    def truth(self, start_s: float, end_s: float) -> float:
        return self.energy_at(end_s) - self.energy_at(start_s)

    def naive(self, start_s: float, end_s: float) -> float:
        """Linear interpolation of the counter between poll times."""
        times = [r.time_s for r in self.readings]
        values = [r.energy_j or 0.0 for r in self.readings]

        def at(t_s: float) -> float:
            k = max(0, min(bisect_right(times, t_s) - 1, len(times) - 2))
            t0, t1 = times[k], times[k + 1]
            return values[k] + (values[k + 1] - values[k]) * (t_s - t0) / (t1 - t0)

        return at(end_s) - at(start_s)


def simulate(
    lengths_s: list[float],
    levels_w: list[float],
    *,
    gaps_s: list[float] | None = None,
    period_s: float = 0.1,
    phase_s: float = 0.037,
    poll_s: float = 0.1,
    dither: float = 0.2,
    seed: int = 0,
    idle_w: float = 80.0,
    counter: bool = True,
    power: bool = True,
    lead_s: float = 0.5,
    tail_s: float = 0.5,
) -> Sim:
    rng = random.Random(seed)
    steps, breaks, powers = [], [0.0], []
    t = lead_s
    powers.append(idle_w)
    for i, (length, level) in enumerate(zip(lengths_s, levels_w, strict=True)):
        breaks.append(t)
        powers.append(level)
        steps.append((i, t, t + length))
        t += length
        gap = gaps_s[i] if gaps_s else 0.0
        if gap > 0:
            breaks.append(t)
            powers.append(idle_w)
            t += gap
    breaks.append(t)
    powers.append(idle_w)
    breaks.append(t + tail_s)
    cumulative = [0.0]
    for k in range(len(breaks) - 1):
        cumulative.append(cumulative[-1] + powers[k] * (breaks[k + 1] - breaks[k]))
    sim = Sim(steps, [], breaks, cumulative)
    poll = 0.01
    while poll < breaks[-1]:
        if period_s > 0:
            updated = phase_s + math.floor((poll - phase_s) / period_s) * period_s
        else:
            updated = poll
        k = bisect_right(breaks, poll) - 1
        sim.readings.append(
            Reading(
                "gpu:0",
                poll,
                1000.0 + sim.energy_at(max(updated, 0.0)) if counter else None,
                powers[min(k, len(powers) - 1)] if power else None,
            )
        )
        poll += poll_s * rng.uniform(1 - dither, 1 + dither)
    return sim


def run(sim: Sim, **kwargs: float) -> tuple[list[StepEnergy], StepAttributor]:
    """Feed readings and steps in live order; each step arrives just after it ends."""
    attributor = StepAttributor(**kwargs)
    out: list[StepEnergy] = []
    s = 0
    for reading in sim.readings:
        while s < len(sim.steps) and sim.steps[s][2] <= reading.time_s:
            attributor.add_step(*sim.steps[s])
            s += 1
        attributor.add_reading(reading)
        out += attributor.pop_ready()
    for step in sim.steps[s:]:
        attributor.add_step(*step)
    return out + attributor.finish(), attributor


def levels_25pct(n: int, seed: int) -> list[float]:
    """Power levels changing by ±25 % from step to step."""
    rng = random.Random(seed)
    levels, p = [], 250.0
    for _ in range(n):
        p = min(400.0, max(150.0, p * (1.25 if rng.random() < 0.5 else 0.8)))
        levels.append(p)
    return levels

"""Accuracy and throughput of step attribution (greenprof.energy) on synthetic traces.

Ground truth is analytic: piecewise-constant power per step (and a different power in
the gaps between steps). A stale counter is simulated directly: it updates every
``update_period_s`` with a random phase, and a poll returns the value at the last update.
Polls come every ~100 ms with ±20 % dither, as the sampler does. No real time passes.

The harsh conditions of issue 14 (``_conditions.py``) print greenprof vs naive vs truth and
the coverage of the stated per-step uncertainty (share of steps whose true error is within
it; the target is >= 95 % in every condition).

A warm-up section compares the first 20 s of runs with and without the sensor's declared
update period (the update lattice's prior), including declared periods that are wrong.

Run: ``python benchmarks/bench_accuracy.py [--quick]`` (prints tables; a few minutes, the
harsh-condition table most of them).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from _conditions import coverage_table

from greenprof.energy import StepAttributor, StepEnergy, counter_delta
from greenprof.energy.lattice import UpdateLattice
from greenprof.records import Reading

WARM_UP_S = 10.0
"""Until the counter's update lattice is detected (~3-10 s), knots sit at poll times."""


@dataclass
class Trace:
    """A synthetic run: step intervals, polled readings and the true energies."""

    name: str
    starts_s: np.ndarray
    ends_s: np.ndarray
    poll_s: np.ndarray
    energy_j: np.ndarray | None  # raw counter at each poll (None: power only)
    power_w: np.ndarray | None  # instantaneous power at each poll
    truth_j: np.ndarray  # true energy of each step
    breaks_s: np.ndarray  # knots of the true cumulative energy curve
    cumulative_j: np.ndarray
    phase_s: float = 0.0  # of the counter's update lattice

    def true_energy(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        return np.interp(t1_s, self.breaks_s, self.cumulative_j) - np.interp(
            t0_s, self.breaks_s, self.cumulative_j
        )

    def readings(self) -> list[Reading]:
        out = []
        for i, t_s in enumerate(self.poll_s):
            e = None if self.energy_j is None else float(self.energy_j[i])
            p = None if self.power_w is None else float(self.power_w[i])
            out.append(Reading("dev:0", float(t_s), e, p))
        return out


def step_layout(
    rng: np.random.Generator, duration_s: float, lengths_s: tuple[float, float], gap_prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """Step intervals with log-uniform lengths; with probability gap_prob a 0-300 ms gap."""
    starts, ends = [], []
    t = 0.5
    lo, hi = np.log(lengths_s[0]), np.log(lengths_s[1])
    while t < duration_s - 0.5:
        length = float(np.exp(rng.uniform(lo, hi)))
        starts.append(t)
        ends.append(t + length)
        t += length
        if rng.random() < gap_prob:
            t += float(rng.uniform(0.0, 0.3))
    return np.array(starts), np.array(ends)


def power_levels(rng: np.random.Generator, n: int, base_w: float = 250.0) -> np.ndarray:
    """Each step's power differs from the previous one's by ±25 % (kept in 150-400 W)."""
    levels = np.empty(n)
    p = base_w
    for i in range(n):
        p *= 1.25 if rng.random() < 0.5 else 0.8
        p = float(np.clip(p, 150.0, 400.0))
        levels[i] = p
    return levels


def make_trace(
    name: str,
    seed: int,
    *,
    duration_s: float = 120.0,
    lengths_s: tuple[float, float] = (1.0, 3.0),
    gap_prob: float = 0.2,
    update_period_s: float = 0.1,
    poll_s: float = 0.1,
    dither: float = 0.2,
    counter: bool = True,
    report_power: bool = True,
    quantum_j: float = 1e-3,
    idle_w: float = 90.0,
) -> Trace:
    rng = np.random.default_rng(seed)
    starts, ends = step_layout(rng, duration_s, lengths_s, gap_prob)
    levels = power_levels(rng, len(starts))
    # true power: step level inside steps, idle in gaps; cumulative energy is piecewise linear
    edges = np.unique(np.concatenate([[0.0], starts, ends, [duration_s]]))
    mids = 0.5 * (edges[:-1] + edges[1:])
    k = np.searchsorted(ends, mids, side="right")
    inside = (k < len(starts)) & (starts[np.minimum(k, len(starts) - 1)] <= mids)
    seg_power = np.where(inside, levels[np.minimum(k, len(starts) - 1)], idle_w)
    cumulative = np.concatenate([[0.0], np.cumsum(seg_power * np.diff(edges))])

    polls = [0.01]
    while polls[-1] < duration_s - 0.05:
        polls.append(polls[-1] + poll_s * rng.uniform(1 - dither, 1 + dither))
    poll = np.array(polls[:-1])
    if update_period_s > 0:
        phase = rng.uniform(0, update_period_s)
        last_update = phase + np.floor((poll - phase) / update_period_s) * update_period_s
        last_update = np.maximum(last_update, 0.0)
    else:
        phase, last_update = 0.0, poll
    energy = np.floor(np.interp(last_update, edges, cumulative) / quantum_j) * quantum_j
    pk = np.searchsorted(edges, poll, side="right") - 1
    power = seg_power[np.clip(pk, 0, len(seg_power) - 1)]
    truth = np.interp(ends, edges, cumulative) - np.interp(starts, edges, cumulative)
    return Trace(
        name,
        starts,
        ends,
        poll,
        energy + 1e6 if counter else None,
        power if report_power else None,
        truth,
        edges,
        cumulative,
        phase,
    )


def attribute(
    trace: Trace, *, delay_s: float = 0.02, declared_s: float | None = None
) -> tuple[list[StepEnergy], StepAttributor, float]:
    """Feed readings and steps in live order (a step arrives delay_s after its end)."""
    attributor = StepAttributor(update_period_s=declared_s)
    readings = trace.readings()
    out: list[StepEnergy] = []
    s = 0
    t0 = time.perf_counter()
    for reading in readings:
        while s < len(trace.ends_s) and trace.ends_s[s] + delay_s <= reading.time_s:
            attributor.add_step(s, float(trace.starts_s[s]), float(trace.ends_s[s]))
            s += 1
        attributor.add_reading(reading)
        out += attributor.pop_ready()
    for i in range(s, len(trace.ends_s)):
        attributor.add_step(i, float(trace.starts_s[i]), float(trace.ends_s[i]))
    out += attributor.pop_ready()
    out += attributor.finish()
    return out, attributor, time.perf_counter() - t0


def naive(trace: Trace) -> np.ndarray:
    """Baseline: linear interpolation of the cumulative counter between poll times."""
    if trace.energy_j is None:
        assert trace.power_w is not None
        dt = np.diff(trace.poll_s)
        cum = np.concatenate(
            [[0.0], np.cumsum(0.5 * (trace.power_w[1:] + trace.power_w[:-1]) * dt)]
        )
    else:
        cum = trace.energy_j
    return np.interp(trace.ends_s, trace.poll_s, cum) - np.interp(trace.starts_s, trace.poll_s, cum)


def windows(trace: Trace, window_s: float = 1.0) -> Iterator[tuple[int, int]]:
    """Index ranges of consecutive steps spanning at least window_s each."""
    i = 0
    n = len(trace.starts_s)
    while i < n:
        j = i
        while j < n and trace.ends_s[j] - trace.starts_s[i] < window_s:
            j += 1
        if j == n:
            return
        yield i, j + 1
        i = j + 1


def errors_pct(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return 100.0 * np.abs(estimate - truth) / np.maximum(truth, 1e-12)


def summary(values: np.ndarray) -> str:
    if len(values) == 0:
        return "      -       -       -"
    return f"{np.median(values):7.3f} {np.percentile(values, 95):7.3f} {np.max(values):7.3f}"


def report(trace: Trace, *, declared_s: float | None = None) -> None:
    results, attributor, elapsed_s = attribute(trace, declared_s=declared_s)
    assert [r.step for r in results] == list(range(len(trace.starts_s))), "each step once, in order"
    est = np.array([r.energy_j for r in results])
    base = naive(trace)
    durations = trace.ends_s - trace.starts_s
    long = durations >= 1.0
    print(f"\n## {trace.name}")
    print(
        f"steps {len(est)}, readings {len(trace.poll_s)}, detected update period "
        f"{attributor.update_period_s}, interpolated flags {sum(r.interpolated for r in results)}"
    )
    print(f"{'':34s} {'median':>7s} {'p95':>7s} {'max':>7s}   (% error)")
    if long.any():
        truth = trace.truth_j[long]
        print(f"{'per step >= 1 s     greenprof':34s} {summary(errors_pct(est[long], truth))}")
        print(f"{'per step >= 1 s     naive linear':34s} {summary(errors_pct(base[long], truth))}")
        warm = long & (trace.starts_s > WARM_UP_S)
        warm_err = errors_pct(est[warm], trace.truth_j[warm])
        print(f"{'  after warm-up     greenprof':34s} {summary(warm_err)}")
    wins = list(windows(trace))
    if wins:
        w_est = np.array([est[a:b].sum() for a, b in wins])
        w_base = np.array([base[a:b].sum() for a, b in wins])
        w_true = trace.true_energy(
            trace.starts_s[[a for a, _ in wins]], trace.ends_s[[b - 1 for _, b in wins]]
        )
        w_true_steps = np.array([trace.truth_j[a:b].sum() for a, b in wins])
        print(f"{'per >=1 s window    greenprof':34s} {summary(errors_pct(w_est, w_true_steps))}")
        print(
            f"{'per >=1 s window    naive linear':34s} {summary(errors_pct(w_base, w_true_steps))}"
        )
        warm_w = trace.starts_s[[a for a, _ in wins]] > WARM_UP_S
        warm_err = errors_pct(w_est[warm_w], w_true_steps[warm_w])
        print(f"{'  after warm-up     greenprof':34s} {summary(warm_err)}")
        del w_true
    contiguous_total = est.sum()
    true_total = trace.truth_j.sum()
    total_err = 100 * abs(contiguous_total - true_total) / true_total
    print(f"total over steps: error vs truth {total_err:.4f} %")
    # conservation: a contiguous run of steps sums to the curve's delta over it
    conservation = conservation_error_pct(trace)
    print(f"conservation (contiguous steps vs counter delta): {conservation:.2e} %")
    print(
        f"throughput: {len(trace.poll_s) / elapsed_s:,.0f} readings/s with "
        f"{len(est) / elapsed_s:,.0f} steps/s ({1e6 * elapsed_s / len(est):.1f} µs per step)"
    )


def conservation_error_pct(trace: Trace) -> float:
    """Contiguous steps (the trace's steps with their gaps closed): sum vs curve delta."""
    attributor = StepAttributor()
    readings = trace.readings()
    for reading in readings:
        attributor.add_reading(reading)
    times = np.concatenate([[trace.poll_s[0]], trace.ends_s[trace.ends_s < trace.poll_s[-1] - 0.3]])
    for i, (a, b) in enumerate(itertools.pairwise(times)):
        attributor.add_step(i, float(a), float(b))
    delta = attributor.energy_between(float(times[0]), float(times[-1]))  # before any trimming
    out = attributor.pop_ready() + attributor.finish()
    total = sum(r.energy_j for r in out)
    return 100 * abs(total - delta) / delta


def live_cost(
    trace: Trace,
    *,
    with_steps: bool = True,
    delay_s: float = 0.02,
    timer: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, int]:
    """Wall time of a live feed (pop_ready after every reading), the time the counter's
    update lattice alone takes on the same polls, and the number of steps emitted.

    Inputs are converted to Python floats beforehand so that only greenprof is timed. The
    lattice is timed apart (a fresh :class:`UpdateLattice` fed the same poll intervals),
    through its public API: its refits are the main cost of readings.
    """
    readings = trace.readings()
    steps = [
        (i, float(a), float(b))
        for i, (a, b) in enumerate(zip(trace.starts_s, trace.ends_s, strict=True))
    ]
    intervals = [
        (a.time_s, b.time_s, a.energy_j != b.energy_j) for a, b in itertools.pairwise(readings)
    ]
    lattice = UpdateLattice(None)
    t0 = timer()
    for interval in intervals:
        lattice.observe(*interval)
    lattice_s = timer() - t0
    attributor = StepAttributor()
    emitted, s, n = 0, 0, len(steps)
    t0 = timer()
    for reading in readings:
        while with_steps and s < n and steps[s][2] + delay_s <= reading.time_s:
            attributor.add_step(*steps[s])
            s += 1
        attributor.add_reading(reading)
        emitted += len(attributor.pop_ready())
    if with_steps:
        for step in steps[s:]:
            attributor.add_step(*step)
        emitted += len(attributor.pop_ready()) + len(attributor.finish())
    return timer() - t0, lattice_s, emitted


def throughput(duration_s: float = 60.0, repeats: int = 3) -> None:
    """1 ms contiguous steps, 10 Hz dithered readings of a 100 ms counter with power."""
    trace = make_trace(
        "throughput", 7, duration_s=duration_s, lengths_s=(0.8e-3, 1.2e-3), gap_prob=0.0
    )
    n_steps = len(trace.starts_s)
    total_s, fit_s, emitted = min(live_cost(trace) for _ in range(repeats))
    assert emitted == n_steps
    readings_s, _, _ = min(live_cost(trace, with_steps=False) for _ in range(repeats))
    live_s = trace.poll_s[-1] - trace.poll_s[0]
    print(f"\n## throughput: {n_steps} contiguous ~1 ms steps over {live_s:.0f} s, 10 Hz readings")
    print(
        f"live order, per device: {1e6 * (total_s - readings_s) / n_steps:.2f} µs per step "
        f"(steps only), {1e6 * total_s / n_steps:.2f} µs per step all included; "
        f"{100 * total_s / live_s:.2f} % of one core in all at {n_steps / live_s:,.0f} steps/s"
    )
    print(
        f"readings alone {100 * readings_s / live_s:.3f} % of a core; the update lattice alone "
        f"{100 * fit_s / live_s:.3f} % ({1e3 * fit_s:.1f} ms in {live_s:.0f} s)"
    )


def wrap_check() -> None:
    """A RAPL-style µJ counter that wraps: counter_delta with wrap_j recovers the energy."""
    rng = np.random.default_rng(3)
    wrap_uj = 2**32
    true_j = np.cumsum(rng.uniform(10.0, 40.0, 10_000))  # 10k polls, 10-40 J each
    raw_uj = np.floor(true_j * 1e6) % wrap_uj
    total = sum(
        counter_delta(float(a), float(b), wrap_j=float(wrap_uj))
        for a, b in itertools.pairwise(raw_uj)
    )
    expected = np.floor(true_j[-1] * 1e6) - np.floor(true_j[0] * 1e6)
    wraps = int((np.diff(raw_uj) < 0).sum())
    err = abs(total - expected) / expected
    print(f"\n## wrap check: {wraps} wraps, counter_delta sum error {err:.2e} (relative)")


def warm_up(seeds: int, duration_s: float = 30.0, horizon_s: float = 20.0) -> None:
    """The first seconds of a run, with and without the sensor's declared update period.

    Until the polls pin down the counter's update lattice (3-10 s at 10 Hz, sometimes
    longer), knots sit at poll times. A declared period (``update_period_s``, e.g. NVML's
    100 ms) lets the lattice lock as soon as the phase is pinned. Rows: steps starting in
    the first ``horizon_s`` of ``seeds`` runs; "lock" is when the lattice is first known
    (median over runs). The last rows declare a period that is wrong: 0.5 % off, and a
    100 ms period for a counter that updates every 20 ms (some drivers).
    """
    print(f"\n## warm-up: steps starting in the first {horizon_s:.0f} s, {seeds} runs each")
    print(f"{'':66s} {'median':>7s} {'p95':>7s} {'max':>7s}   (% error)   lock (s)")
    cases = [
        ("1-3 s steps", (1.0, 3.0), 0.1, None),
        ("1-3 s steps", (1.0, 3.0), 0.1, 0.1),
        ("1-3 s steps", (1.0, 3.0), 0.1, 0.1005),
        ("1-3 s steps", (1.0, 3.0), 0.02, None),
        ("1-3 s steps", (1.0, 3.0), 0.02, 0.1),
        ("0.1-0.5 s steps, 1 s windows", (0.1, 0.5), 0.1, None),
        ("0.1-0.5 s steps, 1 s windows", (0.1, 0.5), 0.1, 0.1),
        ("0.1-0.5 s steps, 1 s windows", (0.1, 0.5), 0.1, 0.1005),
    ]
    for label, lengths_s, period_s, declared_s in cases:
        errors: list[float] = []
        locks: list[float] = []
        for seed in range(seeds):
            trace = make_trace(
                label,
                100 + seed,
                duration_s=duration_s,
                lengths_s=lengths_s,
                update_period_s=period_s,
            )
            results, lock_s = attribute_live(trace, declared_s=declared_s)
            est = np.array([r.energy_j for r in results])
            if lengths_s[0] >= 1.0:
                early = trace.starts_s < horizon_s
                errors += list(errors_pct(est[early], trace.truth_j[early]))
            else:
                for a, b in windows(trace):
                    if trace.starts_s[a] < horizon_s:
                        truth = trace.truth_j[a:b].sum()
                        errors.append(100 * abs(est[a:b].sum() - truth) / truth)
            locks.append(lock_s)
        declared = "none" if declared_s is None else f"{1e3 * declared_s:g} ms"
        name = f"{label}, {1e3 * period_s:g} ms counter, declared {declared}"
        lock = f"{np.median(locks):6.1f}" if np.isfinite(np.median(locks)) else "   never"
        print(f"{name:66s} {summary(np.array(errors))}   {lock}")


def attribute_live(trace: Trace, *, declared_s: float | None) -> tuple[list[StepEnergy], float]:
    """Like :func:`attribute`; also the time of the first reading with a known lattice."""
    attributor = StepAttributor(update_period_s=declared_s)
    out: list[StepEnergy] = []
    lock_s, s = math.inf, 0
    for reading in trace.readings():
        while s < len(trace.ends_s) and trace.ends_s[s] + 0.02 <= reading.time_s:
            attributor.add_step(s, float(trace.starts_s[s]), float(trace.ends_s[s]))
            s += 1
        attributor.add_reading(reading)
        if lock_s == math.inf and attributor.update_period_s is not None:
            lock_s = reading.time_s
        out += attributor.pop_ready()
    for i in range(s, len(trace.ends_s)):
        attributor.add_step(i, float(trace.starts_s[i]), float(trace.ends_s[i]))
    return out + attributor.pop_ready() + attributor.finish(), lock_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="60 s traces, 6 warm-up runs")
    args = parser.parse_args()
    d, seed = (60.0 if args.quick else args.duration), args.seed
    report(make_trace("NVML-like: 100 ms counter, 1-3 s steps, gaps", seed, duration_s=d))
    report(make_trace("NVML-like, no power readings", seed + 1, duration_s=d, report_power=False))
    short = (0.005, 0.05)
    report(
        make_trace("NVML-like: 5-50 ms steps", seed + 2, duration_s=d, lengths_s=short, gap_prob=0)
    )
    report(
        make_trace(
            "NVML-like: 5-50 ms steps, 2 % gaps",
            seed + 2,
            duration_s=d,
            lengths_s=short,
            gap_prob=0.02,
        )
    )
    report(
        make_trace(
            "NVML-like: 5-50 ms steps, no power readings",
            seed + 3,
            duration_s=d,
            lengths_s=short,
            gap_prob=0,
            report_power=False,
        )
    )
    report(
        make_trace(
            "NVML-like: mixed 20 ms - 3 s steps", seed + 4, duration_s=d, lengths_s=(0.02, 3.0)
        )
    )
    report(
        make_trace("20 ms counter polled at 10 Hz", seed + 5, duration_s=d, update_period_s=0.02)
    )
    report(
        make_trace(
            "RAPL-like: continuous µJ counter",
            seed + 6,
            duration_s=d,
            update_period_s=0.0,
            quantum_j=1e-6,
            report_power=False,
        )
    )
    report(make_trace("power only (power_integration)", seed + 7, duration_s=d, counter=False))
    wrap_check()
    warm_up(6 if args.quick else 16)
    coverage_table(3 if args.quick else 10)
    throughput()


if __name__ == "__main__":
    main()

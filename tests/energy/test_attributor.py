"""Attribution of energy to steps: what users rely on (greenprof.energy.attributor)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprof.energy import StepAttributor, integrate_power
from greenprof.records import Reading
from tests.energy.simulation import levels_25pct, run, simulate


@pytest.mark.parametrize("period_s", [0.0, 0.1])
def test_constant_power_is_attributed_exactly(period_s: float) -> None:
    """Exact once the stale counter's update lattice is known (a few seconds of polls)."""
    lengths = [0.02, 1.3, 0.25, 0.007, 2.0, 0.4, 0.05, 1.0]
    sim = simulate(
        lengths, [200.0] * 8, idle_w=200.0, gaps_s=[0.0, 0.1] * 4, period_s=period_s, lead_s=10.0
    )
    results, _ = run(sim)
    assert [r.step for r in results] == list(range(len(lengths)))
    # a continuous counter is exact; a stale one up to its phase estimate (~1 ms x 200 W)
    tolerance_j = 1e-9 if period_s == 0 else 0.5
    for r, length in zip(results, lengths, strict=True):
        assert r.energy_j == pytest.approx(200.0 * length, abs=tolerance_j)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.floats(0.002, 2.0), min_size=1, max_size=40),
    level=st.floats(20.0, 500.0),
    swing=st.floats(0.0, 0.5),
    period_s=st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.15]),
    phase_s=st.floats(0.0, 0.15),
    dither=st.floats(0.0, 0.3),
    seed=st.integers(0, 10_000),
)
def test_step_energies_conserve_the_counter_delta(
    *,
    lengths: list[float],
    level: float,
    swing: float,
    period_s: float,
    phase_s: float,
    dither: float,
    seed: int,
) -> None:
    rng = random.Random(seed)
    levels = [level * (1 + rng.uniform(-swing, swing)) for _ in lengths]
    sim = simulate(lengths, levels, period_s=period_s, phase_s=phase_s, dither=dither, seed=seed)
    attributor = StepAttributor()
    for reading in sim.readings:
        attributor.add_reading(reading)
    for step in sim.steps:
        attributor.add_step(*step)
    first, last = sim.steps[0][1], sim.steps[-1][2]
    delta = attributor.energy_between(first, last)
    results = attributor.pop_ready() + attributor.finish()
    assert [r.step for r in results] == [s for s, _, _ in sim.steps]
    assert all(r.energy_j >= 0 for r in results)
    assert sum(r.energy_j for r in results) == pytest.approx(delta, rel=1e-3)
    # and the delta is the true energy up to the counter's time resolution at both ends
    assert delta == pytest.approx(sim.truth(first, last), abs=2 * 500.0 * 0.3)


def test_straddling_boundaries_beat_naive_interpolation() -> None:
    lengths = [1.0 + 2.0 * random.Random(i).random() for i in range(25)]
    sim = simulate(lengths, levels_25pct(len(lengths), seed=4), seed=4, phase_s=0.061)
    results, attributor = run(sim)
    errors, naive_errors = [], []
    for r, (_, start, end) in zip(results, sim.steps, strict=True):
        truth = sim.truth(start, end)
        errors.append(abs(r.energy_j - truth) / truth)
        naive_errors.append(abs(sim.naive(start, end) - truth) / truth)
    detected = [e for e, (_, start, _) in zip(errors, sim.steps, strict=True) if start > 5.0]
    assert max(detected) <= 0.02
    assert sum(errors) < 0.5 * sum(naive_errors)
    assert attributor.update_period_s == pytest.approx(0.1, rel=1e-3)


def test_short_steps_are_flagged_and_their_windows_are_accurate() -> None:
    rng = random.Random(9)
    lengths = [rng.uniform(0.005, 0.05) for _ in range(700)]
    sim = simulate(lengths, levels_25pct(len(lengths), seed=9), seed=9)
    results, _ = run(sim)
    assert all(r.interpolated for r in results)
    window_errors = []
    i = 0
    while i < len(results):
        j = i
        while j < len(results) and sim.steps[j][2] - sim.steps[i][1] < 1.0:
            j += 1
        if j == len(results):
            break
        estimate = sum(r.energy_j for r in results[i : j + 1])
        truth = sim.truth(sim.steps[i][1], sim.steps[j][2])
        window_errors.append(abs(estimate - truth) / truth)
        i = j + 1
    window_errors.sort()
    assert window_errors[len(window_errors) // 2] <= 0.02  # median
    assert sum(window_errors) / len(window_errors) <= 0.02


def test_long_steps_are_not_flagged() -> None:
    sim = simulate([1.0, 1.5, 0.03, 2.0], [200.0, 250.0, 300.0, 240.0])
    results, _ = run(sim)
    assert [r.interpolated for r in results] == [False, False, True, False]


def test_continuous_counter_has_no_period_and_stays_exact() -> None:
    lengths = [1.2, 0.8, 1.7, 1.1] * 3
    sim = simulate(lengths, levels_25pct(len(lengths), seed=1), period_s=0.0, power=False)
    results, attributor = run(sim)
    assert attributor.update_period_s is None
    for r, (_, start, end) in zip(results[1:-1], sim.steps[1:-1], strict=True):
        assert r.energy_j == pytest.approx(sim.truth(start, end), rel=0.02)


def test_power_only_sensor_integrates_with_the_trapezoid_rule() -> None:
    lengths = [1.0, 2.0, 1.5, 1.0]
    sim = simulate(lengths, [200.0, 260.0, 210.0, 300.0], counter=False)
    results, attributor = run(sim)
    times = [r.time_s for r in sim.readings]
    powers = [r.power_w or 0.0 for r in sim.readings]
    assert attributor.total_energy_j == pytest.approx(integrate_power(times, powers)[-1])
    assert attributor.update_period_s is None
    for r, (_, start, end) in zip(results, sim.steps, strict=True):
        assert r.energy_j == pytest.approx(sim.truth(start, end), rel=0.03)


def test_counter_reset_mid_run_is_estimated_flagged_and_bounded() -> None:
    attributor = StepAttributor()
    raw = 5000.0
    for k in range(60):  # 200 W, read every 0.1 s; the driver reloads at t = 3 s
        t = 0.1 * k
        if k == 30:
            raw = 0.0
        attributor.add_reading(Reading("gpu:0", t, raw, None))
        raw += 20.0
    attributor.add_step(0, 1.0, 2.5)
    attributor.add_step(1, 2.5, 4.0)
    attributor.add_step(2, 4.0, 5.5)
    results = attributor.pop_ready() + attributor.finish()
    # the 20 J between the last read before the reload and the reload are not in the
    # counter: they are estimated from the rate before, and the step says so
    assert [r.energy_j for r in results] == pytest.approx([300.0, 300.0, 300.0], rel=1e-6)
    assert [r.counter_reset for r in results] == [False, True, False]
    assert results[1].energy_uncertainty_j >= 10.0
    assert attributor.total_energy_j == pytest.approx(59 * 20.0)


def test_pop_ready_returns_each_step_once_in_order() -> None:
    lengths = [0.3, 0.02, 1.0, 0.5] * 10
    sim = simulate(lengths, levels_25pct(len(lengths), seed=2), gaps_s=[0.0, 0.05] * 20)
    attributor = StepAttributor()
    popped: list[int] = []
    s = 0
    for reading in sim.readings:
        while s < len(sim.steps) and sim.steps[s][2] <= reading.time_s:
            attributor.add_step(*sim.steps[s])
            s += 1
        attributor.add_reading(reading)
        popped += [r.step for r in attributor.pop_ready()]
    assert len(popped) > len(lengths) // 2  # most are ready before the end of the run
    popped += [r.step for r in attributor.pop_ready()]
    for step in sim.steps[s:]:
        attributor.add_step(*step)
    popped += [r.step for r in attributor.finish()]
    assert popped == list(range(len(lengths)))
    assert attributor.finish() == []


def test_finish_extrapolates_steps_after_the_last_reading() -> None:
    attributor = StepAttributor()
    for k in range(30):
        attributor.add_reading(Reading("gpu:0", 0.1 * k, 100.0 + 25.0 * k, 250.0))
    attributor.add_step(0, 1.0, 2.0)
    attributor.add_step(1, 2.0, 3.5)  # runs past the last reading (t = 2.9 s)
    attributor.add_step(2, 4.0, 4.5)  # entirely after it
    results = attributor.pop_ready() + attributor.finish()
    assert [r.step for r in results] == [0, 1, 2]
    assert [r.energy_j for r in results] == pytest.approx([250.0, 375.0, 125.0], rel=1e-6)
    assert [r.interpolated for r in results] == [False, True, True]


def test_memory_stays_bounded_over_a_long_run() -> None:
    attributor = StepAttributor()
    t, raw, step = 0.0, 0.0, 0
    rng = random.Random(5)
    while t < 600.0:  # ten minutes at 10 Hz with 20 ms steps
        attributor.add_reading(Reading("gpu:0", t, raw, None))
        for _ in range(5):
            attributor.add_step(step, t + 0.02 * (step % 5), t + 0.02 * (step % 5 + 1))
            step += 1
        attributor.pop_ready()
        raw += 25.0
        t += 0.1 * rng.uniform(0.8, 1.2)
    assert len(attributor.curve.knots) < 400
    assert attributor.retained_steps < 2000
    assert attributor.energy_between(t - 5.0, t - 1.0) == pytest.approx(1000.0, rel=0.1)


def test_the_last_step_of_a_slow_counter_is_measured_by_the_power_read_during_it() -> None:
    """A 1 s counter whose last update comes long before the run's last step ends: the
    power read meanwhile (400 W) measures the step, not the idle reading after it."""
    sim = simulate(
        [2.0, 2.0, 1.7], [250.0, 300.0, 400.0], period_s=1.0, phase_s=0.2, lead_s=5.0, tail_s=0.15
    )
    results, _ = run(sim, update_period_s=1.0)
    _, start, end = sim.steps[-1]
    assert results[-1].energy_j == pytest.approx(sim.truth(start, end), rel=0.03)
    assert abs(results[-1].energy_j - sim.truth(start, end)) <= results[-1].energy_uncertainty_j


@pytest.mark.parametrize("overlap", [False, True])
def test_steps_added_in_one_batch_are_attributed_as_if_added_one_by_one(overlap: bool) -> None:
    readings = [Reading("gpu:0", 0.1 * k, 150.0 * 0.1 * k, 150.0) for k in range(1, 30)]
    steps = list(range(30))
    starts = [1.0 + 0.01 * n for n in steps]
    ends = [s + 0.01 for s in starts]
    if overlap:  # a step that starts before the previous one ended: clipped alike
        starts[7] -= 0.005
    batch, single = StepAttributor(), StepAttributor()
    for attributor in (batch, single):
        for reading in readings:
            attributor.add_reading(reading)
    batch.add_steps(steps[:10], starts[:10], ends[:10])
    batch.add_steps(steps[10:], starts[10:], ends[10:])
    for step, start_s, end_s in zip(steps, starts, ends, strict=True):
        single.add_step(step, start_s, end_s)
    assert batch.pop_ready() + batch.finish() == single.pop_ready() + single.finish()

"""ReadingGuard: every validation rule, repairs, counting, and a property over any input."""

from __future__ import annotations

import dataclasses
import itertools
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprof.records import DeviceInfo, Reading
from greenprof.sensors import guard as g
from greenprof.sensors.fake import FakeSensor
from greenprof.sensors.guard import GuardEvent, GuardStats, ReadingGuard, power_ceiling_w
from greenprof.sensors.rapl import RaplSensor

DEV = "gpu:0"


def r(
    time_s: object,
    energy_j: object = None,
    power_w: object = None,
    device: str = DEV,
    **details: object,
) -> Reading:
    return Reading(device, time_s, energy_j, power_w, **details)  # type: ignore[arg-type]


def energies(readings: list[Reading]) -> list[float | None]:
    return [x.energy_j for x in readings]


def feed(guard: ReadingGuard, *readings: object) -> list[Reading]:
    out: list[Reading] = []
    for reading in readings:
        out.extend(guard.check(reading))
    return out


# Shape and types ---------------------------------------------------------------------


def test_a_valid_float_reading_passes_unchanged_and_is_counted() -> None:
    guard = ReadingGuard(DEV)
    reading = r(1.0, 10.0, 200.0)
    assert guard.check(reading) == [reading]
    assert guard.check(reading) == []  # the same time again
    stats = guard.stats()
    assert stats.passed == 1
    assert stats.count(g.TIME_BACKWARDS) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, g.NOT_A_READING),
        ((DEV, 1.0, 10.0, 5.0), g.NOT_A_READING),
        ({"device": DEV, "time_s": 1.0}, g.NOT_A_READING),
        (r(1.0, 10.0, device="gpu:1"), g.WRONG_DEVICE),
        (r(1.0, "10.0"), g.BAD_TYPE),
        (r(1.0, 10.0, "200"), g.BAD_TYPE),
        (r(1.0, True), g.BAD_TYPE),
        (r(1.0, 10.0, False), g.BAD_TYPE),
        (r(1.0, 3 + 0j), g.BAD_TYPE),
        (r(None, 10.0), g.BAD_TYPE),
        (r("1.0", 10.0), g.BAD_TYPE),
        (r(math.nan, 10.0), g.BAD_TIME),
        (r(math.inf, 10.0), g.BAD_TIME),
        (r(1.0), g.NOTHING_USABLE),
        (r(1.0, math.nan, math.nan), g.NOTHING_USABLE),
    ],
)
def test_unusable_readings_are_rejected_and_counted(raw: object, reason: str) -> None:
    events: list[GuardEvent] = []
    guard = ReadingGuard(DEV, on_problem=events.append)
    assert guard.check(raw) == []
    stats = guard.stats()
    assert stats.count(reason) == 1
    assert stats.rejected == 1
    assert stats.passed == 0
    assert stats.last_problem is not None and DEV in stats.last_problem
    assert events[-1].reason == reason and events[-1].device == DEV
    # the device keeps working afterwards
    assert guard.check(r(2.0, 10.0)) == [r(2.0, 10.0)]


def test_time_going_backwards_or_repeating_is_rejected() -> None:
    guard = ReadingGuard(DEV)
    out = feed(guard, r(2.0, 10.0), r(1.0, 11.0), r(2.0, 12.0), r(3.0, 13.0))
    assert [x.time_s for x in out] == [2.0, 3.0]
    assert guard.stats().count(g.TIME_BACKWARDS) == 2


def test_real_numbers_of_other_types_become_floats() -> None:
    guard = ReadingGuard(DEV)
    out = feed(
        guard,
        r(1, 10, 200),
        r(Fraction(3, 2), Decimal("11.5"), Fraction(401, 2)),
    )
    assert [(x.time_s, x.energy_j, x.power_w) for x in out] == [
        (1.0, 10.0, 200.0),
        (1.5, 11.5, 200.5),
    ]
    for x in out:
        assert type(x.time_s) is float and type(x.energy_j) is float and type(x.power_w) is float
    assert guard.stats().problems == 0


def test_numpy_scalars_become_plain_floats() -> None:
    np = pytest.importorskip("numpy")
    guard = ReadingGuard(DEV)
    out = feed(
        guard,
        r(np.float64(1.0), np.float32(10.0), np.int64(200), memory_used_bytes=np.int64(1024)),
        r(2.0, np.float64(np.nan), np.float64(100.0)),
    )
    assert [(x.time_s, x.energy_j, x.power_w) for x in out] == [
        (1.0, 10.0, 200.0),
        (2.0, None, 100.0),
    ]
    assert all(type(v) is float for x in out for v in (x.time_s, x.power_w))
    assert type(out[0].energy_j) is float
    assert type(out[0].memory_used_bytes) is int and out[0].memory_used_bytes == 1024
    assert guard.check(r(3.0, np.bool_(True))) == []
    assert guard.check(r(4.0, np.complex128(5.0))) == []
    assert guard.stats().count(g.BAD_TYPE) == 2


# Field repairs ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_a_bad_energy_is_dropped_and_the_power_kept(bad: float) -> None:
    guard = ReadingGuard(DEV)
    assert guard.check(r(1.0, bad, 150.0)) == [r(1.0, None, 150.0)]
    assert guard.stats().count(g.ENERGY_INVALID) == 1
    assert guard.stats().rejected == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -5.0])
def test_a_bad_power_is_dropped_and_the_energy_kept(bad: float) -> None:
    guard = ReadingGuard(DEV)
    assert guard.check(r(1.0, 10.0, bad)) == [r(1.0, 10.0, None)]
    assert guard.stats().count(g.POWER_INVALID) == 1


def test_power_above_the_ceiling_is_dropped() -> None:
    guard = ReadingGuard(DEV, ceiling_w=1_000.0)
    out = feed(guard, r(1.0, None, 999.0), r(2.0, None, 1_001.0), r(3.0, 10.0, 5_000.0))
    assert out == [r(1.0, None, 999.0), r(3.0, 10.0, None)]
    assert guard.stats().count(g.POWER_ABOVE_CEILING) == 2
    assert guard.stats().count(g.NOTHING_USABLE) == 1


def test_the_ceiling_comes_from_the_declared_power_limit() -> None:
    assert power_ceiling_w(None) == g.DEFAULT_POWER_CEILING_W
    info = DeviceInfo(DEV, "gpu", "counter", power_limit_w=300.0)
    assert power_ceiling_w(info) == g.POWER_LIMIT_FACTOR * 300.0
    assert power_ceiling_w(dataclasses.replace(info, power_limit_w=math.nan)) == 10_000.0

    sensor = FakeSensor(DEV)
    sensor.info = info
    guard = ReadingGuard.for_sensor(sensor)
    assert guard.device == DEV and guard.ceiling_w == 900.0 and guard.wrap_j is None
    sensor.energy_wrap_j = 2.0**32 / 1e6
    assert ReadingGuard.for_sensor(sensor).wrap_j == 2.0**32 / 1e6


def test_bad_details_are_dropped_not_the_reading() -> None:
    guard = ReadingGuard(DEV)
    out = guard.check(
        r(1.0, 10.0, utilization_pct=math.nan, memory_used_bytes=-3, temperature_c="hot")
    )
    assert out == [r(1.0, 10.0)]
    ok = guard.check(r(2.0, 11.0, utilization_pct=50, memory_used_bytes=2.0, temperature_c=-4.0))
    assert ok[0].utilization_pct == 50 and ok[0].memory_used_bytes == 2
    assert ok[0].temperature_c == -4.0
    assert guard.stats().count(g.DETAIL_INVALID) == 1


# The counter -------------------------------------------------------------------------


def test_a_one_joule_glitch_on_a_large_counter_is_rejected() -> None:
    """The issue's case: 1 J low on a 5 MJ counter used to count as a 5 MJ reset."""
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 5e6), r(0.1, 5e6 + 30), r(0.2, 5e6 + 29), r(0.3, 5e6 + 60))
    assert energies(out) == [5e6, 5e6 + 30, 5e6 + 60]
    assert guard.stats().count(g.COUNTER_STEP_BACK) == 1


def test_a_persistent_small_step_back_never_becomes_a_reset() -> None:
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 5e6), r(0.1, 5e6 - 500), r(0.2, 5e6 - 480), r(0.3, 5e6 + 20))
    assert energies(out) == [5e6, 5e6 + 20]
    assert guard.stats().count(g.COUNTER_STEP_BACK) == 2
    assert guard.stats().count(g.COUNTER_RESET) == 0


def test_a_one_read_dip_that_recovers_is_dropped() -> None:
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 1e5), r(0.1, 1e5 + 30), r(0.2, 12.0))
    assert energies(out) == [1e5, 1e5 + 30]  # the dip is held back
    assert guard.holding
    out = feed(guard, r(0.3, 1e5 + 90))
    assert energies(out) == [1e5 + 90]
    assert not guard.holding
    assert guard.stats().count(g.COUNTER_DIP) == 1
    assert guard.stats().count(g.COUNTER_RESET) == 0


def test_a_drop_to_near_zero_that_persists_is_a_reset_continuing_the_counter() -> None:
    """A driver reload: the counter restarts at 0; energy since then is the new value."""
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 5e6), r(0.1, 5e6 + 30), r(0.2, 20.0))
    assert energies(out) == [5e6, 5e6 + 30]
    out = feed(guard, r(0.3, 50.0))
    assert [(x.time_s, x.energy_j) for x in out] == [(0.2, 5e6 + 50), (0.3, 5e6 + 80)]
    out = feed(guard, r(0.4, 80.0))
    assert energies(out) == [5e6 + 110]
    stats = guard.stats()
    assert stats.count(g.COUNTER_RESET) == 1
    assert stats.rejected == 0
    assert stats.first_problem_s == 0.2


def test_a_persistent_drop_to_an_unknown_origin_counts_nothing_across_it() -> None:
    """Not plausibly a restart from 0 (too much energy for 0.1 s): re-based, no overcount."""
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 5e6), r(0.1, 5e6 + 30), r(0.2, 3e6), r(0.3, 3e6 + 30))
    assert [(x.time_s, x.energy_j) for x in out] == [
        (0.0, 5e6),
        (0.1, 5e6 + 30),
        (0.2, 5e6 + 30),
        (0.3, 5e6 + 60),
    ]
    assert guard.stats().count(g.COUNTER_REBASED) == 1


def test_a_drop_followed_by_a_read_without_energy_is_dropped() -> None:
    guard = ReadingGuard(DEV)
    out = feed(guard, r(0.0, 1e5), r(0.1, 5.0), r(0.2, None, 100.0), r(0.3, 1e5 + 40))
    assert [(x.time_s, x.energy_j) for x in out] == [(0.0, 1e5), (0.2, None), (0.3, 1e5 + 40)]
    assert guard.stats().count(g.COUNTER_DIP) == 1


def test_a_held_drop_is_dropped_at_flush() -> None:
    guard = ReadingGuard(DEV)
    feed(guard, r(0.0, 1e5), r(0.1, 5.0))
    guard.flush()
    assert not guard.holding
    assert guard.stats().count(g.COUNTER_DIP) == 1


def test_an_implausible_forward_jump_is_rejected() -> None:
    guard = ReadingGuard(DEV, ceiling_w=1_000.0)
    out = feed(
        guard,
        r(0.0, 100.0),
        r(0.1, 150.0),  # 500 W: fine
        r(0.2, 200.0),
        r(0.3, 100_000.0),  # 1 MW: a glitch
        r(0.4, 290.0),
    )
    assert energies(out) == [100.0, 150.0, 200.0, 290.0]
    assert guard.stats().count(g.COUNTER_JUMP) == 1


def test_counter_updates_every_100_ms_at_the_ceiling_pass() -> None:
    """A 100 ms lattice polled at 20 ms (settling) shows jumps of a whole period at once."""
    guard = ReadingGuard(DEV, ceiling_w=900.0)  # 300 W limit × 3
    out: list[Reading] = []
    for i in range(200):
        t = 0.02 * i
        energy = 300.0 * 0.1 * math.floor(t / 0.1 + 1e-9)  # 300 W, published every 100 ms
        out += guard.check(r(t, energy, 300.0))
    assert len(out) == 200
    assert guard.stats().problems == 0


def test_a_declared_wrap_is_unwrapped() -> None:
    guard = ReadingGuard(DEV, wrap_j=1_000.0)
    out = feed(guard, r(0.0, 990.0), r(0.1, 999.0), r(0.2, 4.0), r(0.3, 14.0))
    assert energies(out) == [990.0, 999.0, 1_004.0, 1_014.0]
    stats = guard.stats()
    assert stats.count(g.COUNTER_WRAP) == 1
    assert stats.problems == 0


def test_a_rapl_wrap_needs_no_repair(tmp_path: Path) -> None:
    """RaplSensor unwraps max_energy_range_uj itself: the guard sees a rising counter."""
    files = {"max_energy_range_uj": "262143328850", "energy_uj": "262100000000"}
    now = [0.0]
    sensor = RaplSensor(
        tmp_path,
        "cpu:0",
        "RAPL package-0",
        clock=lambda: now[0],
        read_text=lambda path: files[path.name],
    )
    guard = ReadingGuard.for_sensor(sensor)
    out: list[Reading] = []
    for uj in ("262100000000", "262130000000", "16671150", "46671150"):  # 300 W, a wrap
        now[0] += 0.1
        files["energy_uj"] = uj
        out += guard.check(sensor.read())
    assert len(out) == 4
    assert energies(out) == pytest.approx([0.0, 30.0, 60.0, 90.0])
    assert guard.stats().problems == 0


# Stats -------------------------------------------------------------------------------


def test_stats_are_a_frozen_snapshot() -> None:
    guard = ReadingGuard(DEV)
    feed(guard, r(1.0, 10.0, math.nan), r(2.0, "x"))
    stats = guard.stats()
    assert isinstance(stats, GuardStats)
    assert dict(stats.counts) == {g.POWER_INVALID: 1, g.BAD_TYPE: 1}
    assert stats.problems == 2 and stats.rejected == 1 and stats.passed == 1
    assert stats.first_problem_s == 1.0 and stats.last_problem_s == 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.passed = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        stats.counts[g.BAD_TYPE] = 0  # type: ignore[index]
    feed(guard, r(3.0, "y"))
    assert stats.count(g.BAD_TYPE) == 1  # the snapshot does not move
    assert guard.stats().count(g.BAD_TYPE) == 2


def test_record_counts_outside_problems_with_their_time() -> None:
    events: list[GuardEvent] = []
    guard = ReadingGuard(DEV, on_problem=events.append)
    guard.record(g.READ_TIMEOUT, "gpu:0 did not answer", 7.0)
    assert guard.stats().count(g.READ_TIMEOUT) == 1
    assert guard.stats().first_problem_s == 7.0
    assert events == [GuardEvent(DEV, g.READ_TIMEOUT, 7.0, "gpu:0 did not answer")]


# Property ----------------------------------------------------------------------------

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=0, max_value=1e7),
    st.integers(min_value=-10, max_value=10**7),
    st.none(),
    st.just("12"),
    st.booleans(),
)
_times = st.one_of(
    st.floats(min_value=-1.0, max_value=1e4),
    st.just(math.nan),
    st.just(math.inf),
    st.none(),
)
_raw = st.one_of(
    st.builds(r, _times, _numbers, _numbers),
    st.builds(r, _times, _numbers, _numbers, st.sampled_from(["gpu:1", DEV])),
    st.none(),
    st.integers(),
)


def _check_output(out: list[Reading]) -> None:
    times = [x.time_s for x in out]
    assert all(b > a for a, b in itertools.pairwise(times))
    counter = [x.energy_j for x in out if x.energy_j is not None]
    assert all(b >= a for a, b in itertools.pairwise(counter))
    for x in out:
        assert isinstance(x, Reading) and x.device == DEV
        assert type(x.time_s) is float and math.isfinite(x.time_s)
        assert x.energy_j is not None or x.power_w is not None
        for value in (x.energy_j, x.power_w):
            assert value is None or (type(value) is float and math.isfinite(value) and value >= 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(_raw, max_size=60), st.sampled_from([None, 500.0]))
def test_any_input_gives_ordered_finite_readings_and_a_rising_counter(
    raws: list[object], wrap_j: float | None
) -> None:
    guard = ReadingGuard(DEV, ceiling_w=2_000.0, wrap_j=wrap_j)
    out = feed(guard, *raws)
    guard.flush()
    _check_output(out)
    stats = guard.stats()
    assert stats.passed == len(out)
    assert not guard.holding


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.01, max_value=2.0), st.floats(min_value=0, max_value=700)),
        min_size=1,
        max_size=60,
    ),
    st.floats(min_value=0, max_value=1e9),
)
def test_a_plausible_counter_passes_untouched(
    steps: list[tuple[float, float]], origin_j: float
) -> None:
    """Any increasing counter below the ceiling power passes with every value unchanged."""
    guard = ReadingGuard(DEV, ceiling_w=900.0)
    time_s, energy_j = 0.0, origin_j
    raws = [r(time_s, energy_j)]
    for dt, power in steps:
        time_s += dt
        energy_j += power * dt
        raws.append(r(time_s, energy_j))
    assert feed(guard, *raws) == raws
    assert guard.stats().problems == 0

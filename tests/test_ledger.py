import pytest

from greenprof.energy import StepAttributor
from greenprof.ledger import BEGIN, END, EPOCH, StepLedger, steps_uncertainty_j
from greenprof.records import (
    STEP_DEVICE_MISSING,
    STEP_READING_REJECTED,
    Reading,
    step_flag_names,
)
from tests.energy.simulation import levels_25pct, simulate

NS = 1_000_000_000


def _readings(device: str, power_w: float, until_s: float, every_s: float = 0.05) -> list[Reading]:
    count = int(until_s / every_s) + 1
    return [Reading(device, i * every_s, power_w * i * every_s, power_w) for i in range(count)]


def test_steps_are_numbered_and_get_energy_from_every_device() -> None:
    ledger = StepLedger(["gpu:0", "cpu:0"], origin_s=0.0)
    ledger.add_marks(
        [
            (BEGIN, 1 * NS),
            (END, 2 * NS, 32, 0.5),
            (EPOCH, 1),
            (BEGIN, 2 * NS),
            (END, 3 * NS, 32, 0.4),
        ]
    )
    for gpu, cpu in zip(_readings("gpu:0", 200.0, 5.0), _readings("cpu:0", 50.0, 5.0), strict=True):
        ledger.add_readings([gpu, cpu])
    finished = ledger.pop_finished() + ledger.finish()
    assert [(s.step, s.epoch, s.samples, s.loss) for s in finished] == [
        (0, 0, 32, 0.5),
        (1, 1, 32, 0.4),
    ]
    assert finished[0].device_energy_j == pytest.approx({"gpu:0": 200.0, "cpu:0": 50.0}, rel=1e-3)
    assert finished[1].energy_j == pytest.approx(250.0, rel=1e-3)
    assert ledger.steps == 2
    assert ledger.samples == 64


def test_an_end_without_begin_continues_from_the_previous_end() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.5)
    ledger.add_marks([(END, 1 * NS, None, None), (END, 3 * NS, None, None)])
    ledger.add_readings(_readings("gpu:0", 100.0, 4.0))
    steps = ledger.pop_finished() + ledger.finish()
    assert [(s.start_s, s.end_s) for s in steps] == [(0.0, 0.5), (0.5, 2.5)]
    assert steps[1].energy_j == pytest.approx(200.0, rel=1e-3)


def test_overlapping_marks_never_produce_overlapping_steps() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks(
        [
            (BEGIN, 1 * NS),
            (END, 2 * NS, None, None),
            (BEGIN, int(1.5 * NS)),
            (END, 3 * NS, None, None),
        ]
    )
    ledger.add_readings(_readings("gpu:0", 10.0, 4.0))
    first, second = ledger.pop_finished() + ledger.finish()
    assert second.start_s >= first.end_s


def test_without_devices_steps_are_still_recorded_with_zero_energy() -> None:
    ledger = StepLedger([], origin_s=0.0)
    ledger.add_marks([(BEGIN, 0), (END, NS, 8, None)])
    (step,) = ledger.pop_finished()
    assert (step.energy_j, step.samples, step.device_energy_j) == (0.0, 8, {})


def test_power_from_a_counter_is_averaged_over_about_a_second() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    powers = []
    for i in range(30):
        reading = Reading("gpu:0", i * 0.1, 150.0 * i * 0.1, None)
        ledger.add_readings([reading])
        powers.append(ledger.power_w(reading))
    assert powers[0] is None
    assert powers[-1] == pytest.approx(150.0, rel=0.02)


def test_a_step_that_begins_microseconds_after_the_previous_end_continues_it() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks(
        [
            (BEGIN, 1 * NS),
            (END, 2 * NS, None, None),
            (BEGIN, 2 * NS + 5_000),
            (END, 3 * NS, None, None),
            (BEGIN, 4 * NS),
            (END, 5 * NS, None, None),
        ]
    )
    ledger.add_readings(_readings("gpu:0", 10.0, 6.0))
    first, second, third = ledger.pop_finished() + ledger.finish()
    assert second.start_s == first.end_s
    assert third.start_s == 4.0


def test_nested_steps_count_once_as_the_outermost_step() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks(
        [(BEGIN, 1 * NS), (BEGIN, 2 * NS), (END, 3 * NS, 8, None), (END, 4 * NS, 16, None)]
    )
    ledger.add_readings(_readings("gpu:0", 10.0, 5.0))
    (step,) = ledger.pop_finished() + ledger.finish()
    assert (step.start_s, step.end_s, step.samples) == (1.0, 4.0, 16)
    assert ledger.warnings == ["nested steps: only the outermost step is counted"]


def test_numbers_from_user_code_are_converted_and_bad_ones_dropped_with_one_warning() -> None:
    class Index:  # what numpy integers and integer 0-d tensors offer
        def __index__(self) -> int:
            return 32

    ledger = StepLedger([], origin_s=0.0)
    ledger.add_marks(
        [
            (END, 1 * NS, Index(), None),
            (END, 2 * NS, "32", None),
            (END, 3 * NS, 3.5, None),
            (EPOCH, "two"),
            (END, 4 * NS, True, None),
        ]
    )
    steps = ledger.pop_finished()
    assert [s.samples for s in steps] == [32, None, None, None]
    assert type(steps[0].samples) is int
    assert [s.epoch for s in steps] == [0, 0, 0, 0]
    assert len(ledger.warnings) == 2  # one for samples (whatever the count), one for epoch
    assert "samples must be an integer" in ledger.warnings[0]
    assert ledger.samples == 32


def test_a_silent_device_is_given_up_and_never_holds_back_the_others() -> None:
    ledger = StepLedger(["gpu:0", "cpu:0"], origin_s=0.0)
    ledger.add_marks([(END, int(i * 0.5 * NS), None, None) for i in range(1, 13)])
    cpu = _readings("cpu:0", 50.0, 1.0)  # the CPU sensor dies after 1 s
    for reading in _readings("gpu:0", 100.0, 7.0):
        ledger.add_readings([reading, *(c for c in cpu if c.time_s == reading.time_s)])
    held = ledger.pop_finished()
    assert len(held) < 3  # steps after 1 s wait for the CPU
    assert ledger.expire(now_s=7.0, stale_after_s=3.0) == ["cpu:0"]
    steps = held + ledger.pop_finished()
    assert len(steps) >= 12 - 1  # every step with its GPU energy known is out
    late = [s for s in steps if s.start_s > 4.0]
    assert late and all(s.flags & STEP_DEVICE_MISSING for s in late)
    assert all(set(s.device_energy_j) == {"gpu:0"} for s in late)
    assert ledger.dead_devices == ("cpu:0",)


def test_steps_near_a_rejected_reading_are_flagged() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks([(END, i * NS, None, None) for i in range(1, 6)])
    ledger.note_rejected_reading("gpu:0", 2.4)
    ledger.add_readings(_readings("gpu:0", 10.0, 6.0))
    steps = ledger.pop_finished() + ledger.finish()
    flagged = [s.step for s in steps if s.flags & STEP_READING_REJECTED]
    assert flagged == [1, 2]  # steps 1-2 s and 2-3 s lie within half a second of 2.4 s


def test_closed_steps_are_reported_before_their_energy_is_known() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=1.0)
    ledger.add_marks([(BEGIN, 2 * NS), (END, 3 * NS, 4, 0.5)])
    (closed,) = ledger.pop_closed()
    assert closed == (0, 0, 1.0, 2.0, 4, 0.5)  # step, epoch, start_s, end_s, samples, loss
    assert ledger.pop_finished() == []  # no readings yet
    assert ledger.pop_closed() == []


def test_the_time_before_the_first_step_is_setup_not_a_step() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks([(BEGIN, 2 * NS), (END, 3 * NS, 4, None), (END, 4 * NS, 4, None)])
    ledger.add_readings(_readings("gpu:0", 100.0, 5.0))
    steps = ledger.pop_finished() + ledger.finish()
    assert [s.step for s in steps] == [0, 1]
    assert (ledger.setup_s, ledger.setup_energy_j) == (2.0, pytest.approx(200.0, rel=1e-3))
    assert ledger.step_energy_j == pytest.approx(200.0, rel=1e-3)


def test_power_from_a_counter_is_the_same_however_often_it_is_asked() -> None:
    """Asking for a reading's power twice (or not at all) changes no answer, then or later."""

    def powers(asks: int) -> list[float | None]:
        ledger = StepLedger(["gpu:0"], origin_s=0.0)
        out = []
        for i in range(40):
            reading = Reading("gpu:0", i * 0.1, 100.0 * (i * 0.1) ** 2, None)
            ledger.add_readings([reading])
            answers = {ledger.power_w(reading) for _ in range(asks if i % 3 else 1)}
            assert len(answers) == 1
            out.append(answers.pop())
        return out

    once = powers(1)
    assert once == powers(3)
    assert once[-1] == pytest.approx(100.0 * (3.9 + 2.9), rel=0.02)  # the mean over 2.9-3.9 s
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_readings([Reading("gpu:0", 0.0, 0.0, None), Reading("gpu:0", 1.0, 50.0, None)])
    assert ledger.power_w(Reading("gpu:0", 0.0, 0.0, None)) is None  # not the latest: unknown
    assert ledger.power_w(Reading("gpu:0", 1.0, 50.0, 75.0)) == 75.0  # its own power first


def test_a_declared_update_period_reaches_the_devices_attribution() -> None:
    """``update_periods_s`` is each device's lattice prior: the same energies as attributors
    made with it, and (in the first seconds of a 100 ms counter) not those made without."""
    lengths = [0.7, 1.3, 0.9, 1.1] * 4
    sim = simulate(lengths, levels_25pct(len(lengths), seed=3), seed=0, lead_s=0.2)

    def energies(ledger: StepLedger) -> list[float]:
        ledger.add_marks(
            [m for _, a, b in sim.steps for m in ((BEGIN, a * NS), (END, b * NS, 1, 0))]
        )
        for reading in sim.readings:
            ledger.add_readings([reading])
        return [s.energy_j for s in ledger.pop_finished() + ledger.finish()]

    declared = energies(StepLedger(["gpu:0"], origin_s=0.0, update_periods_s={"gpu:0": 0.1}))
    made = energies(
        StepLedger(
            ["gpu:0"], origin_s=0.0, attributor=lambda _: StepAttributor(update_period_s=0.1)
        )
    )
    assert declared == made
    assert declared != energies(StepLedger(["gpu:0"], origin_s=0.0))


def test_finished_steps_carry_an_uncertainty_that_covers_the_truth_and_telescopes() -> None:
    lengths = [0.3, 1.2, 0.8, 2.0, 0.5, 1.5] * 3
    sim = simulate(lengths, levels_25pct(len(lengths), seed=5), seed=5, lead_s=8.0)
    ledger = StepLedger(["gpu:0"], origin_s=0.0, update_periods_s={"gpu:0": 0.1})
    for _, start, end in sim.steps:
        ledger.add_marks([(BEGIN, round(start * NS)), (END, round(end * NS), None, None)])
    for reading in sim.readings:
        ledger.add_readings([reading])
    steps = ledger.pop_finished() + ledger.finish()
    covered = [
        abs(s.energy_j - sim.truth(s.start_s, s.end_s)) <= s.energy_uncertainty_j for s in steps
    ]
    assert sum(covered) >= 0.95 * len(steps)
    assert all(0 < s.energy_uncertainty_j < 0.5 * s.energy_j for s in steps)
    assert steps[0].device_uncertainty_j == {"gpu:0": steps[0].energy_uncertainty_j}
    # a contiguous window costs its two ends, not the sum of its steps' bounds
    window = steps_uncertainty_j(steps)
    assert window < 0.5 * sum(s.energy_uncertainty_j for s in steps)
    truth = sim.truth(steps[0].start_s, steps[-1].end_s)
    assert abs(sum(s.energy_j for s in steps) - truth) <= window


def test_a_counter_reset_is_flagged_on_its_step_and_warned_once() -> None:
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks([(END, NS * k, None, None) for k in range(1, 6)])
    raw = 7000.0
    for k in range(70):  # 200 W read every 0.1 s; the driver reloads at 3.05 s
        if k == 31:
            raw = 10.0
        ledger.add_readings([Reading("gpu:0", 0.1 * k, raw, None)])
        raw += 20.0
    steps = ledger.pop_finished() + ledger.finish()
    assert [step_flag_names(s.flags) for s in steps] == [(), (), (), ("counter_reset",), ()]
    assert steps[3].energy_j == pytest.approx(200.0, rel=0.02)  # the lost 10-20 J estimated
    assert steps[3].energy_uncertainty_j > steps[2].energy_uncertainty_j
    assert len(ledger.warnings) == 1 and "gpu:0: its energy counter was reset" in ledger.warnings[0]


def _counter(
    device: str, power_w: float, from_s: float, until_s: float, every_s: float = 0.1
) -> list[Reading]:
    """A counter updating every ``every_s`` at constant power (updates start at ``from_s``)."""
    count = round((until_s - from_s) / every_s) + 1
    return [
        Reading(device, from_s + i * every_s, power_w * (from_s + i * every_s), None)
        for i in range(count)
    ]


def test_the_last_steps_before_a_pause_are_attributed_during_the_pause() -> None:
    """Training stops (validation, a checkpoint, the end of the script): its last steps must
    not wait for a next step that may never come (the live view and the store show them)."""
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    # ten 2 ms steps, all inside one 100 ms update interval of the counter
    ledger.add_marks(
        [
            m
            for i in range(10)
            for m in (
                (BEGIN, 1_010_000_000 + i * 2_000_000),
                (END, 1_012_000_000 + i * 2_000_000, 1, None),
            )
        ]
    )
    readings = _counter("gpu:0", 100.0, 0.0, 5.0)
    finished = []
    for reading in readings:
        ledger.add_readings([reading])
        finished += ledger.pop_finished()
        if reading.time_s <= 1.0:  # marks are expected up to a second late
            assert not finished
    assert [s.step for s in finished] == list(range(10))
    assert sum(s.energy_j for s in finished) == pytest.approx(100.0 * 0.02, rel=1e-6)


def test_a_begin_that_arrives_after_the_pause_is_still_placed_exactly() -> None:
    """The torch hook posts an epoch's first step begin (stamped when its first batch was
    asked for) together with the step's end: seconds after the stamp. Steps before and
    after the pause keep their exact boundaries and energy is conserved."""
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks([(BEGIN, 1 * NS), (END, 2 * NS, 1, None)])
    readings = _counter("gpu:0", 100.0, 0.0, 12.0)
    finished = []
    for reading in readings[:80]:  # up to 7.9 s: step 0 is finished during the pause
        ledger.add_readings([reading])
        finished += ledger.pop_finished()
    assert [s.step for s in finished] == [0]
    ledger.add_marks([(BEGIN, 3 * NS), (END, 7_500_000_000, 1, None)])  # 4.9 s late
    for reading in readings[80:]:
        ledger.add_readings([reading])
        finished += ledger.pop_finished()
    finished += ledger.finish()
    assert [(s.step, s.start_s, s.end_s) for s in finished] == [(0, 1.0, 2.0), (1, 3.0, 7.5)]
    assert finished[1].energy_j == pytest.approx(450.0, rel=1e-6)
    assert not ledger.warnings


def _gap_run(*, told: bool) -> list:
    """Four 1 s steps at 100 W; gpu:0 goes unread from 1.95 s to 3.45 s (a poll gap)."""
    ledger = StepLedger(["gpu:0"], origin_s=0.0)
    ledger.add_marks([(END, k * NS, None, None) for k in range(1, 6)])
    readings = [r for r in _counter("gpu:0", 100.0, 0.05, 6.0) if not 1.95 < r.time_s < 3.45]
    for reading in readings:
        if told and reading.time_s == pytest.approx(3.45):
            ledger.note_gap("gpu:0", 1.95, reading.time_s)  # as the session does: before it
        ledger.add_readings([reading])
    return ledger.pop_finished() + ledger.finish()


def test_steps_touched_by_a_poll_gap_are_flagged_and_get_wider_bounds() -> None:
    told, untold = _gap_run(told=True), _gap_run(told=False)
    assert [step_flag_names(s.flags) for s in told] == [
        (),
        ("poll_gap",),
        ("poll_gap",),
        ("poll_gap",),
        (),
    ]
    assert [s.energy_j for s in told] == pytest.approx([s.energy_j for s in untold])
    assert told[2].energy_uncertainty_j > untold[2].energy_uncertainty_j  # wholly in the gap
    assert told[0].energy_uncertainty_j == untold[0].energy_uncertainty_j
    assert all(abs(s.energy_j - 100.0) <= s.energy_uncertainty_j + 1e-9 for s in told)

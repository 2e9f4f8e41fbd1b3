"""Faulty sensors next to a good one in a real Sampler: the consumer sees only valid
readings, the good device keeps flowing every poll, problems are counted and reported
once, and a sensor that blocks forever neither wedges the polls nor stop().

Deterministic: blocking sensors wait on a ``threading.Event`` that the test controls, and
nothing asserts how fast anything ran; time bounds appear only as generous upper limits
(a join that must succeed within 10 s)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pytest

from greenprof.records import Reading
from greenprof.sampler import Sampler, close_sensors
from greenprof.sensors import guard as g
from greenprof.sensors.fake import FakeSensor

GOOD = "gpu:0"
BAD = "gpu:1"
POLLS = 12


class ScriptedSensor:
    """Returns ``make(i)`` on its i-th read (raising what it returns, if an exception)."""

    def __init__(self, make: Callable[[int], object], device: str = BAD) -> None:
        self.device = device
        self._make = make
        self.reads = 0
        self.closed = False

    def read(self) -> Reading:
        value = self._make(self.reads)
        self.reads += 1
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[return-value]

    def close(self) -> None:
        self.closed = True


class BlockingSensor:
    """Answers normally until ``block`` is set; then every read waits for ``release``."""

    def __init__(self, device: str = BAD) -> None:
        self.device = device
        self.block = threading.Event()
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.energy_j = 0.0

    def read(self) -> Reading:
        if self.block.is_set():
            self.blocked.set()
            self.release.wait()
        self.energy_j += 10.0
        return Reading(self.device, time.monotonic(), self.energy_j, 100.0)

    def close(self) -> None:
        self.release.set()


class BlockingClose(FakeSensor):
    def __init__(self, device: str, release: threading.Event) -> None:
        super().__init__(device)
        self._release = release

    def close(self) -> None:
        self._release.wait()


def now() -> float:
    return time.monotonic()


def counter(i: int, start_j: float = 1e5) -> float:
    return start_j + 20.0 * i


# The faults measured on main, each as a sensor -------------------------------------


FAULTS: dict[str, tuple[Callable[[int], object], str]] = {
    "nan energy": (
        lambda i: Reading(BAD, now(), math.nan if i == 3 else counter(i), 200.0),
        g.ENERGY_INVALID,
    ),
    "inf energy and power": (
        lambda i: (
            Reading(BAD, now(), math.inf, math.inf)
            if i % 2
            else Reading(BAD, now(), counter(i), 1.0)
        ),
        g.NOTHING_USABLE,
    ),
    "negative power": (
        lambda i: Reading(BAD, now(), None, -50.0 if i == 2 else 50.0),
        g.POWER_INVALID,
    ),
    "negative counter": (lambda i: Reading(BAD, now(), -20_318.0, None), g.ENERGY_INVALID),
    "not a reading": (
        lambda i: {"energy_j": 1.0} if i == 4 else Reading(BAD, now(), counter(i), None),
        g.NOT_A_READING,
    ),
    "str energy": (lambda i: Reading(BAD, now(), "1.0", 10.0), g.BAD_TYPE),  # type: ignore[arg-type]
    "time backwards": (
        lambda i: Reading(BAD, now() - (100.0 if i == 5 else 0.0), counter(i), None),
        g.TIME_BACKWARDS,
    ),
    "one-off low glitch": (
        lambda i: Reading(BAD, now(), counter(i, 5e6) - (21.0 if i == 4 else 0.0), None),
        g.COUNTER_STEP_BACK,
    ),
    "one-read dip": (
        lambda i: Reading(BAD, now(), 3.0 if i == 4 else counter(i), None),
        g.COUNTER_DIP,
    ),
    "counter goes backwards for good": (
        lambda i: Reading(BAD, now(), counter(-i, 5e6), None),
        g.COUNTER_STEP_BACK,
    ),
    "raises": (lambda i: RuntimeError("driver gone"), g.READ_ERROR),
    "all None": (lambda i: Reading(BAD, now(), None, None), g.NOTHING_USABLE),
}


def assert_valid(readings: list[Reading]) -> None:
    for reading in readings:
        assert isinstance(reading, Reading)
        assert type(reading.time_s) is float and math.isfinite(reading.time_s)
        assert reading.energy_j is not None or reading.power_w is not None
        for value in (reading.energy_j, reading.power_w):
            assert value is None or (type(value) is float and math.isfinite(value) and value >= 0)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_sensor_never_stalls_the_good_one(fault: str) -> None:
    make, reason = FAULTS[fault]
    got: list[list[Reading]] = []
    errors: list[str] = []
    rejected: list[tuple[str, float, str]] = []
    bad = ScriptedSensor(make)
    sampler = Sampler(
        [FakeSensor(GOOD, 250.0), bad],
        interval_s=0.1,
        consumer=got.append,
        on_error=errors.append,
        on_rejected=lambda *event: rejected.append(event),
        read_timeout_s=10.0,  # never reached: nothing here blocks
    )
    for _ in range(POLLS):
        sampler.poll()
    sampler.stop()

    assert len(got) == POLLS + 1
    for poll in got:
        assert_valid(poll)
        assert [x.device for x in poll].count(GOOD) == 1  # the good device, every poll
    bad_times = [x.time_s for poll in got for x in poll if x.device == BAD]
    assert bad_times == sorted(set(bad_times))
    bad_counter = [x.energy_j for poll in got for x in poll if x.device == BAD and x.energy_j]
    assert bad_counter == sorted(bad_counter)

    health = sampler.health()
    assert health[GOOD].ok and health[GOOD].stats.problems == 0
    assert health[BAD].stats.count(reason) >= 1
    assert health[BAD].stats.last_problem is not None
    assert len(errors) == len(set(errors))  # each kind of problem reported once
    assert any(BAD in message for message in errors)
    if reason != g.READ_ERROR:
        assert {(device, why) for device, _, why in rejected} >= {(BAD, reason)}


def test_the_issue_glitch_costs_no_energy() -> None:
    """1 J low on a 5 MJ counter once: the device's counter keeps its true increments."""
    got: list[list[Reading]] = []
    bad = ScriptedSensor(
        lambda i: Reading(BAD, now(), 5e6 + 20.0 * i - (21.0 if i == 3 else 0), None)
    )
    sampler = Sampler([bad], interval_s=0.1, consumer=got.append, read_timeout_s=10.0)
    for _ in range(6):
        sampler.poll()
    values = [x.energy_j for poll in got for x in poll]
    assert values == [5e6, 5e6 + 20, 5e6 + 40, 5e6 + 80, 5e6 + 100]
    assert sampler.health()[BAD].stats.count(g.COUNTER_STEP_BACK) == 1


def test_a_sensor_that_raises_every_time_is_reported_once() -> None:
    errors: list[str] = []
    sensor = ScriptedSensor(lambda i: OSError("NVML: GPU is lost"))
    sampler = Sampler(
        [FakeSensor(GOOD), sensor], interval_s=0.1, consumer=lambda _: None, on_error=errors.append
    )
    for _ in range(POLLS):
        sampler.poll()
    assert len(errors) == 1 and "GPU is lost" in errors[0] and BAD in errors[0]
    health = sampler.health()[BAD]
    assert health.failing and not health.wedged and health.last_good_s is None
    assert health.stats.count(g.READ_ERROR) == POLLS
    assert sampler.health()[GOOD].ok


def test_a_sensor_that_recovers_is_reported_again_when_it_fails_again() -> None:
    errors: list[str] = []
    failing = {0, 1, 2, 5, 6}
    sensor = ScriptedSensor(
        lambda i: OSError(f"fail {i}") if i in failing else Reading(BAD, now(), float(i), None)
    )
    sampler = Sampler([sensor], interval_s=0.1, consumer=lambda _: None, on_error=errors.append)
    for _ in range(8):
        sampler.poll()
    assert errors == [
        "sensor gpu:1 failed to read: OSError('fail 0')",
        "sensor gpu:1 failed to read: OSError('fail 5')",
    ]
    assert sampler.health()[BAD].ok


def test_a_sensor_blocked_forever_is_skipped_and_the_others_keep_flowing() -> None:
    got: list[list[Reading]] = []
    errors: list[str] = []
    blocking = BlockingSensor()
    blocking.block.set()
    sampler = Sampler(
        [FakeSensor(GOOD), blocking],
        interval_s=0.1,
        consumer=got.append,
        on_error=errors.append,
        read_timeout_s=0.5,
    )
    for _ in range(POLLS):
        sampler.poll()
    assert blocking.blocked.is_set()
    assert all([x.device for x in poll] == [GOOD] for poll in got)
    assert len(got) == POLLS
    health = sampler.health()
    assert health[BAD].wedged and not health[BAD].ok
    assert health[BAD].stats.count(g.READ_TIMEOUT) == 1  # once: later polls skip it
    assert errors == [f"sensor {BAD} did not answer within 0.5 s; skipped until it does"]

    # it answers at last: the late answer is used and the sensor rejoins
    blocking.block.clear()
    blocking.release.set()
    deadline = time.monotonic() + 10.0
    while not any(x.device == BAD for poll in got for x in poll):
        assert time.monotonic() < deadline, "the released sensor never rejoined"
        sampler.poll()
    sampler.poll()
    assert [x.device for x in got[-1]] == [GOOD, BAD]
    assert sampler.health()[BAD].ok
    sampler.stop()


def test_stop_returns_while_a_read_blocks_forever() -> None:
    """The issue's case: training done, a read blocked — stop() must still return."""
    seen = threading.Event()
    polls_with_good: list[int] = []

    def consumer(readings: list[Reading]) -> None:
        if any(x.device == GOOD for x in readings):
            polls_with_good.append(1)
        if len(polls_with_good) >= 5:
            seen.set()

    blocking = BlockingSensor()
    sampler = Sampler(
        [FakeSensor(GOOD), blocking], interval_s=0.02, consumer=consumer, read_timeout_s=0.2
    )
    sampler.start()
    blocking.block.set()
    assert blocking.blocked.wait(10.0)
    assert seen.wait(10.0), "the good sensor stopped flowing"

    stopper = threading.Thread(target=lambda: sampler.stop(settle_s=0.1), daemon=True)
    stopper.start()
    stopper.join(timeout=10.0)
    assert not stopper.is_alive(), "stop() did not return"
    assert sampler.health()[BAD].wedged
    blocking.release.set()  # let the parked reader thread end


def test_stop_returns_when_a_read_blocks_during_the_final_poll() -> None:
    blocking = BlockingSensor()
    sampler = Sampler(
        [FakeSensor(GOOD), blocking], interval_s=0.05, consumer=lambda _: None, read_timeout_s=0.2
    )
    sampler.start()
    blocking.block.set()  # the next read, maybe the one stop() makes, blocks
    stopper = threading.Thread(target=lambda: sampler.stop(settle_s=0.05), daemon=True)
    stopper.start()
    stopper.join(timeout=10.0)
    assert not stopper.is_alive(), "stop() did not return"
    blocking.release.set()


def test_close_sensors_does_not_wait_for_a_wedged_close() -> None:
    release = threading.Event()
    good = FakeSensor(GOOD)
    stuck = BlockingClose(BAD, release)
    failing = ScriptedSensor(lambda i: None, device="gpu:2")
    failing.close = lambda: (_ for _ in ()).throw(RuntimeError("close failed"))  # type: ignore[method-assign]
    done: list[tuple[str, ...]] = []
    closer = threading.Thread(
        target=lambda: done.append(close_sensors([good, stuck, failing], timeout_s=0.2)),
        daemon=True,
    )
    closer.start()
    closer.join(timeout=10.0)
    assert done == [(BAD,)]
    assert good._closed
    release.set()

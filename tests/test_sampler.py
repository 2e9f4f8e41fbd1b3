"""The Sampler's plumbing: background polling, health on an injected clock, callbacks,
reader threads. Faulty sensors are in tests/reliability/test_sensor_faults.py."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import pytest

from greenprof.records import Reading
from greenprof.sampler import (
    MAX_READ_TIMEOUT_S,
    MIN_READ_TIMEOUT_S,
    DeviceHealth,
    Sampler,
    default_read_timeout_s,
)
from greenprof.sensors import guard as g
from greenprof.sensors.fake import FakeSensor


class FakeClock:
    def __init__(self, now_s: float = 100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


class ListSensor:
    """Returns the given readings in turn (the last one again when they run out)."""

    def __init__(self, device: str, readings: list[object]) -> None:
        self.device = device
        self._readings = readings
        self.reads = 0

    def read(self) -> Reading:
        value = self._readings[min(self.reads, len(self._readings) - 1)]
        self.reads += 1
        return value  # type: ignore[return-value]

    def close(self) -> None:
        pass


def test_the_default_read_timeout_is_five_polls_within_bounds() -> None:
    assert default_read_timeout_s(0.1) == 0.5
    assert default_read_timeout_s(0.01) == MIN_READ_TIMEOUT_S
    assert default_read_timeout_s(2.0) == MAX_READ_TIMEOUT_S
    sampler = Sampler([], interval_s=0.1, consumer=lambda _: None)
    assert sampler.read_timeout_s == 0.5


def test_polls_in_the_background_until_stopped() -> None:
    got: list[list[Reading]] = []
    enough = threading.Event()

    def consumer(readings: list[Reading]) -> None:
        got.append(readings)
        if len(got) >= 4:
            enough.set()

    sampler = Sampler(
        [FakeSensor("gpu:0"), FakeSensor("gpu:1")], interval_s=0.01, consumer=consumer
    )
    sampler.start()
    assert enough.wait(10.0)
    sampler.stop(settle_s=0.03)
    polls = sampler.polls
    assert polls == len(got) >= 5
    assert all([x.device for x in readings] == ["gpu:0", "gpu:1"] for readings in got)
    assert sampler.cpu_time_s >= 0.0
    assert not any(t.name == "greenprof-sampler" and t.is_alive() for t in threading.enumerate())


def test_reader_threads_end_after_stop() -> None:
    sampler = Sampler([FakeSensor("gpu:7")], interval_s=0.01, consumer=lambda _: None)
    sampler.start()
    sampler.stop()
    deadline = time.monotonic() + 10.0
    while any(t.name == "greenprof-read-gpu:7" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the reader thread did not end"
        time.sleep(0.01)


def test_health_is_a_frozen_snapshot_on_the_sampler_clock() -> None:
    clock = FakeClock(100.0)
    sensor = FakeSensor("gpu:0", clock=clock)
    sampler = Sampler([sensor], interval_s=0.1, consumer=lambda _: None, clock=clock)
    before = sampler.health()["gpu:0"]
    assert before == DeviceHealth("gpu:0", False, False, None, None, before.stats)
    assert before.ok
    clock.now_s = 101.0
    sampler.poll()
    clock.now_s = 103.5
    health = sampler.health()["gpu:0"]
    assert health.last_good_s == 101.0 and health.silent_s == 2.5
    assert health.stats.passed == 1 and health.stats.problems == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        health.wedged = True  # type: ignore[misc]


def test_on_rejected_gets_each_rejected_reading_before_the_consumer() -> None:
    events: list[object] = []
    sensor = ListSensor(
        "gpu:0",
        [
            Reading("gpu:0", 1.0, 10.0, 100.0),
            Reading("gpu:0", 2.0, 10.0, math.nan),
            Reading("gpu:0", 3.0, "x", 100.0),  # type: ignore[arg-type]
            Reading("gpu:0", 4.0, 12.0, 100.0),
        ],
    )
    sampler = Sampler(
        [sensor],
        interval_s=0.1,
        consumer=lambda readings: events.append([r.time_s for r in readings]),
        on_rejected=lambda *event: events.append(event),
    )
    for _ in range(4):
        sampler.poll()
    assert events == [
        [1.0],
        ("gpu:0", 2.0, g.POWER_INVALID),
        [2.0],
        ("gpu:0", 3.0, g.BAD_TYPE),
        [],
        [4.0],
    ]
    health = sampler.health()["gpu:0"]
    assert health.ok  # the last read was fine again
    assert dict(health.stats.counts) == {g.POWER_INVALID: 1, g.BAD_TYPE: 1}


def test_a_device_whose_reads_are_all_rejected_is_failing() -> None:
    sensor = ListSensor("gpu:0", [Reading("gpu:0", 1.0, None, None)])
    sampler = Sampler([sensor], interval_s=0.1, consumer=lambda _: None)
    sampler.poll()
    assert sampler.health()["gpu:0"].failing


def test_a_read_held_back_for_one_poll_is_not_failing() -> None:
    sensor = ListSensor(
        "gpu:0",
        [
            Reading("gpu:0", 1.0, 1e5, None),
            Reading("gpu:0", 2.0, 5.0, None),  # a drop: held until the next read
            Reading("gpu:0", 3.0, 25.0, None),  # continues from it: a reset
        ],
    )
    got: list[list[Reading]] = []
    sampler = Sampler([sensor], interval_s=0.1, consumer=got.append)
    sampler.poll()
    sampler.poll()
    assert got[-1] == [] and not sampler.health()["gpu:0"].failing
    sampler.poll()
    assert [(r.time_s, r.energy_j) for r in got[-1]] == [(2.0, 1e5 + 5.0), (3.0, 1e5 + 25.0)]
    assert sampler.health()["gpu:0"].stats.count(g.COUNTER_RESET) == 1


def test_a_consumer_failure_is_reported_once_and_polling_goes_on() -> None:
    errors: list[str] = []

    def consumer(_: list[Reading]) -> None:
        raise ValueError("boom")

    sampler = Sampler([FakeSensor()], interval_s=0.1, consumer=consumer, on_error=errors.append)
    for _ in range(3):
        sampler.poll()
    assert sampler.polls == 3
    assert errors == ["processing readings failed: ValueError('boom')"]


def test_callbacks_that_raise_do_not_break_a_poll() -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("callback bug")

    sensor = ListSensor("gpu:0", [Reading("gpu:0", 1.0, math.nan, 5.0)])
    got: list[list[Reading]] = []
    sampler = Sampler(
        [sensor], interval_s=0.1, consumer=got.append, on_error=broken, on_rejected=broken
    )
    sampler.poll()
    assert got == [[Reading("gpu:0", 1.0, None, 5.0)]]

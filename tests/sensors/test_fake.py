"""Simulated and replayed sensors: counters that behave like NVIDIA's, always labelled simulated."""

from __future__ import annotations

import pytest

from greenprof.sensors.base import PowerSensor, describe
from greenprof.sensors.fake import FakeSensor, ReplaySensor
from greenprof.sensors.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_s=50.0)


def energy_at(sensor: FakeSensor, clock: FakeClock, offset_s: float) -> float | None:
    clock.now_s = 50.0 + offset_s
    return sensor.read().energy_j


def test_counter_advances_every_update_period_at_the_scripted_power(clock: FakeClock) -> None:
    sensor = FakeSensor("gpu:0", power_w=250.0, clock=clock)
    assert isinstance(sensor, PowerSensor)
    assert energy_at(sensor, clock, 0.05) == 0.0
    assert energy_at(sensor, clock, 0.1) == pytest.approx(25.0)
    assert energy_at(sensor, clock, 0.19) == pytest.approx(25.0)
    assert energy_at(sensor, clock, 1.0) == pytest.approx(250.0)
    assert sensor.read().power_w == 250.0


def test_energy_integrates_a_power_step_exactly(clock: FakeClock) -> None:
    sensor = FakeSensor("gpu:0", power_w=lambda t: 100.0 if t < 50.5 else 300.0, clock=clock)
    assert energy_at(sensor, clock, 1.0) == pytest.approx(200.0, rel=1e-6)


def test_phase_shifts_the_counter_updates(clock: FakeClock) -> None:
    sensor = FakeSensor("gpu:0", power_w=100.0, phase_s=0.04, clock=clock)
    assert energy_at(sensor, clock, 0.1) == pytest.approx(4.0)
    assert energy_at(sensor, clock, 0.15) == pytest.approx(14.0)


def test_power_only_and_counter_only_modes(clock: FakeClock) -> None:
    power_only = FakeSensor("gpu:0", 80.0, report_counter=False, clock=clock)
    counter_only = FakeSensor("gpu:1", 80.0, report_power=False, clock=clock)
    clock.advance(1.0)
    assert power_only.read().energy_j is None
    assert power_only.read().power_w == 80.0
    assert counter_only.read().power_w is None
    assert counter_only.read().energy_j == pytest.approx(80.0)


@pytest.mark.parametrize(
    ("device", "kind", "node_wide"),
    [
        ("gpu:0", "gpu", False),
        ("cpu:0", "cpu", True),
        ("dram:1", "dram", True),
        ("x", "other", False),
    ],
)
def test_fake_devices_are_labelled_simulated(
    device: str, kind: str, node_wide: bool, clock: FakeClock
) -> None:
    info = describe(FakeSensor(device, clock=clock))
    assert info.method == "simulated"
    assert info.kind == kind
    assert info.node_wide is node_wide
    assert "not a measurement" in info.note


def test_read_after_close_raises(clock: FakeClock) -> None:
    sensor = FakeSensor(clock=clock)
    sensor.close()
    with pytest.raises(RuntimeError, match="closed"):
        sensor.read()


ROWS = [(0.0, 0.0, 100.0), (1.0, 100.0, 120.0), (2.0, 200.0, 140.0)]


def test_replay_follows_the_rows_and_keeps_counting_across_loops(clock: FakeClock) -> None:
    sensor = ReplaySensor("gpu:0", ROWS, clock=clock)
    seen = []
    for offset_s in (0.0, 0.5, 1.5, 2.5, 3.5, 4.5):
        clock.now_s = 50.0 + offset_s
        reading = sensor.read()
        seen.append((reading.energy_j, reading.power_w))
    assert seen == [
        (0.0, 100.0),
        (0.0, 100.0),
        (100.0, 120.0),
        (200.0, 100.0),
        (300.0, 120.0),
        (400.0, 100.0),
    ]
    assert describe(sensor).method == "simulated"


def test_replay_restarts_after_close(clock: FakeClock) -> None:
    sensor = ReplaySensor("gpu:0", ROWS, clock=clock)
    sensor.read()
    clock.advance(1.5)
    assert sensor.read().energy_j == 100.0
    sensor.close()
    assert sensor.read().energy_j == 0.0


def test_replay_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="two rows"):
        ReplaySensor("gpu:0", [(0.0, 0.0, 1.0)])


def test_power_can_be_a_declared_boxcar_average_like_recent_nvml(clock: FakeClock) -> None:
    """100 W until 10 s, 300 W after: 0.25 s after the change the 1 s mean is 150 W."""
    sensor = FakeSensor(
        "gpu:0",
        power_w=lambda t: 100.0 if t < 60.0 else 300.0,
        clock=clock,
        report_counter=False,
        power_window_s=1.0,
    )
    assert sensor.info.power_window_s == 1.0
    clock.now_s = 60.25
    assert sensor.read().power_w == pytest.approx(150.0, rel=1e-3)
    clock.now_s = 61.5
    assert sensor.read().power_w == pytest.approx(300.0)
    assert FakeSensor("gpu:0", clock=clock).info.power_window_s is None

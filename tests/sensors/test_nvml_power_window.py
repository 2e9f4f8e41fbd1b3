"""NVML's power-only path declares what its power readings average over (issue 14)."""

from __future__ import annotations

import pytest

from greenprof.sensors.nvml import NVML_POWER_USAGE_WINDOW_S, NvmlSensor, open_nvml_sensors
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml

UUID = "GPU-aaaaaaaa-1111-2222-3333-444444444444"


def _open(gpu: ScriptedGpu) -> NvmlSensor:
    clock = FakeClock()
    sensors = open_nvml_sensors(ScriptedNvml([gpu], clock), {}, clock)
    assert len(sensors) == 1
    return sensors[0]


@pytest.mark.parametrize(
    ("has_counter", "has_instant_field", "window_s"),
    [
        (False, False, NVML_POWER_USAGE_WINDOW_S),  # GetPowerUsage only: a 1 s average
        (False, True, None),  # the instant field: instantaneous
        (True, False, None),  # the counter measures energy; power only splits its jumps
    ],
)
def test_power_usage_without_a_counter_is_declared_a_one_second_average(
    *, has_counter: bool, has_instant_field: bool, window_s: float | None
) -> None:
    gpu = ScriptedGpu(
        UUID, name="NVIDIA A10", has_counter=has_counter, has_instant_field=has_instant_field
    )
    assert _open(gpu).info.power_window_s == window_s

"""The shipped NVML stand-in: its documented example holds, and each script knob works."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

import greenprof
from greenprof.errors import SensorError
from greenprof.sensors import testing
from greenprof.sensors.nvml import open_nvml_sensors
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml


def test_the_documented_example_runs_as_written() -> None:
    doc = testing.__doc__ or ""
    start = doc.index("::\n") + len("::\n")
    end = doc.index("\nA profiled loop")
    example = textwrap.dedent(doc[start:end])
    exec(compile(example, "greenprof.sensors.testing example", "exec"), {})


def test_a_profiled_loop_records_the_scripted_gpu(tmp_path: Path) -> None:
    nvml = ScriptedNvml([ScriptedGpu("GPU-0000", name="NVIDIA H100 80GB HBM3", power_w=300)])
    sensors = open_nvml_sensors(nvml, {})  # counters on time.monotonic, as the profiler's
    started_s = time.monotonic()
    with greenprof.Profiler(
        "scripted", db=tmp_path / "runs.db", sensors=sensors, interval_s=0.02
    ) as prof:
        for _ in range(3):
            with prof.step(samples=8):
                time.sleep(0.15)  # longer than the 100 ms counter update
    elapsed_s = time.monotonic() - started_s
    store = greenprof.RunStore(tmp_path / "runs.db")
    run = store.run("scripted")
    (device,) = run.devices
    assert (device.device, device.method, device.name) == (
        "gpu:0",
        "counter",
        "NVIDIA H100 80GB HBM3",
    )
    steps = list(store.steps(run.run_id))
    assert [s.samples for s in steps] == [8, 8, 8]
    energy_j = store.device_energy_j(run.run_id)["gpu:0"]
    assert 0.0 < energy_j <= 300.0 * (elapsed_s + 0.1)  # never more than 300 W for the run
    for sensor in sensors:
        sensor.close()
    assert not nvml.initialized


def test_the_counter_ticks_at_the_scripted_period_and_power() -> None:
    clock = FakeClock()
    gpu = ScriptedGpu("GPU-1", power_w=400, counter_period_s=0.5)
    (sensor,) = open_nvml_sensors(ScriptedNvml([gpu], clock), {}, clock)
    first = sensor.read().energy_j
    assert first is not None
    clock.advance(0.4)
    assert sensor.read().energy_j == first  # not yet refreshed
    clock.advance(0.1)
    assert sensor.read().energy_j == pytest.approx(first + 200.0)  # 400 W × 0.5 s
    gpu.power_w = 100
    clock.advance(1.0)
    assert sensor.read().energy_j == pytest.approx(first + 300.0)
    sensor.close()


def test_failures_are_scripted_once_or_until_lifted() -> None:
    clock = FakeClock()
    nvml = ScriptedNvml([ScriptedGpu("GPU-1")], clock)
    (sensor,) = open_nvml_sensors(nvml, {}, clock)
    nvml.fail_next["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVML_ERROR_GPU_IS_LOST
    with pytest.raises(SensorError, match="GPU is lost"):
        sensor.read()
    sensor.read()
    nvml.failing["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVML_ERROR_UNKNOWN
    for _ in range(3):
        with pytest.raises(SensorError):
            sensor.read()
    del nvml.failing["nvmlDeviceGetTotalEnergyConsumption"]
    assert sensor.read().energy_j is not None
    sensor.close()
    assert not nvml.initialized

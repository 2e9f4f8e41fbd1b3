"""NVML GPU sensor against a scripted pynvml: units, fallbacks, UUID/MIG mapping, lifetime."""

from __future__ import annotations

import pytest

from greenprof.errors import SensorError
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.nvml import NvmlSensor, open_nvml, open_nvml_sensors
from tests.sensors.scripted_pynvml import FakeClock, ScriptedGpu, ScriptedNvml

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
MIG_B = "MIG-cccccccc-1111-2222-3333-444444444444"
MIG_B2 = "MIG-dddddddd-1111-2222-3333-444444444444"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def two_gpus(clock: FakeClock, mig_uuids: tuple[str, ...] = ()) -> ScriptedNvml:
    gpus = [
        ScriptedGpu(UUID_A, name="NVIDIA A100-SXM4-40GB", power_w=250),
        ScriptedGpu(UUID_B, name="NVIDIA A100-SXM4-40GB", power_w=300, mig_uuids=mig_uuids),
    ]
    return ScriptedNvml(gpus, clock)


def open_one(nvml: ScriptedNvml, clock: FakeClock, visible: str | None = None) -> NvmlSensor:
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    sensors = open_nvml_sensors(nvml, env, clock)
    assert len(sensors) >= 1
    return sensors[0]


def test_counter_is_reported_in_joules_and_power_in_watts(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    sensor = open_one(nvml, clock)
    first = sensor.read()
    clock.advance(1.0)
    second = sensor.read()
    assert isinstance(sensor, PowerSensor)
    assert first.energy_j == pytest.approx(5000.0)  # 5,000,000 mJ on the driver's counter
    assert second.energy_j is not None
    assert second.energy_j - first.energy_j == pytest.approx(250.0)  # 250 W for 1 s
    assert second.power_w == pytest.approx(250.0)
    assert second.time_s == clock()
    assert sensor.info.method == "counter"
    assert sensor.info.power_limit_w == pytest.approx(400.0)
    assert sensor.info.name == "NVIDIA A100-SXM4-40GB"
    assert sensor.info.node_wide is False


def test_counter_moves_only_every_100_ms(clock: FakeClock) -> None:
    sensor = open_one(two_gpus(clock), clock)
    start = sensor.read().energy_j
    clock.advance(0.05)
    assert sensor.read().energy_j == start
    clock.advance(0.05)
    after_tick = sensor.read().energy_j
    assert after_tick is not None
    assert start is not None
    assert after_tick - start == pytest.approx(25.0)
    assert sensor.update_period_s == pytest.approx(0.1)


def test_gpu_without_counter_falls_back_to_instant_power(clock: FakeClock) -> None:
    nvml = ScriptedNvml([ScriptedGpu(UUID_A, name="Tesla P100", has_counter=False)], clock)
    sensor = open_one(nvml, clock)
    reading = sensor.read()
    assert sensor.info.method == "power_integration"
    assert reading.energy_j is None
    assert reading.power_w == pytest.approx(250.0)
    assert "Volta" in sensor.info.note
    assert "NVML_FI_DEV_POWER_INSTANT" in sensor.info.note


def test_old_driver_without_power_field_uses_power_usage(clock: FakeClock) -> None:
    gpu = ScriptedGpu(UUID_A, name="Tesla P100", has_counter=False, has_instant_field=False)
    nvml = ScriptedNvml([gpu], clock)
    sensor = open_one(nvml, clock)
    gpu.power_w = 180
    assert sensor.read().power_w == pytest.approx(180.0)
    assert "nvmlDeviceGetPowerUsage" in sensor.info.note


def test_gpu_with_neither_counter_nor_power_is_skipped_with_a_reason(clock: FakeClock) -> None:
    jetson = ScriptedGpu(
        UUID_A, name="Orin", has_counter=False, has_instant_field=False, has_power_usage=False
    )
    nvml = ScriptedNvml([jetson], clock)
    result = open_nvml(nvml, {}, clock)
    assert result.sensors == ()
    assert any("Orin" in note and "cannot be measured" in note for note in result.notes)
    assert not nvml.initialized


def test_counter_reset_is_returned_raw_for_the_consumer(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    sensor = open_one(nvml, clock)
    before = sensor.read().energy_j
    nvml.gpus[0].energy_mj = 0  # the driver reloaded
    clock.advance(0.1)
    after = sensor.read().energy_j
    assert before is not None
    assert after is not None
    assert after < before
    assert after == pytest.approx(25.0)


def test_hidden_gpu_is_not_measured_and_the_visible_one_is_gpu_0(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    sensors = open_nvml_sensors(nvml, {"CUDA_VISIBLE_DEVICES": "1"}, clock)
    assert [s.device for s in sensors] == ["gpu:0"]
    assert sensors[0].info.uuid == UUID_B
    assert sensors[0].read().power_w == pytest.approx(300.0)


def test_gpu_uuid_and_unique_prefix_select_the_right_gpu(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    env = {"CUDA_VISIBLE_DEVICES": f"GPU-bbbb,{UUID_A}"}
    sensors = open_nvml_sensors(nvml, env, clock)
    assert [(s.device, s.info.uuid) for s in sensors] == [("gpu:0", UUID_B), ("gpu:1", UUID_A)]


def test_unset_means_all_gpus_in_nvml_order(clock: FakeClock) -> None:
    sensors = open_nvml_sensors(two_gpus(clock), {}, clock)
    assert [(s.device, s.info.uuid) for s in sensors] == [("gpu:0", UUID_A), ("gpu:1", UUID_B)]


def test_empty_string_means_no_gpu_and_nvml_is_released(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    result = open_nvml(nvml, {"CUDA_VISIBLE_DEVICES": ""}, clock)
    assert result.sensors == ()
    assert any("empty" in note for note in result.notes)
    assert nvml.init_count == nvml.shutdown_count == 1


@pytest.mark.parametrize("visible", ["0,foo,1", "0,7,1", "0,GPU-,1", "0,-1,1"])
def test_an_entry_that_names_no_gpu_ends_the_list_as_in_cuda(
    clock: FakeClock, visible: str
) -> None:
    result = open_nvml(two_gpus(clock), {"CUDA_VISIBLE_DEVICES": visible}, clock)
    assert [s.info.uuid for s in result.sensors] == [UUID_A]
    bad = visible.split(",")[1]
    assert any(repr(bad) in note and "ignored" in note for note in result.notes)


def test_minus_one_hides_every_gpu(clock: FakeClock) -> None:
    assert open_nvml_sensors(two_gpus(clock), {"CUDA_VISIBLE_DEVICES": "-1"}, clock) == []


def test_mig_slice_measures_the_whole_parent_gpu_and_says_so(clock: FakeClock) -> None:
    nvml = two_gpus(clock, mig_uuids=(MIG_B, MIG_B2))
    sensor = open_one(nvml, clock, visible=MIG_B)
    reading = sensor.read()
    assert sensor.device == "gpu:0"
    assert sensor.info.uuid == UUID_B
    assert sensor.info.method == "counter"
    assert f"MIG slice {MIG_B}" in sensor.info.note
    assert "whole parent GPU" in sensor.info.note
    assert "includes other slices" in sensor.info.note
    assert reading.power_w == pytest.approx(300.0)
    assert reading.utilization_pct is None  # nvml.h: not supported with MIG enabled


def test_legacy_mig_id_maps_to_its_parent_gpu(clock: FakeClock) -> None:
    nvml = two_gpus(clock, mig_uuids=(MIG_B,))
    legacy = f"MIG-{UUID_B}/1/0"
    sensor = open_one(nvml, clock, visible=legacy)
    assert sensor.info.uuid == UUID_B
    assert f"MIG slice {legacy}" in sensor.info.note


def test_two_slices_of_one_gpu_are_measured_once(clock: FakeClock) -> None:
    nvml = two_gpus(clock, mig_uuids=(MIG_B, MIG_B2))
    result = open_nvml(nvml, {"CUDA_VISIBLE_DEVICES": f"{MIG_B},{MIG_B2}"}, clock)
    assert [s.device for s in result.sensors] == ["gpu:0"]
    assert any("measured once" in note for note in result.notes)


def test_unknown_mig_id_ends_the_list(clock: FakeClock) -> None:
    result = open_nvml(two_gpus(clock), {"CUDA_VISIBLE_DEVICES": f"0,{MIG_B}"}, clock)
    assert [s.info.uuid for s in result.sensors] == [UUID_A]


def test_mixed_models_with_integer_ids_warn_about_cuda_device_order(clock: FakeClock) -> None:
    nvml = ScriptedNvml(
        [ScriptedGpu(UUID_A, name="NVIDIA A100"), ScriptedGpu(UUID_B, name="NVIDIA T4")], clock
    )
    warned = open_nvml(nvml, {"CUDA_VISIBLE_DEVICES": "0,1"}, clock)
    pci = open_nvml(nvml, {"CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, clock)
    by_uuid = open_nvml(nvml, {"CUDA_VISIBLE_DEVICES": f"{UUID_A},{UUID_B}"}, clock)
    assert any("CUDA_DEVICE_ORDER" in note for note in warned.notes)
    assert not any("CUDA_DEVICE_ORDER" in note for note in pci.notes + by_uuid.notes)


def test_nvml_init_failure_says_the_library_is_missing(clock: FakeClock) -> None:
    nvml = ScriptedNvml([], clock, init_error=ScriptedNvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(SensorError, match=r"libnvidia-ml\.so\.1 not found"):
        open_nvml_sensors(nvml, {}, clock)


def test_nvml_is_shut_down_when_the_last_sensor_closes(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    first, second = open_nvml_sensors(nvml, {}, clock)
    first.close()
    assert nvml.initialized
    second.read()
    second.close()
    second.close()
    assert nvml.init_count == nvml.shutdown_count == 1
    with pytest.raises(SensorError, match="closed"):
        first.read()


def test_a_read_makes_two_power_calls_with_the_counter_and_one_without(
    clock: FakeClock,
) -> None:
    nvml = ScriptedNvml([ScriptedGpu(UUID_A), ScriptedGpu(UUID_B, has_counter=False)], clock)
    with_counter, without = open_nvml_sensors(nvml, {}, clock)
    nvml.calls.clear()
    with_counter.read()
    assert nvml.power_calls() == 2
    nvml.calls.clear()
    without.read()
    assert nvml.power_calls() == 1


def test_details_are_read_at_most_once_per_second(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    sensor = open_one(nvml, clock)
    nvml.calls.clear()
    readings = []
    for _ in range(20):  # 2 s at 10 Hz
        readings.append(sensor.read())
        clock.advance(0.1)
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 2
    assert all(r.utilization_pct == 87.0 for r in readings)
    assert all(r.memory_used_bytes == 12 * 2**30 for r in readings)
    assert all(r.temperature_c == 61.0 for r in readings)


def test_unsupported_details_are_not_called_again(clock: FakeClock) -> None:
    nvml = ScriptedNvml([ScriptedGpu(UUID_A, has_details=False)], clock)
    sensors = open_nvml_sensors(nvml, {}, clock)
    for _ in range(5):
        reading = sensors[0].read()
        clock.advance(1.0)
    assert reading.utilization_pct is None
    assert reading.energy_j is not None
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 1
    assert nvml.calls["nvmlDeviceGetTemperature"] == 1


def test_details_can_be_switched_off(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    result = open_nvml(nvml, {}, clock, details_period_s=None)
    nvml.calls.clear()
    reading = result.sensors[0].read()
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 0
    assert reading.utilization_pct is None


def test_a_failing_counter_read_raises_a_sensor_error_naming_the_device(
    clock: FakeClock,
) -> None:
    nvml = two_gpus(clock)
    sensor = open_one(nvml, clock)
    nvml.fail_next["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVML_ERROR_GPU_IS_LOST
    with pytest.raises(SensorError, match=r"gpu:0.*GPU is lost"):
        sensor.read()
    assert sensor.read().energy_j is not None


def test_a_transient_power_failure_keeps_the_counter_reading(clock: FakeClock) -> None:
    nvml = two_gpus(clock)
    sensor = open_one(nvml, clock)
    nvml.fail_next["nvmlDeviceGetFieldValues"] = nvml.NVML_ERROR_GPU_IS_LOST
    reading = sensor.read()
    assert reading.energy_j is not None
    assert reading.power_w is None
    assert sensor.read().power_w == pytest.approx(250.0)

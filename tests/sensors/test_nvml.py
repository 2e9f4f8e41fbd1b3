"""NVML GPU sensor against a scripted pynvml: units, fallbacks, UUID/MIG mapping, lifetime."""

from __future__ import annotations

import os

import pytest

from greenprof.errors import SensorError
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.nvml import NvmlSensor, open_nvml, open_nvml_sensors
from greenprof.sensors.share import ApportionedSensor, apportion
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml

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


# Shared GPUs: the compute processes NVML lists, apportioned by SM utilization


def gpu_node(clock: FakeClock, count: int) -> ScriptedNvml:
    uuids = [f"GPU-{i:08x}-1111-2222-3333-444444444444" for i in range(count)]
    return ScriptedNvml([ScriptedGpu(uuid, power_w=200) for uuid in uuids], clock)


def rank_sensor(nvml: ScriptedNvml, clock: FakeClock, gpu: int, pid: int) -> ApportionedSensor:
    """The GPU sensor of the process ``pid`` that sees only GPU ``gpu``, apportioned."""
    (sensor,) = open_nvml_sensors(nvml, {"CUDA_VISIBLE_DEVICES": str(gpu)}, clock)
    source = sensor.share_source(own_pids=lambda: {pid}, period_s=1.0)
    assert source is not None
    return ApportionedSensor(sensor, source)


def read_for(sensors: list[ApportionedSensor], clock: FakeClock, seconds: int) -> None:
    for sensor in sensors:
        sensor.read()
    for _ in range(seconds):
        clock.advance(1.0)
        for sensor in sensors:
            sensor.read()


def test_four_ranks_on_a_four_gpu_node_each_keep_their_whole_gpu(clock: FakeClock) -> None:
    nvml = gpu_node(clock, 4)
    for rank, gpu in enumerate(nvml.gpus):
        gpu.sm_util_by_pid = {100 + rank: 90}
    ranks = [rank_sensor(nvml, clock, gpu=rank, pid=100 + rank) for rank in range(4)]
    raw = open_nvml_sensors(nvml, {"CUDA_VISIBLE_DEVICES": "0"}, clock)[0]
    read_for(ranks, clock, seconds=3)
    clock.advance(1.0)
    assert ranks[0].read().energy_j == raw.read().energy_j  # the raw counter, unchanged
    for sensor in ranks[1:]:
        sensor.read()
    for sensor in ranks:
        summary = sensor.summary()
        assert summary.energy_j == pytest.approx(800.0)  # 200 W × 4 s, all of it
        assert summary.device_energy_j == pytest.approx(800.0)
        assert not summary.shared
        assert sensor.share == 1.0
        assert sensor.info.note == ""
    assert nvml.calls["nvmlDeviceGetProcessUtilization"] == 0  # alone: never asked


def test_two_jobs_sharing_an_eight_gpu_node_split_the_shared_gpu_by_utilization(
    clock: FakeClock,
) -> None:
    nvml = gpu_node(clock, 8)
    # job A: ranks on GPUs 0-4 (pids 200-204); job B: ranks on GPUs 4-7 (pids 300-303)
    for rank in range(5):
        nvml.gpus[rank].sm_util_by_pid[200 + rank] = 60
    for rank in range(4):
        nvml.gpus[4 + rank].sm_util_by_pid[300 + rank] = 60
    job_a = [rank_sensor(nvml, clock, gpu=rank, pid=200 + rank) for rank in range(5)]
    job_b = [rank_sensor(nvml, clock, gpu=4 + rank, pid=300 + rank) for rank in range(4)]
    read_for(job_a + job_b, clock, seconds=4)
    a4, b0 = job_a[4].summary(), job_b[0].summary()
    assert a4.device_energy_j == b0.device_energy_j == pytest.approx(800.0)
    assert a4.energy_j == pytest.approx(400.0)  # equal SM utilization: halves
    assert b0.energy_j == pytest.approx(400.0)
    assert a4.shared and b0.shared
    assert a4.method == "SM-utilization share"
    assert "shared GPU (up to 1 other compute process(es))" in job_a[4].info.note
    assert "an estimate" in job_a[4].info.note
    assert job_a[4].info.method == "counter"  # the method is kept, the note says estimate
    for sensor in job_a[:4] + job_b[1:]:
        assert sensor.summary().energy_j == pytest.approx(800.0)
        assert not sensor.summary().shared
    job_energy_j = sum(s.summary().energy_j for s in job_a + job_b)
    assert job_energy_j == pytest.approx(8 * 800.0)  # the node, each GPU once


def test_a_shared_gpu_is_split_in_proportion_to_sm_utilization(clock: FakeClock) -> None:
    nvml = gpu_node(clock, 1)
    nvml.gpus[0].sm_util_by_pid = {7: 75, 8: 25}
    mine, theirs = rank_sensor(nvml, clock, 0, pid=7), rank_sensor(nvml, clock, 0, pid=8)
    read_for([mine, theirs], clock, seconds=2)
    assert mine.summary().energy_j == pytest.approx(300.0)  # 75 % of 200 W × 2 s
    assert theirs.summary().energy_j == pytest.approx(100.0)
    clock.advance(1.0)
    assert mine.read().power_w == pytest.approx(150.0)
    assert mine.share == pytest.approx(0.75)


def test_without_per_process_utilization_the_split_is_equal_and_labelled(
    clock: FakeClock,
) -> None:
    nvml = gpu_node(clock, 1)
    nvml.gpus[0].sm_util_by_pid = {7: 75, 8: 20, 9: 5}
    nvml.gpus[0].has_process_utilization = False
    sensor = rank_sensor(nvml, clock, 0, pid=7)
    read_for([sensor], clock, seconds=3)
    assert sensor.summary().energy_j == pytest.approx(200.0)  # a third of 600 J
    assert sensor.summary().method == "equal split by process count"
    assert "equal split by process count" in sensor.info.note
    assert nvml.calls["nvmlDeviceGetProcessUtilization"] == 1  # unsupported: not asked again


def test_a_process_joining_later_takes_its_share_from_then(clock: FakeClock) -> None:
    nvml = gpu_node(clock, 1)
    gpu = nvml.gpus[0]
    gpu.sm_util_by_pid = {7: 80}
    sensor = rank_sensor(nvml, clock, 0, pid=7)
    read_for([sensor], clock, seconds=2)  # alone: 400 J
    gpu.sm_util_by_pid[8] = 80
    for _ in range(2):
        clock.advance(1.0)
        sensor.read()
    summary = sensor.summary()
    assert summary.energy_j == pytest.approx(400.0 + 200.0)
    assert summary.device_energy_j == pytest.approx(800.0)
    assert (summary.min_share, summary.max_share) == (0.5, 1.0)
    assert "a third" not in summary.text and "75.0% of" in summary.text


def test_a_run_not_in_nvmls_process_list_keeps_the_whole_gpu_and_says_so(
    clock: FakeClock,
) -> None:
    nvml = gpu_node(clock, 1)
    nvml.gpus[0].sm_util_by_pid = {7001: 50, 7002: 50}  # host PIDs, not ours
    sensor = rank_sensor(nvml, clock, 0, pid=7)
    read_for([sensor], clock, seconds=1)
    assert sensor.summary().energy_j == pytest.approx(200.0)
    assert "not among them" in sensor.info.note
    assert "container PID namespace" in sensor.info.note


def test_a_mig_slice_is_not_apportioned(clock: FakeClock) -> None:
    nvml = two_gpus(clock, mig_uuids=(MIG_B,))
    sensor = open_one(nvml, clock, visible=MIG_B)
    assert sensor.share_source(own_pids=lambda: {7}) is None
    assert apportion([sensor]) == [sensor]
    assert "whole parent GPU" in sensor.info.note


def test_apportion_wraps_a_gpu_sensor_with_its_process_share(clock: FakeClock) -> None:
    nvml = gpu_node(clock, 1)
    nvml.gpus[0].sm_util_by_pid = {os.getpid(): 30, 8: 90}
    sensors = open_nvml_sensors(nvml, {}, clock)
    (wrapped,) = apportion(sensors)
    assert isinstance(wrapped, ApportionedSensor)
    wrapped.read()
    clock.advance(1.0)
    assert wrapped.read().power_w == pytest.approx(50.0)  # 30 / 120 of 200 W

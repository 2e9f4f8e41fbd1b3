"""Sensor detection: best source per device, graceful degradation, one node-wide reader per node."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from greenprof.errors import SensorError
from greenprof.sensors import detect
from greenprof.sensors.base import GpuOpenResult, describe
from greenprof.sensors.detect import Detection, detect_sensors, doctor_lines, local_rank
from greenprof.sensors.fake import FakeSensor
from greenprof.sensors.nvml import NVML_BACKEND, NvmlBackend, NvmlSensor
from greenprof.sensors.rapl import RaplPermissionError
from greenprof.sensors.share import ApportionedSensor
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def nvml(clock: FakeClock) -> ScriptedNvml:
    return ScriptedNvml([ScriptedGpu(UUID_A), ScriptedGpu(UUID_B, has_counter=False)], clock)


@pytest.fixture
def no_nvml(clock: FakeClock) -> ScriptedNvml:
    return ScriptedNvml([], clock, init_error=ScriptedNvml.NVML_ERROR_LIBRARY_NOT_FOUND)


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    for dirname, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "dram")]:
        (root / dirname).mkdir(parents=True)
        (root / dirname / "name").write_text(name)
        (root / dirname / "energy_uj").write_text("1000")
        (root / dirname / "max_energy_range_uj").write_text("262143328850")
    return root


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nphysical id\t: 0\n")
    return path


def devices(detection: Detection) -> list[str]:
    return [s.device for s in detection.sensors]


def test_gpus_from_nvml_and_cpu_dram_from_rapl(
    nvml: ScriptedNvml, powercap: Path, clock: FakeClock
) -> None:
    detection = detect_sensors(env={}, pynvml_module=nvml, powercap_root=powercap, clock=clock)
    assert devices(detection) == ["gpu:0", "gpu:1", "cpu:0", "dram:0"]
    methods = {s.device: describe(s).method for s in detection.sensors}
    assert methods == {
        "gpu:0": "counter",
        "gpu:1": "power_integration",
        "cpu:0": "counter",
        "dram:0": "counter",
    }
    assert any(n.startswith("gpu:1: NVML power_integration") for n in detection.notes)
    detection.close()
    assert not nvml.initialized


def test_no_gpu_and_no_rapl_degrades_to_the_cpu_model_and_says_why(
    no_nvml: ScriptedNvml, tmp_path: Path, cpuinfo: Path
) -> None:
    detection = detect_sensors(
        env={}, pynvml_module=no_nvml, powercap_root=tmp_path / "none", cpuinfo_path=cpuinfo
    )
    assert devices(detection) == ["cpu:0"]
    assert describe(detection.sensors[0]).method == "model"
    assert "gpu: NVML not available (libnvidia-ml.so.1 not found: no NVIDIA driver)" in (
        detection.notes
    )
    assert any(n.startswith("cpu: RAPL not available") and "→ model" in n for n in detection.notes)
    assert detection.sensors[0].read().power_w is not None


def test_rapl_permission_denied_falls_back_with_one_warning_on_how_to_fix(
    no_nvml: ScriptedNvml,
    powercap: Path,
    cpuinfo: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def denied(root: Path, **_: object) -> list[object]:
        raise RaplPermissionError([root / "intel-rapl:0" / "energy_uj"], root)

    monkeypatch.setattr(detect, "open_rapl_sensors", denied)
    with caplog.at_level(logging.WARNING):
        detection = detect_sensors(
            env={}, pynvml_module=no_nvml, powercap_root=powercap, cpuinfo_path=cpuinfo
        )
    assert devices(detection) == ["cpu:0"]
    info = describe(detection.sensors[0])
    assert info.method == "model"
    assert info.note.startswith("RAPL permission denied")
    note = next(n for n in detection.notes if "permission denied" in n)
    assert note.startswith("cpu: RAPL permission denied → model; to grant access: sudo chmod o+r")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CVE-2020-8694" in warnings[0].getMessage()


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK"])
def test_node_wide_sensors_only_on_local_rank_zero(
    nvml: ScriptedNvml, powercap: Path, variable: str
) -> None:
    rank1 = detect_sensors(env={variable: "1"}, pynvml_module=nvml, powercap_root=powercap)
    rank0 = detect_sensors(env={variable: "0"}, pynvml_module=nvml, powercap_root=powercap)
    assert devices(rank1) == ["gpu:1"]  # its own GPU, not the node's
    assert devices(rank0) == ["gpu:0", "gpu:1", "cpu:0", "dram:0"]  # local world size unknown
    assert any(f"local rank 0 only ({variable}=1" in n for n in rank1.notes)
    rank0.close()
    rank1.close()


def test_include_node_wide_overrides_the_rank(nvml: ScriptedNvml, powercap: Path) -> None:
    forced = detect_sensors(
        env={"LOCAL_RANK": "3"}, pynvml_module=nvml, powercap_root=powercap, include_node_wide=True
    )
    off = detect_sensors(
        env={}, pynvml_module=nvml, powercap_root=powercap, include_node_wide=False
    )
    assert "cpu:0" in devices(forced)
    assert devices(off) == ["gpu:0", "gpu:1"]
    assert any("include_node_wide=False" in n for n in off.notes)


def test_local_rank_reads_the_first_launcher_variable_set() -> None:
    assert local_rank({}) is None
    assert local_rank({"SLURM_LOCALID": "2", "LOCAL_RANK": "1"}) == (1, "LOCAL_RANK")
    assert local_rank({"LOCAL_RANK": "x", "SLURM_LOCALID": "2"}) == (2, "SLURM_LOCALID")


def test_hidden_gpus_are_reported(nvml: ScriptedNvml, powercap: Path) -> None:
    detection = detect_sensors(
        env={"CUDA_VISIBLE_DEVICES": ""}, pynvml_module=nvml, powercap_root=powercap
    )
    assert devices(detection) == ["cpu:0", "dram:0"]
    assert "gpu: no GPU measured" in detection.notes
    assert any("CUDA_VISIBLE_DEVICES is empty" in n for n in detection.notes)


def test_missing_nvidia_ml_py_is_a_note_not_an_error(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    detection = detect_sensors(env={}, powercap_root=powercap)
    assert devices(detection) == ["cpu:0", "dram:0"]
    assert any("nvidia-ml-py is not installed" in n for n in detection.notes)


def test_a_broken_nvml_stack_does_not_stop_detection(
    clock: FakeClock, powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ScriptedNvml([ScriptedGpu(UUID_A)], clock)
    monkeypatch.setattr(broken, "nvmlDeviceGetCount", lambda: 1 / 0)
    detection = detect_sensors(env={}, pynvml_module=broken, powercap_root=powercap)
    assert devices(detection) == ["cpu:0", "dram:0"]
    assert any("ZeroDivisionError" in n for n in detection.notes)


def test_doctor_lists_each_device_with_method_name_and_note_then_decisions(
    clock: FakeClock, powercap: Path
) -> None:
    nvml = ScriptedNvml(
        [ScriptedGpu(UUID_A, name="NVIDIA H100 80GB HBM3", mig_uuids=("MIG-x",))], clock
    )
    detection = detect_sensors(
        env={"CUDA_VISIBLE_DEVICES": "MIG-x"}, pynvml_module=nvml, powercap_root=powercap
    )
    text = "\n".join(doctor_lines(detection))
    assert "gpu:0" in text
    assert "counter" in text
    assert "NVIDIA H100 80GB HBM3" in text
    assert UUID_A in text
    assert "power limit 400 W" in text
    assert "whole parent GPU" in text
    assert "RAPL package-0" in text
    assert "decisions:" in text
    assert "  - dram:0: RAPL counter (RAPL dram (package-0))" in text


def test_doctor_shows_sensors_without_info_and_an_empty_detection() -> None:
    plain = Detection(sensors=(FakeSensor("cpu:0"),), notes=())
    assert "simulated" in "\n".join(doctor_lines(plain))
    assert doctor_lines(Detection(sensors=(), notes=("gpu: none",))) == [
        "devices: none measured",
        "decisions:",
        "  - gpu: none",
    ]


def test_importing_the_sensor_modules_loads_no_vendor_library() -> None:
    code = (
        "import sys, greenprof.sensors.detect, greenprof.sensors.nvml, greenprof.sensors.rapl,"
        " greenprof.sensors.cpu_model;"
        "print(sorted({'pynvml', 'codecarbon', 'pandas', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# GPU backends: a second vendor plugs in as one more entry


class SecondVendor:
    """A test-only GPU backend, as an AMD one would be: its GPUs are simulated sensors."""

    name = "second vendor"

    def __init__(self, devices: tuple[str, ...] = ("gpu:1",), error: str | None = None) -> None:
        self.devices = devices
        self.error = error
        self.opened: list[FakeSensor] = []

    def open(self, env: Mapping[str, str], clock: Callable[[], float]) -> GpuOpenResult:
        if self.error is not None:
            raise SensorError(self.error)
        self.opened = [FakeSensor(d, clock=clock, name="Vendor X GPU") for d in self.devices]
        return GpuOpenResult(sensors=tuple(self.opened), notes=("vendor library 1.0",))


def one_gpu(clock: FakeClock) -> NvmlBackend:
    return NvmlBackend(ScriptedNvml([ScriptedGpu(UUID_A)], clock))


def test_nvml_is_the_one_production_backend() -> None:
    assert detect.GPU_BACKENDS == (NVML_BACKEND,)
    assert NVML_BACKEND.name == "NVML"


def test_a_second_backend_adds_its_gpus_after_nvmls(clock: FakeClock, tmp_path: Path) -> None:
    other = SecondVendor()
    detection = detect_sensors(
        env={}, gpu_backends=(one_gpu(clock), other), include_node_wide=False, clock=clock
    )
    assert devices(detection) == ["gpu:0", "gpu:1"]
    assert [s.info.name for s in detection.sensors] == ["NVIDIA A100-SXM4-40GB", "Vendor X GPU"]
    assert "gpu: vendor library 1.0" in detection.notes
    assert "gpu:0: NVML counter (NVIDIA A100-SXM4-40GB)" in detection.notes
    assert "gpu:1: second vendor simulated (Vendor X GPU)" in detection.notes


def test_a_device_id_two_backends_claim_is_measured_once(clock: FakeClock) -> None:
    other = SecondVendor(devices=("gpu:0", "gpu:5"))
    detection = detect_sensors(
        env={}, gpu_backends=(one_gpu(clock), other), include_node_wide=False, clock=clock
    )
    assert devices(detection) == ["gpu:0", "gpu:5"]
    assert detection.sensors[0].info.method == "counter"  # NVML's, listed first
    assert any("gpu:0: second vendor also offers this device id" in n for n in detection.notes)


def test_a_backend_that_cannot_be_used_here_is_a_note(clock: FakeClock) -> None:
    broken = SecondVendor(error="vendor library not installed")
    detection = detect_sensors(
        env={}, gpu_backends=(broken, one_gpu(clock)), include_node_wide=False, clock=clock
    )
    assert devices(detection) == ["gpu:0"]
    assert "gpu: vendor library not installed" in detection.notes


def test_pynvml_module_replaces_only_the_nvml_backend(clock: FakeClock) -> None:
    nvml = ScriptedNvml([ScriptedGpu(UUID_A)], clock)
    detection = detect_sensors(
        env={},
        pynvml_module=nvml,
        gpu_backends=(NVML_BACKEND, SecondVendor()),
        include_node_wide=False,
        clock=clock,
    )
    assert devices(detection) == ["gpu:0", "gpu:1"]
    assert nvml.init_count == 1


# GPU ownership per rank (issue 9): every rank measures its own GPU, each GPU once


def node(clock: FakeClock, count: int) -> ScriptedNvml:
    uuids = [f"GPU-{i:08x}-1111-2222-3333-444444444444" for i in range(count)]
    return ScriptedNvml(
        [ScriptedGpu(uuid, power_w=100 + 10 * i) for i, uuid in enumerate(uuids)], clock
    )


def rank_env(rank: int, size: int, visible: str | None = None) -> dict[str, str]:
    env = {"LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size), "RANK": str(rank)}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def test_four_ranks_on_a_four_gpu_node_each_measure_only_their_gpu(clock: FakeClock) -> None:
    nvml = node(clock, 4)
    ranks = [
        detect_sensors(env=rank_env(r, 4), pynvml_module=nvml, include_node_wide=False, clock=clock)
        for r in range(4)
    ]
    assert [devices(d) for d in ranks] == [["gpu:0"], ["gpu:1"], ["gpu:2"], ["gpu:3"]]
    uuids = [d.sensors[0].info.uuid for d in ranks]
    assert uuids == [gpu.uuid for gpu in nvml.gpus]  # each GPU once, by its own rank
    (note,) = [n for n in ranks[2].notes if "local rank" in n]
    assert note.startswith("gpu: local rank 2 of 4 (LOCAL_RANK=2) measures gpu:2 only")
    assert "gpu:0, gpu:1, gpu:3 belong to the other local ranks" in note
    first = [d.sensors[0].read().energy_j or 0.0 for d in ranks]
    clock.advance(2.0)
    used_j = [(d.sensors[0].read().energy_j or 0.0) - j for d, j in zip(ranks, first, strict=True)]
    assert used_j == pytest.approx([200.0, 220.0, 240.0, 260.0])  # each its own GPU's power
    for detection in ranks:
        detection.close()
    assert not nvml.initialized


def test_ranks_with_their_own_cuda_visible_devices_keep_it(clock: FakeClock) -> None:
    nvml = node(clock, 4)
    detection = detect_sensors(
        env=rank_env(3, 4, visible="3"), pynvml_module=nvml, include_node_wide=False, clock=clock
    )
    assert devices(detection) == ["gpu:0"]  # cuda:0 in that process
    assert detection.sensors[0].info.uuid == nvml.gpus[3].uuid
    assert not any("local rank" in n for n in detection.notes)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}, ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]),
        ({"LOCAL_RANK": "0"}, ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]),  # size unknown
        ({"SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "2(x3)"}, ["gpu:1"]),
        ({"OMPI_COMM_WORLD_LOCAL_RANK": "5", "OMPI_COMM_WORLD_LOCAL_SIZE": "8"}, ["gpu:1"]),
        ({}, ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]),
    ],
)
def test_one_local_process_or_no_launcher_keeps_every_visible_gpu(
    clock: FakeClock, env: dict[str, str], expected: list[str]
) -> None:
    detection = detect_sensors(
        env=env, pynvml_module=node(clock, 4), include_node_wide=False, clock=clock
    )
    assert devices(detection) == expected
    detection.close()


def test_two_jobs_sharing_an_eight_gpu_node_count_every_gpu_once(clock: FakeClock) -> None:
    nvml = node(clock, 8)
    for gpu in nvml.gpus:
        gpu.power_w = 200
    # job A: 5 ranks on GPUs 0-4 (pids 200-204); job B: 4 ranks on GPUs 4-7 (pids 300-303)
    jobs = {"A": ("0,1,2,3,4", 5, 200), "B": ("4,5,6,7", 4, 300)}
    opened: dict[tuple[str, int], tuple[int, NvmlSensor]] = {}
    for job, (visible, size, first_pid) in jobs.items():
        for rank in range(size):
            detection = detect_sensors(
                env=rank_env(rank, size, visible),
                pynvml_module=nvml,
                include_node_wide=False,
                clock=clock,
            )
            (gpu,) = detection.sensors
            assert isinstance(gpu, NvmlSensor)
            physical = int(visible.split(",")[rank])
            assert gpu.info.uuid == nvml.gpus[physical].uuid
            nvml.gpus[physical].sm_util_by_pid[first_pid + rank] = 60
            opened[job, rank] = (first_pid + rank, gpu)
    runs: dict[tuple[str, int], ApportionedSensor] = {}
    for key, (pid, gpu) in opened.items():
        source = gpu.share_source(own_pids=lambda pid=pid: {pid}, period_s=1.0)
        assert source is not None
        runs[key] = ApportionedSensor(gpu, source)
    for sensor in runs.values():
        sensor.read()
    for _ in range(4):
        clock.advance(1.0)
        for sensor in runs.values():
            sensor.read()
    energy = {key: sensor.summary().energy_j for key, sensor in runs.items()}
    assert energy["A", 4] == pytest.approx(400.0)  # GPU 4: half of 200 W × 4 s each
    assert energy["B", 0] == pytest.approx(400.0)
    assert runs["A", 4].summary().shared and runs["B", 0].summary().shared
    assert energy["A", 0] == energy["B", 3] == pytest.approx(800.0)  # alone: all of it
    assert sum(energy.values()) == pytest.approx(8 * 800.0)  # the node's GPUs, each once


def test_a_rank_whose_gpu_cannot_be_measured_measures_no_other_ranks_gpu(
    clock: FakeClock,
) -> None:
    nvml = node(clock, 4)
    gpu = nvml.gpus[1]
    gpu.has_counter = gpu.has_instant_field = gpu.has_power_usage = False
    detection = detect_sensors(
        env=rank_env(1, 4), pynvml_module=nvml, include_node_wide=False, clock=clock
    )
    assert devices(detection) == []
    assert any("uses cuda:1" in n and "not measured" in n for n in detection.notes)
    assert any(n.startswith("gpu: gpu:1 (") and "skipped" in n for n in detection.notes)
    assert not nvml.initialized  # the other GPUs' sensors were closed

"""Sensor detection: best source per device, graceful degradation, one node-wide reader per node."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from greenprof.sensors import detect
from greenprof.sensors.base import describe
from greenprof.sensors.detect import Detection, detect_sensors, doctor_lines, local_rank
from greenprof.sensors.fake import FakeSensor
from greenprof.sensors.rapl import RaplPermissionError
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

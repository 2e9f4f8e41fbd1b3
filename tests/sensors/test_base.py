"""The sensor contract: every shipped sensor conforms, an older sensor is completed once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import greenprof
import greenprof.sensors
from greenprof.records import DeviceInfo, Reading
from greenprof.sampler import Sampler
from greenprof.sensors.base import (
    DerivedSensor,
    Sensor,
    ShareableSensor,
    as_sensor,
    describe,
    device_kind,
)
from greenprof.sensors.cpu_model import CpuModelSensor, CpuTdp
from greenprof.sensors.fake import FakeSensor, ReplaySensor
from greenprof.sensors.nvml import open_nvml_sensors
from greenprof.sensors.rapl import open_rapl_sensors
from greenprof.sensors.share import ApportionedSensor
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml


class OldSensor:
    """A sensor written to the contract before it was explicit: device, read, close."""

    def __init__(self, device: str, clock: FakeClock, **extras: str) -> None:
        self.device = device
        self.clock = clock
        self.closed = False
        self.__dict__.update(extras)

    def read(self) -> Reading:
        return Reading(self.device, self.clock(), None, 42.0)

    def close(self) -> None:
        self.closed = True


class FixedShare:
    method = "fixed share"
    note = ""

    def share(self) -> float:
        return 0.5


def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    for dirname, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "dram")]:
        (root / dirname).mkdir(parents=True)
        (root / dirname / "name").write_text(name)
        (root / dirname / "energy_uj").write_text("1000")
        (root / dirname / "max_energy_range_uj").write_text("262143328850")
    return root


def shipped_sensors(tmp_path: Path) -> list[object]:
    clock = FakeClock()
    nvml = ScriptedNvml([ScriptedGpu("GPU-0")], clock)
    (gpu,) = open_nvml_sensors(nvml, {}, clock)
    rapl = open_rapl_sensors(powercap(tmp_path), clock=clock)
    import psutil

    model = CpuModelSensor(CpuTdp(100.0, "test"), "Test CPU", psutil_module=psutil, clock=clock)
    return [
        gpu,
        *rapl,
        model,
        FakeSensor("gpu:3", clock=clock),
        ReplaySensor("gpu:4", [(0.0, 0.0, 10.0), (1.0, 10.0, 10.0)], clock=clock),
        ApportionedSensor(rapl[0], FixedShare()),
        as_sensor(OldSensor("cpu:9", clock)),
    ]


def test_every_shipped_sensor_offers_the_whole_contract(tmp_path: Path) -> None:
    sensors = shipped_sensors(tmp_path)
    for sensor in sensors:
        assert isinstance(sensor, Sensor), type(sensor).__name__
        assert as_sensor(sensor) is sensor  # nothing to complete
        assert isinstance(sensor.info, DeviceInfo)
        assert sensor.info.device == sensor.device
        assert sensor.update_period_s is None or sensor.update_period_s > 0
        assert sensor.energy_wrap_j is None
        assert sensor.read().device == sensor.device
    for sensor in sensors:
        assert isinstance(sensor, Sensor)
        sensor.close()


def test_only_the_gpu_sensor_offers_a_share_of_its_device(tmp_path: Path) -> None:
    shareable = [
        type(s).__name__ for s in shipped_sensors(tmp_path) if isinstance(s, ShareableSensor)
    ]
    assert shareable == ["NvmlSensor"]


def test_an_older_sensor_is_completed_from_its_device_id_name_and_method() -> None:
    clock = FakeClock()
    old = OldSensor("dram:0", clock, name="DIMMs", method="model")
    sensor = as_sensor(old)
    assert isinstance(sensor, DerivedSensor)
    assert sensor.info == DeviceInfo("dram:0", "dram", "model", "DIMMs", node_wide=True)
    assert sensor.update_period_s is None and sensor.energy_wrap_j is None
    assert sensor.read() == Reading("dram:0", 1000.0, None, 42.0)
    sensor.close()
    assert old.closed
    bare = as_sensor(OldSensor("fan:0", clock, method="not a method"))
    assert (bare.info.kind, bare.info.method, bare.info.name) == ("other", "counter", "OldSensor")
    assert describe(old) == sensor.info  # the old name, same answer


def test_what_an_older_sensor_declares_is_kept() -> None:
    clock = FakeClock()
    old = OldSensor("gpu:2", clock)
    info = DeviceInfo("gpu:2", "gpu", "counter", "My GPU", power_limit_w=300.0)
    old.info = info  # type: ignore[attr-defined]
    old.update_period_s = 0.05  # type: ignore[attr-defined]
    sensor = as_sensor(old)
    assert sensor.info is info
    assert sensor.update_period_s == 0.05 and sensor.energy_wrap_j is None
    old.update_period_s = "fast"  # type: ignore[attr-defined]
    assert as_sensor(old).update_period_s is None  # not a number: unknown


@pytest.mark.parametrize("thing", [object(), "gpu:0", None])
def test_anything_else_is_not_a_sensor(thing: object) -> None:
    with pytest.raises(TypeError, match="is not a sensor"):
        as_sensor(thing)


def test_the_sampler_reads_an_older_sensor_through_the_contract() -> None:
    clock = FakeClock()
    sampler = Sampler([OldSensor("gpu:0", clock)], interval_s=0.05, consumer=lambda _: None)
    try:
        assert sampler.poll() == [Reading("gpu:0", 1000.0, None, 42.0)]
    finally:
        sampler.stop()


def test_device_kinds_come_from_the_prefix() -> None:
    assert [device_kind(d) for d in ("gpu:1", "cpu:0", "dram:0", "npu:0", "gpu")] == [
        "gpu",
        "cpu",
        "dram",
        "other",
        "gpu",
    ]


def test_sensor_authors_find_reading_and_the_protocol_under_greenprof_sensors() -> None:
    assert greenprof.sensors.Reading is greenprof.Reading
    assert greenprof.sensors.Sensor is Sensor
    assert greenprof.sensors.PowerSensor is Sensor
    assert {"Sensor", "Reading", "as_sensor", "GpuBackend"} <= set(greenprof.sensors.__all__)


def test_importing_greenprof_sensors_stays_light() -> None:
    code = (
        "import sys, greenprof.sensors;"
        "print(sorted(m for m in ('pynvml', 'psutil', 'greenprof.sensors.testing',"
        " 'greenprof.sensors.share', 'greenprof.sensors.nvml') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_an_apportioned_sensor_keeps_the_inner_contract() -> None:
    clock = FakeClock()
    inner = FakeSensor("cpu:0", clock=clock, update_period_s=0.25)
    wrapped = ApportionedSensor(inner, FixedShare())
    assert wrapped.update_period_s == 0.25
    assert wrapped.info.method == inner.info.method

"""Recipes: which sensors the sampler's helper process can open again, and that what it
opens reads the same device."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest

from greenprof.records import Reading
from greenprof.sampler import Sampler
from greenprof.sensors.detect import detect_sensors, sensor_recipe
from greenprof.sensors.fake import FakeSensor
from greenprof.sensors.rapl import RaplSensor, open_rapl_sensors
from greenprof.sensors.recipe import SensorRecipe, spawnable
from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml

UUID = "GPU-aaaaaaaa-1111-2222-3333-444444444444"


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    for dirname, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "dram")]:
        (root / dirname).mkdir(parents=True)
        (root / dirname / "name").write_text(name)
        (root / dirname / "energy_uj").write_text("1000")
        (root / dirname / "max_energy_range_uj").write_text("262143328850")
    return root


def test_a_rapl_zone_opened_as_in_production_has_a_picklable_recipe(powercap: Path) -> None:
    sensors = open_rapl_sensors(powercap)
    recipes = [sensor_recipe(sensor) for sensor in sensors]
    assert [r.device if r else None for r in recipes] == ["cpu:0", "dram:0"]
    recipe = recipes[0]
    assert recipe is not None
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    reopened = recipe.open()
    assert isinstance(reopened, RaplSensor)
    assert reopened.info == sensors[0].info


def test_sensors_opened_with_stand_ins_have_no_recipe(powercap: Path) -> None:
    clock = FakeClock()
    assert all(sensor_recipe(s) is None for s in open_rapl_sensors(powercap, clock=clock))
    scripted = ScriptedNvml([ScriptedGpu(UUID)], clock)
    detection = detect_sensors(
        env={}, pynvml_module=scripted, powercap_root=powercap, include_node_wide=False
    )
    assert [s.device for s in detection.sensors] == ["gpu:0"]
    assert sensor_recipe(detection.sensors[0]) is None  # a scripted NVML cannot be reopened
    assert sensor_recipe(FakeSensor()) is None  # a plain object: read where it is


def test_spawnable_carries_its_recipe_and_reads_here_as_a_fallback() -> None:
    sensor = spawnable("greenprof.sensors.fake:FakeSensor", "gpu:3", 50.0)
    assert sensor_recipe(sensor) == SensorRecipe.of(
        "gpu:3", "greenprof.sensors.fake:FakeSensor", "gpu:3", 50.0
    )
    assert sensor.info.method == "simulated"
    assert sensor.read().device == "gpu:3"


def test_a_recipe_that_opens_another_device_is_refused() -> None:
    recipe = SensorRecipe.of("gpu:1", "greenprof.sensors.fake:FakeSensor", "gpu:2")
    with pytest.raises(ValueError, match="gpu:2"):
        recipe.open()


def test_the_helper_reads_the_rapl_zone_the_detection_opened(powercap: Path) -> None:
    sensors = open_rapl_sensors(powercap)
    got: list[Reading] = []
    arrived = threading.Event()

    def consumer(readings: list[Reading]) -> None:
        got.extend(r for r in readings if r.device == "cpu:0")
        if got and got[-1].energy_j:
            arrived.set()

    sampler = Sampler(sensors, interval_s=0.05, consumer=consumer)
    sampler.start()
    try:
        assert sampler.helper_pid is not None
        deadline = time.monotonic() + 60.0
        while not got:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (powercap / "intel-rapl:0" / "energy_uj").write_text("3001000")  # +3 J
        assert arrived.wait(60.0)
    finally:
        sampler.stop()
    assert sampler.health()["cpu:0"].in_helper
    assert got[-1].energy_j == pytest.approx(3.0)


def test_a_rapl_zone_says_its_own_recipe_and_its_update_period(powercap: Path) -> None:
    """The detection layer's sensor_recipe is the sensor's own recipe(); the counter's
    ~1 ms update period is declared, so the attribution uses it as its lattice prior."""
    sensor = open_rapl_sensors(powercap)[0]
    assert sensor.recipe() == sensor_recipe(sensor) is not None
    assert sensor.update_period_s == pytest.approx(0.001)
    assert open_rapl_sensors(powercap, clock=FakeClock())[0].recipe() is None

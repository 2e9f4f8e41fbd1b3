"""The helper process inside a profiled run, and apportioned sensors whose inner sensor
the helper reads (the share is applied here, by the wrapper the run keeps)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import greenprof
from greenprof.records import Reading
from greenprof.sampler import Sampler
from greenprof.sensors.base import Sensor
from greenprof.sensors.recipe import RecipeSensor, spawnable
from greenprof.sensors.share import ApportionedSensor

FAKE = "greenprof.sensors.fake:FakeSensor"


def test_a_profiled_run_read_by_the_helper_stores_every_step_with_energy(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    sensors = [spawnable(FAKE, "gpu:0", 200.0, update_period_s=0.05)]
    with greenprof.Profiler("helper", db=db, sensors=sensors, interval_s=0.05) as prof:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            with prof.step(samples=1):
                time.sleep(0.02)
        run_id = prof.run_id
    assert run_id is not None
    store = greenprof.RunStore(db)
    steps = list(store.steps(run_id))
    assert len(steps) >= 10
    assert all(step.device_energy_j.get("gpu:0", 0.0) > 0.0 for step in steps)
    total_j = sum(step.energy_j for step in steps)
    covered_s = steps[-1].end_s - steps[0].start_s
    # 200 W simulated: the steps cover most of that time
    assert total_j == pytest.approx(200.0 * covered_s, rel=0.35)


class HalfShare:
    method = "fixed half"
    note = ""

    def share(self) -> float:
        return 0.5


def test_an_apportioned_sensor_is_read_in_the_helper_and_apportioned_here() -> None:
    inner = spawnable(FAKE, "gpu:0", 100.0, update_period_s=0.05)
    wrapper = ApportionedSensor(inner, HalfShare())
    got: list[Reading] = []
    enough = threading.Event()

    def consumer(readings: list[Reading]) -> None:
        got.extend(readings)
        if len(got) >= 10:
            enough.set()

    sensors: list[Sensor] = [wrapper]
    sampler = Sampler(sensors, interval_s=0.05, consumer=consumer)
    sampler.start()
    assert sampler.helper_pid is not None
    assert enough.wait(60.0)
    sampler.stop()
    assert sampler.health()["gpu:0"].in_helper
    assert wrapper.inner is inner  # given back at stop
    assert isinstance(wrapper.inner, RecipeSensor)
    first, last = got[0], got[-1]
    assert first.energy_j is not None and last.energy_j is not None
    rate_w = (last.energy_j - first.energy_j) / (last.time_s - first.time_s)
    assert rate_w == pytest.approx(50.0, rel=0.3)  # half of the helper's 100 W
    summary = wrapper.summary()
    assert summary.shared and summary.device_energy_j == pytest.approx(2 * summary.energy_j)

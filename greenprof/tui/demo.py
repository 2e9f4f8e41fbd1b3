"""A simulated training run for ``greenprof top --demo``: the UI without a GPU.

A background thread "trains" with :class:`~greenprof.sensors.fake.FakeSensor` devices
through the real :class:`~greenprof.Profiler` into a temporary database. Every device is
labelled ``simulated``, so the live screen says SIMULATED; nothing is measured. Runs
alternate between two batch sizes so ``history`` → compare has something to compare.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from greenprof.errors import ConfigError
from greenprof.records import RunStatus
from greenprof.sensors.fake import FakeSensor

BANNER = "SIMULATED RUN (greenprof top --demo): fake sensors, not measurements"


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """Shape of the simulated runs."""

    steps: int = 1200
    batch_sizes: tuple[int, ...] = (64, 128)
    idle_gpu_w: float = 55.0
    cpu_w: float = 35.0
    baseline_s: float = 0.5
    interval_s: float = 0.1
    repeat: bool = True


def step_time_s(batch_size: int) -> float:
    """Simulated wall time of one step: a fixed overhead plus per-sample work."""
    return 0.02 + batch_size * 0.0003


def gpu_power_w(batch_size: int, t_s: float, plan: DemoPlan) -> float:
    """Simulated GPU power while training: bigger batches keep the GPU busier."""
    busy = min(1.0, 0.45 + batch_size / 256)
    wobble = 1.0 + 0.08 * math.sin(t_s * 1.3) + 0.04 * math.sin(t_s * 7.1)
    return plan.idle_gpu_w + 230.0 * busy * wobble


class SimulatedTraining:
    """Runs simulated, profiled training in a daemon thread until :meth:`stop`."""

    def __init__(self, db_path: Path, plan: DemoPlan | None = None, *, seed: int = 1) -> None:
        self.db_path = db_path
        self.plan = plan or DemoPlan()
        self.run_ids: list[int] = []
        self._stop = threading.Event()
        self._random = random.Random(seed)
        self._thread = threading.Thread(target=self._loop, name="greenprof-demo", daemon=True)
        self._training = False
        self._batch_size = self.plan.batch_sizes[0]
        self.error: BaseException | None = None

    def start(self) -> SimulatedTraining:
        """Start the simulated training thread."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current step; the open run is recorded as interrupted."""
        self._stop.set()
        self._thread.join(timeout_s)

    def join(self, timeout_s: float | None = None) -> None:
        """Wait until the planned runs are done (only ends by itself without ``repeat``)."""
        self._thread.join(timeout_s)

    def wait_for_run(self, timeout_s: float = 10.0) -> int | None:
        """Block until the first run exists; its id (None on timeout)."""
        deadline = time.monotonic() + timeout_s
        while not self.run_ids and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        return self.run_ids[0] if self.run_ids else None

    def _power(self, t_s: float) -> float:
        if not self._training:
            return self.plan.idle_gpu_w
        return gpu_power_w(self._batch_size, t_s, self.plan)

    def _loop(self) -> None:
        try:
            index = 0
            while not self._stop.is_set():
                sizes = self.plan.batch_sizes
                self._train_one(sizes[index % len(sizes)])
                index += 1
                if not self.plan.repeat and index >= len(sizes):
                    return
        except BaseException as exc:  # shown by the caller, never swallowed silently
            self.error = exc

    def _train_one(self, batch_size: int) -> None:
        from greenprof.profiler import Profiler

        plan = self.plan
        self._batch_size = batch_size
        self._training = False
        sensors = [
            FakeSensor("gpu:0", power_w=self._power, name="simulated GPU"),
            FakeSensor("cpu:0", power_w=plan.cpu_w, name="simulated CPU"),
        ]
        common = {
            "db": self.db_path,
            "sensors": sensors,
            "interval_s": plan.interval_s,
            "tags": {"batch_size": batch_size, "simulated": "true"},
            "framework": "simulated",
            "expected_steps": plan.steps,
            "baseline_s": plan.baseline_s,
            "summary": False,  # the TUI owns the terminal; the demo prints its own
        }
        name = f"sim-bs{batch_size}"
        try:  # Germany's grid intensity from the shipped data, when it is installed
            prof = Profiler(name, country="DEU", **common)  # type: ignore[arg-type]
        except ConfigError:
            prof = Profiler(name, intensity_g_per_kwh=380.0, **common)  # type: ignore[arg-type]
        prof.start()
        assert prof.run_id is not None
        self.run_ids.append(prof.run_id)
        self._training = True
        status: RunStatus = "completed"
        step_s = step_time_s(batch_size)
        for step in range(plan.steps):
            if self._stop.is_set():
                status = "interrupted"
                break
            loss = 2.3 * math.exp(-step * batch_size / 40_000) + 0.15
            loss *= 1 + 0.03 * self._random.uniform(-1, 1)
            with prof.step(samples=batch_size, loss=loss):
                time.sleep(step_s * self._random.uniform(0.9, 1.1))
        self._training = False
        prof.stop(status=status)

"""One repeat of the bench in a fresh process: ``python -m greenprof.bench.worker ...``.

A fresh interpreter per repeat means every variant starts cold (no framework, caches
or allocator state left by another) and imports only its own framework. The repeat
is a normal greenprof run, tagged so that the runner (and ``history``, ``compare``,
``export``) find it: ``bench``, ``framework``, ``variant``, ``workload``, ``size``,
``batch_size``, ``precision``, ``repeat``, plus the framework versions.

The framework is imported, the model's parameter count checked against the
workload's (:class:`ParameterMismatch` otherwise) and the data made before the run
starts; the run's setup (start to first step) is the model's construction; epoch 0 is
the warm-up pass, epoch 1 the measured window. On success the worker prints one JSON line on stdout:
``{"run_id": N}``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from greenprof.bench.spec import FAKE_SENSORS_ENV, RepeatSpec, parse_argv
from greenprof.bench.variants import Variant, variant
from greenprof.bench.workloads import make_batches, parameter_count, workload
from greenprof.sensors.base import PowerSensor


def run_name(spec: RepeatSpec) -> str:
    return f"bench-{spec.workload}-{spec.variant}-bs{spec.batch_size}-{spec.precision}"


class ParameterMismatch(RuntimeError):
    """A framework's model does not have the workload's parameter count: the comparison
    would not be between the same models."""


def tags(
    spec: RepeatSpec, v: Variant, versions: Mapping[str, str], parameters: int
) -> dict[str, object]:
    """The run's tags: what the runner selects on, and what a reader needs to trust it."""
    out: dict[str, object] = {
        "bench": spec.bench_id,
        "framework": v.framework,
        "variant": v.name,
        "workload": spec.workload,
        "size": spec.size,
        "batch_size": spec.batch_size,
        "precision": spec.precision,
        "repeat": spec.repeat,
        "warmup_steps": spec.warmup_steps,
        "parameters": parameters,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count() or 0,
    }
    out.update({f"version_{name}": value for name, value in versions.items()})
    return out


def test_sensors(env: Mapping[str, str]) -> list[PowerSensor] | None:
    """A simulated device when the tests ask for it (``GREENPROF_BENCH_FAKE_SENSORS=1``);
    None otherwise: the Profiler detects this machine's sensors."""
    if env.get(FAKE_SENSORS_ENV) != "1":
        return None
    from greenprof.sensors.fake import FakeSensor

    return [FakeSensor("cpu:0", power_w=30.0, name="simulated CPU (bench tests)")]


def run(spec: RepeatSpec, env: Mapping[str, str] = os.environ) -> int:
    """Run ``spec`` under a Profiler; returns the run id."""
    from greenprof.profiler import Profiler

    v = variant(spec.variant)
    if v.keras_backend is not None:
        os.environ["KERAS_BACKEND"] = v.keras_backend  # before anything imports keras
    trainer: Any = importlib.import_module(v.trainer)
    w = workload(spec.workload, spec.size)
    parameters = int(trainer.parameter_count(w))
    if parameters != parameter_count(w):
        raise ParameterMismatch(
            f"{v.name} builds {w.name} with {parameters} parameters; the workload has "
            f"{parameter_count(w)}: the frameworks would not train the same model"
        )
    batches = make_batches(w, spec.batch_size, count=spec.pool, seed=spec.seed)
    profiler = Profiler(
        run_name(spec),
        db=spec.db,
        sensors=test_sensors(env),
        country=spec.country,
        region=spec.region,
        tags=tags(spec, v, trainer.versions(), parameters),
        framework=v.framework,
        expected_steps=spec.pool * spec.passes,
    )
    with profiler:
        trainer.train(
            profiler,
            w,
            batches,
            variant=v,
            passes=spec.plan,
            precision=spec.precision,
            seed=spec.seed,
        )
    assert profiler.run_id is not None
    return profiler.run_id


def main(argv: Sequence[str] | None = None) -> int:
    spec = parse_argv(sys.argv[1:] if argv is None else argv)
    run_id = run(spec)
    print(json.dumps({"run_id": run_id}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

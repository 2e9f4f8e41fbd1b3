"""Each variant builds the same model and lowers its loss on the tiny size.

PyTorch eager runs in this process; every other variant (Keras, TensorFlow, and
torch.compile) runs as the real bench runs it: a worker process per repeat, driven by
``greenprof bench`` with a simulated sensor (``GREENPROF_BENCH_FAKE_SENSORS=1``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from greenprof.bench import commands, stats
from greenprof.bench.spec import FAKE_SENSORS_ENV, Passes
from greenprof.bench.variants import VARIANT_NAMES, select
from greenprof.bench.workloads import WORKLOADS, make_batches, parameter_count, workload
from greenprof.cli import main
from greenprof.profiler import Profiler
from greenprof.sensors.fake import FakeSensor
from greenprof.store.reader import RunStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _pass_means(losses: list[float], pool: int) -> list[float]:
    return [stats.mean(losses[i : i + pool]) for i in range(0, len(losses), pool)]


@pytest.mark.parametrize("kind", WORKLOADS)
def test_torch_builds_each_workload_with_its_parameter_count_and_learns(
    kind: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from greenprof.bench import models_torch
    from greenprof.bench.variants import variant

    w = workload(kind, "tiny")
    assert models_torch.parameter_count(w) == parameter_count(w)
    pool = 4
    with Profiler("t", db=tmp_path / "runs.db", sensors=[FakeSensor("cpu:0", 10.0)]) as profiler:
        models_torch.train(
            profiler,
            w,
            make_batches(w, 16, count=pool),
            variant=variant("torch"),
            passes=Passes(5),
            precision="bf16" if kind == "mlp" else "fp32",
            seed=0,
        )
    with RunStore(tmp_path / "runs.db") as store:
        run = store.run(profiler.run_id or 0)
        losses = [s.loss for s in store.steps(run.run_id) if s.loss is not None]
        epochs = {e.epoch: e.steps for e in store.epochs(run.run_id)}
    assert len(losses) == 20
    assert epochs == {0: pool, 1: 4 * pool}  # one warm-up pass, then the measured window
    means = _pass_means(losses, pool)
    assert means[-1] < means[0]


def test_keras_builds_each_workload_with_its_parameter_count() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("keras and tensorflow are not installed")
    script = (
        "import json\n"
        "from greenprof.bench import models_keras\n"
        "from greenprof.bench.workloads import WORKLOADS, workload\n"
        "print(json.dumps({k: models_keras.parameter_count(workload(k, 'tiny'))"
        " for k in WORKLOADS}))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts == {k: parameter_count(workload(k, "tiny")) for k in WORKLOADS}


def test_bench_trains_every_available_variant_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole verb, as a user runs it, with keras-jax made absent by the injected
    find_spec (whether or not jax is installed here)."""
    monkeypatch.setenv(FAKE_SENSORS_ENV, "1")
    db = tmp_path / "runs.db"
    parser_args = [
        "--size", "tiny", "--workloads", "mlp", "--repeats", "1", "--steps", "15",
        "--pool", "5", "--min-window", "1", "--id", "t1", "--db", str(db), "--json",
    ]  # fmt: skip
    import argparse

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["bench", *parser_args])

    def find_spec(name: str) -> object:
        return None if name == "jax" else importlib.util.find_spec(name)

    expected = {v.name for v in select(VARIANT_NAMES, find_spec).run}
    assert commands.run_bench(args, find_spec=find_spec) == 0
    out, err = capsys.readouterr()
    assert "greenprof bench: keras-jax skipped: jax not installed (pip install keras " in err
    document = json.loads(out)
    assert {r["variant"] for r in document["results"]} == expected
    assert document["skipped"][0].startswith("keras-jax skipped")
    for result in document["results"]:
        assert result["methods"] == ["simulated"]
        assert result["energy_j_per_sample"]["mean"] > 0

    with RunStore(db) as store:
        runs = [r for r in store.runs() if r.tags.get("bench") == "t1"]
        assert {str(r.tags["variant"]) for r in runs} == expected
        for run in runs:
            assert run.status == "completed"
            assert str(run.tags["parameters"]) == str(parameter_count(workload("mlp", "tiny")))
            assert str(run.tags["workload"]) == "mlp"
            losses = [s.loss for s in store.steps(run.run_id) if s.loss is not None]
            # a warm-up pass and 3 measured ones at least, whole passes of 5 (the window is
            # lengthened to 1 s: a few sensor updates measure little)
            assert len(losses) >= 20 and len(losses) % 5 == 0, run.tags["variant"]
            means = _pass_means(losses, 5)
            assert means[-1] < means[0], (run.tags["variant"], means)

    assert main(["runs", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len([r for r in listed["runs"] if r["tags"].get("bench") == "t1"]) == len(expected)

    report = tmp_path / "bench.html"
    assert main(["report", "--bench", "t1", "--db", str(db), "-o", str(report)]) == 0
    html = report.read_text()
    assert "<svg" in html and "mJ/sample" in html and "simulated" in html
    assert main(["report", "--bench", "t1", "--db", str(db)]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# greenprof bench t1")
    for name in expected:
        assert f"| {name} |" in markdown

"""The protocol: interleaved repeats, one worker process each, failures reported."""

from __future__ import annotations

import io
import subprocess
from typing import Any

from greenprof.bench import runner
from greenprof.bench.spec import Passes, RepeatSpec, parse_argv, worker_argv
from greenprof.bench.variants import variant


def _protocol(**changes: Any) -> runner.Protocol:
    settings: dict[str, Any] = {
        "bench_id": "b1",
        "variants": (variant("torch"), variant("keras-tf"), variant("tf-function")),
        "workloads": ("mlp",),
        "batch_sizes": (32,),
        "precisions": ("fp32",),
        "repeats": 3,
        "size": "tiny",
        "steps": 12,
        "pool": 5,
    }
    settings.update(changes)
    return runner.Protocol(**settings)


def test_repeats_are_interleaved_and_the_order_rotates() -> None:
    specs = runner.plan(_protocol())
    assert [(s.repeat, s.variant) for s in specs] == [
        (0, "torch"), (0, "keras-tf"), (0, "tf-function"),
        (1, "keras-tf"), (1, "tf-function"), (1, "torch"),
        (2, "tf-function"), (2, "torch"), (2, "keras-tf"),
    ]  # fmt: skip
    assert {s.passes for s in specs} == {4}  # a warm-up pass + 12 steps in passes of 5


def test_a_sweep_runs_every_setting_in_every_repeat() -> None:
    specs = runner.plan(_protocol(batch_sizes=(32, 64), precisions=("fp32", "bf16"), repeats=2))
    assert len(specs) == 2 * 2 * 2 * 3
    settings = {(s.batch_size, s.precision) for s in specs if s.repeat == 1}
    assert settings == {(32, "fp32"), (32, "bf16"), (64, "fp32"), (64, "bf16")}


def test_the_worker_reads_back_what_the_runner_writes() -> None:
    spec = RepeatSpec(
        "b1", "keras-torch", "cnn", "cpu", 64, "bf16", 2, 10, 11, 3, "x.db", None, "SE3"
    )
    argv = worker_argv(spec, python="python")
    assert argv[:3] == ["python", "-m", "greenprof.bench.worker"]
    assert parse_argv(argv[3:]) == spec


class _Launch:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> Any:
        self.calls.append((argv, kwargs["env"]))
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def test_one_repeat_reads_its_run_id_and_sets_the_keras_backend() -> None:
    done = subprocess.CompletedProcess([], 0, stdout='noise\n{"run_id": 42}\n', stderr="")
    launch = _Launch(done)
    spec = runner.plan(_protocol(repeats=1))[1]
    outcome = runner.run_one(spec, variant("keras-tf"), env={"PATH": "/bin"}, launch=launch)
    assert outcome.run_id == 42 and outcome.error is None
    env = launch.calls[0][1]
    assert env["KERAS_BACKEND"] == "tensorflow" and env["PATH"] == "/bin"
    assert env["GREENPROF_SUMMARY"] == "0"  # a failing worker's last lines are its error


def test_a_failed_or_stuck_repeat_is_reported_not_retried() -> None:
    spec = runner.plan(_protocol(repeats=1))[0]
    crashed = subprocess.CompletedProcess(
        [], 3, stdout="", stderr="Traceback\nParameterMismatch: x\n"
    )
    outcome = runner.run_one(spec, variant("torch"), launch=_Launch(crashed))
    assert outcome.run_id is None
    assert outcome.error == "exit 3: Traceback | ParameterMismatch: x"
    stuck = runner.run_one(
        spec, variant("torch"), timeout_s=5, launch=_Launch(subprocess.TimeoutExpired("w", 5))
    )
    assert stuck.error == "timed out after 5 s"


def test_progress_lines_name_each_repeat() -> None:
    specs = runner.plan(_protocol(repeats=1))
    progress = io.StringIO()
    ids = iter(range(7, 10))

    def run(spec: RepeatSpec, v: Any) -> runner.Outcome:
        return runner.Outcome(spec, next(ids), 1.25)

    variants = {v.name: v for v in _protocol().variants}
    outcomes = runner.run_all(specs, variants, progress=progress, run=run)
    assert [o.run_id for o in outcomes] == [7, 8, 9]
    lines = progress.getvalue().splitlines()
    assert lines[0] == "  [1/3] torch mlp bs32 fp32 repeat 0 ... 1.2 s, run 7"
    assert len(lines) == 3


def test_a_short_window_gets_more_whole_passes() -> None:
    passes = Passes(3, min_window_s=2.0, maximum=10)
    assert passes.more(2, 100.0)  # the minimum first, however long
    assert passes.more(3, 1.9) and not passes.more(3, 2.0)
    assert not passes.more(10, 0.5)  # never past the maximum
    assert not Passes(3).more(3, 0.0)  # no minimum window: exactly the passes

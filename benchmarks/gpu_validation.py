"""GPU validation: the checks of ref/measurement.md §9.3, for a session with an NVIDIA GPU.

(a) NVML call latency p50/p99: nvmlDeviceGetTotalEnergyConsumption, GetPowerUsage,
    GetFieldValues([POWER_INSTANT]), GetFieldValues([TOTAL_ENERGY, POWER_INSTANT]),
    GetUtilizationRates; GPU 0 and a sweep over all GPUs.
(b) Energy counter update period: tight poll ~2 s idle and ~2 s loaded, intervals
    between value changes.
(c) A real PyTorch training loop (a small ResNet on synthetic data, ~60 s) profiled with
    the detected sensors: the sum of GPU step energies against the NVML counter delta
    over the same span, and the per-step energy distribution.
(d) Hook overhead, interleaved blocks: steps/s with no profiler, ``prof.step()`` (no
    sync), ``torch.cuda.synchronize()`` every step, and ``greenprof.hooks.torch.attach``.

Never changes clocks, power limits or modes. Writes gpu-validation.json and
gpu-validation.md to ``$OUT`` if set, else ./gpu-validation/. Exits with status 2 and a
message when there is no NVIDIA GPU (pynvml, a driver and CUDA-enabled torch needed).

Run: ``python benchmarks/gpu_validation.py [--quick]`` (about 4 min; --quick about 1.5 min).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Benchmark the checkout this file lives in, whatever the install state of the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FI_TOTAL_ENERGY = 83  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)
FI_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT (mW)


class NoGPU(RuntimeError):
    """This machine cannot run the GPU validation."""


@dataclass
class Report:
    """Everything measured, as JSON, and the Markdown lines of the summary."""

    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines += ["", f"## {title}", ""]
        print(f"\n## {title}\n")

    def line(self, text: str) -> None:
        self.lines.append(text)
        print(text)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), greenprof's one definition (numpy's default)."""
    from greenprof.metrics import percentile

    value = percentile(sorted(values), q / 100)
    return math.nan if value is None else value


# Preconditions -----------------------------------------------------------------------


def open_gpu() -> tuple[Any, Any, list[Any]]:
    """(pynvml, torch, NVML handles), or NoGPU saying what is missing."""
    try:
        import pynvml
    except ImportError as exc:
        raise NoGPU(f"pynvml is not installed (pip install nvidia-ml-py): {exc}") from exc
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception as exc:
        raise NoGPU(f"NVML cannot start (no NVIDIA driver?): {exc}") from exc
    if count == 0:
        raise NoGPU("NVML sees no GPU")
    try:
        import torch
    except ImportError as exc:
        raise NoGPU(f"torch is not installed: {exc}") from exc
    if not torch.cuda.is_available():
        raise NoGPU(f"torch {torch.__version__} has no CUDA device (a CPU build?)")
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    return pynvml, torch, handles


def torch_device_handle(pynvml: Any, torch: Any) -> Any:
    """The NVML handle of torch's cuda:0, matched by UUID (CUDA_VISIBLE_DEVICES-proof)."""
    uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", "") or "")
    if uuid:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(
                uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            )
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(0)


def energy_mj(pynvml: Any, handle: Any) -> int:
    return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))


# (a) NVML latency ----------------------------------------------------------------------


def nvml_calls(pynvml: Any) -> dict[str, Callable[[Any], Any]]:
    return {
        "nvmlDeviceGetTotalEnergyConsumption": pynvml.nvmlDeviceGetTotalEnergyConsumption,
        "nvmlDeviceGetPowerUsage": pynvml.nvmlDeviceGetPowerUsage,
        "GetFieldValues([POWER_INSTANT])": lambda h: pynvml.nvmlDeviceGetFieldValues(
            h, [FI_POWER_INSTANT]
        ),
        "GetFieldValues([TOTAL_ENERGY, POWER_INSTANT])": lambda h: pynvml.nvmlDeviceGetFieldValues(
            h, [FI_TOTAL_ENERGY, FI_POWER_INSTANT]
        ),
        "nvmlDeviceGetUtilizationRates": pynvml.nvmlDeviceGetUtilizationRates,
    }


def latency_us(call: Callable[[Any], Any], handles: list[Any], n: int) -> list[float] | str:
    """Microseconds per sweep over ``handles`` (n sweeps), or the error it raised."""
    try:
        call(handles[0])
    except Exception as exc:
        return f"unsupported: {type(exc).__name__}: {exc}"
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        for handle in handles:
            call(handle)
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def check_latency(report: Report, pynvml: Any, handles: list[Any], n: int) -> None:
    report.section(f"(a) NVML call latency ({n} calls each)")
    report.line("| call | GPUs | p50 µs | p99 µs |")
    report.line("|---|---|---|---|")
    results: dict[str, Any] = {}
    for name, call in nvml_calls(pynvml).items():
        for label, subset in (("1", handles[:1]), (f"all {len(handles)}", handles)):
            if label != "1" and len(handles) == 1:
                continue
            lat = latency_us(call, subset, n)
            if isinstance(lat, str):
                report.line(f"| {name} | {label} | {lat} | |")
                results[f"{name} [{label}]"] = lat
                break
            p50, p99 = statistics.median(lat), pct(lat, 99)
            results[f"{name} [{label}]"] = {"p50_us": p50, "p99_us": p99}
            report.line(f"| {name} | {label} | {p50:.1f} | {p99:.1f} |")
    report.data["nvml_latency"] = results


# (b) Counter update period ------------------------------------------------------------------


def change_intervals_ms(pynvml: Any, handle: Any, seconds: float) -> list[float]:
    """Tight-poll the energy counter; milliseconds between successive value changes."""
    changes = []
    last = energy_mj(pynvml, handle)
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        value = energy_mj(pynvml, handle)
        if value != last:
            changes.append(now)
            last = value
    return [1e3 * (b - a) for a, b in itertools.pairwise(changes)]


def background_load(torch: Any, stop: threading.Event) -> None:
    a = torch.randn(4096, 4096, device="cuda")
    while not stop.is_set():
        for _ in range(20):
            a = (a @ a).tanh_()
        torch.cuda.synchronize()


def check_update_period(report: Report, pynvml: Any, torch: Any, handle: Any, s: float) -> None:
    report.section(f"(b) energy counter update period (tight poll, {s:.0f} s each)")
    report.line("| load | changes | median ms | p10 ms | p90 ms | min ms | max ms |")
    report.line("|---|---|---|---|---|---|---|")
    results = {}
    for label in ("idle", "loaded"):
        stop = threading.Event()
        worker = None
        if label == "loaded":
            worker = threading.Thread(target=background_load, args=(torch, stop), daemon=True)
            worker.start()
            time.sleep(0.5)
        intervals = change_intervals_ms(pynvml, handle, s)
        stop.set()
        if worker is not None:
            worker.join()
        if not intervals:
            report.line(f"| {label} | 0 | (the counter did not change) | | | | |")
            continue
        row = {
            "changes": len(intervals) + 1,
            "median_ms": statistics.median(intervals),
            "p10_ms": pct(intervals, 10),
            "p90_ms": pct(intervals, 90),
            "min_ms": min(intervals),
            "max_ms": max(intervals),
        }
        results[label] = row
        report.line(
            f"| {label} | {row['changes']} | {row['median_ms']:.1f} | {row['p10_ms']:.1f} |"
            f" {row['p90_ms']:.1f} | {row['min_ms']:.1f} | {row['max_ms']:.1f} |"
        )
    report.data["counter_update_period"] = results


# (c) Training loop ---------------------------------------------------------------------------


def make_model(torch: Any) -> Any:
    nn = torch.nn

    def block(c_in: int, c_out: int, stride: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        block(64, 64, 1),
        block(64, 128, 2),
        block(128, 256, 2),
        block(256, 512, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 100),
    ).cuda()


@dataclass
class Trainer:
    """One model, optimizer and synthetic batch on cuda:0."""

    torch: Any
    batch: int
    model: Any = None
    optimizer: Any = None
    x: Any = None
    y: Any = None

    def __post_init__(self) -> None:
        torch = self.torch
        self.model = make_model(torch)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(self.batch, 3, 64, 64, device="cuda")
        self.y = torch.randint(0, 100, (self.batch,), device="cuda")

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()


def attach_hook() -> Callable[..., Any] | None:
    try:
        from greenprof.hooks.torch import attach
    except Exception:
        return None
    return attach


def check_training(report: Report, pynvml: Any, torch: Any, trainer: Trainer, s: float) -> None:
    from greenprof import Profiler, RunStore

    handle = torch_device_handle(pynvml, torch)
    attach = attach_hook()
    mode = "greenprof.hooks.torch.attach (async, CUDA events)" if attach else "prof.step()"
    report.section(f"(c) profiled training, {s:.0f} s, batch {trainer.batch}, {mode}")
    for _ in range(20):
        trainer.step()  # warm-up: cuDNN autotuning, allocator
    torch.cuda.synchronize()
    with tempfile.TemporaryDirectory(prefix="greenprof-gpu-") as tmp:
        db = Path(tmp) / "gpu.db"
        prof = Profiler("gpu-validation", db=db, country="DEU")
        e0 = energy_mj(pynvml, handle)
        prof.start()
        steps = run_profiled(prof, trainer, attach, s)
        torch.cuda.synchronize()
        e1 = energy_mj(pynvml, handle)
        prof.stop()
        with RunStore(db) as store:
            run_id = prof.run_id
            assert run_id is not None
            records = list(store.steps(run_id))
            device_totals = store.device_energy_j(run_id)
    summarize_training(
        report,
        records,
        counter_j=(e1 - e0) / 1e3,
        device_totals=device_totals,
        steps=steps,
        devices=prof.devices,
    )


def run_profiled(prof: Any, trainer: Trainer, attach: Callable[..., Any] | None, s: float) -> int:
    steps = 0
    end = time.perf_counter() + s
    if attach is not None:
        handle = attach(trainer.optimizer, prof, samples=trainer.batch)
        try:
            while time.perf_counter() < end:
                trainer.step()
                steps += 1
            trainer.torch.cuda.synchronize()
            if hasattr(handle, "flush"):
                handle.flush()
        finally:
            handle.remove()
        return steps
    while time.perf_counter() < end:
        with prof.step(samples=trainer.batch):
            trainer.step()
        steps += 1
    return steps


def summarize_training(
    report: Report,
    records: list[Any],
    *,
    counter_j: float,
    device_totals: dict[str, float],
    steps: int,
    devices: Any,
) -> None:
    gpu = next((d.device for d in devices if d.device.startswith("gpu")), None)
    if gpu is None:
        report.line("greenprof detected no GPU sensor: nothing to compare (see `greenprof doctor`)")
        report.data["training"] = {"error": "no GPU sensor detected"}
        return
    per_step = [r.device_energy_j.get(gpu, 0.0) for r in records]
    step_sum = sum(per_step)
    diff_pct = 100 * (step_sum - counter_j) / counter_j if counter_j else float("nan")
    run_total = device_totals.get(gpu, float("nan"))
    interpolated = sum(1 for r in records if r.interpolated)
    result = {
        "steps_trained": steps,
        "steps_stored": len(records),
        "gpu_device": gpu,
        "sum_step_energy_j": step_sum,
        "nvml_counter_delta_j": counter_j,
        "diff_pct": diff_pct,
        "run_device_energy_j": run_total,
        "step_energy_j": {
            "median": statistics.median(per_step) if per_step else None,
            "p10": pct(per_step, 10) if per_step else None,
            "p90": pct(per_step, 90) if per_step else None,
        },
        "interpolated_steps": interpolated,
        "step_time_ms_median": statistics.median(1e3 * (r.end_s - r.start_s) for r in records)
        if records
        else None,
    }
    report.data["training"] = result
    report.line("| figure | value | target |")
    report.line("|---|---|---|")
    report.line(f"| steps trained / stored | {steps} / {len(records)} | equal |")
    report.line(f"| Σ step energy ({gpu}) | {step_sum:.1f} J | |")
    report.line(f"| NVML counter delta, same span | {counter_j:.1f} J | |")
    report.line(f"| difference | {diff_pct:+.3f} % | ≤ 0.1 % (edges: ±1 counter update) |")
    report.line(f"| run's {gpu} energy (whole run, incl. stop settle) | {run_total:.1f} J | |")
    if per_step:
        report.line(
            f"| per-step energy p10 / median / p90 | {pct(per_step, 10):.3f} /"
            f" {statistics.median(per_step):.3f} / {pct(per_step, 90):.3f} J | |"
        )
        report.line(f"| median step time | {result['step_time_ms_median']:.2f} ms | |")
    report.line(f"| interpolated steps (shorter than the counter period) | {interpolated} | |")


# (d) Hook overhead -----------------------------------------------------------------------------


def timed_block(trainer: Trainer, steps: int, mark: Callable[[Callable[[], None]], None]) -> float:
    """Steps per second over ``steps`` steps, each run through ``mark``."""
    torch = trainer.torch
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        mark(trainer.step)
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def block_variants(trainer: Trainer, db: Path) -> dict[str, Callable[[int], float]]:
    from greenprof import Profiler

    torch = trainer.torch

    def none(steps: int) -> float:
        return timed_block(trainer, steps, lambda f: f())

    def synced(steps: int) -> float:
        def mark(f: Callable[[], None]) -> None:
            f()
            torch.cuda.synchronize()

        return timed_block(trainer, steps, mark)

    def with_step(steps: int) -> float:
        with Profiler("gpu-overhead-step", db=db, country="DEU") as prof:

            def mark(f: Callable[[], None]) -> None:
                with prof.step(samples=trainer.batch):
                    f()

            return timed_block(trainer, steps, mark)

    variants = {
        "no profiler": none,
        "prof.step() (no sync)": with_step,
        "torch.cuda.synchronize() every step": synced,
    }
    attach = attach_hook()
    if attach is not None:

        def hooked(steps: int) -> float:
            with Profiler("gpu-overhead-hook", db=db, country="DEU") as prof:
                handle = attach(trainer.optimizer, prof, samples=trainer.batch)
                try:
                    return timed_block(trainer, steps, lambda f: f())
                finally:
                    handle.remove()

        variants["hooks.torch.attach() (CUDA events)"] = hooked
    return variants


def check_overhead(report: Report, trainer: Trainer, reps: int, steps: int) -> None:
    report.section(f"(d) hook overhead ({reps} interleaved blocks of {steps} steps)")
    with tempfile.TemporaryDirectory(prefix="greenprof-gpu-") as tmp:
        variants = block_variants(trainer, Path(tmp) / "overhead.db")
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(reps):
            for name, run in variants.items():
                rates[name].append(run(steps))
    base = rates["no profiler"]
    report.line("| variant | steps/s (median) | slowdown (paired median) | target |")
    report.line("|---|---|---|---|")
    results = {}
    for name, values in rates.items():
        slow = statistics.median(100 * (b / v - 1) for v, b in zip(values, base, strict=True))
        target = "≤ 1 % at ≥ 50 ms, ≤ 2 % at 10 ms" if "no sync" in name or "attach" in name else ""
        results[name] = {"steps_per_s": statistics.median(values), "slowdown_pct": slow}
        report.line(f"| {name} | {statistics.median(values):.1f} | {slow:+.2f} % | {target} |")
    report.data["overhead"] = results


# Main ------------------------------------------------------------------------------------------


def output_dir() -> Path:
    out = os.environ.get("OUT")
    path = Path(out) if out else Path("gpu-validation")
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe_gpus(report: Report, pynvml: Any, torch: Any, handles: list[Any]) -> None:
    names = []
    for handle in handles:
        name = pynvml.nvmlDeviceGetName(handle)
        names.append(name.decode() if isinstance(name, bytes) else str(name))
    driver = pynvml.nvmlSystemGetDriverVersion()
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    report.data["machine"] = {
        "gpus": names,
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
    }
    report.lines += ["# greenprof GPU validation", ""]
    report.line(f"GPUs: {', '.join(names)}; driver {driver}; torch {torch.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (about 1.5 min)")
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    args = parser.parse_args()
    try:
        pynvml, torch, handles = open_gpu()
    except NoGPU as exc:
        print(f"gpu_validation: no GPU to validate on: {exc}", file=sys.stderr)
        return 2
    report = Report()
    describe_gpus(report, pynvml, torch, handles)
    check_latency(report, pynvml, handles, 300 if args.quick else 2000)
    check_update_period(report, pynvml, torch, torch_device_handle(pynvml, torch), 2.0)
    trainer = Trainer(torch, args.batch)
    check_training(report, pynvml, torch, trainer, 15.0 if args.quick else 60.0)
    check_overhead(report, trainer, 3 if args.quick else 5, 100 if args.quick else 300)
    out = output_dir()
    (out / "gpu-validation.json").write_text(json.dumps(report.data, indent=2) + "\n")
    (out / "gpu-validation.md").write_text("\n".join(report.lines) + "\n")
    print(f"\nwrote {out / 'gpu-validation.json'} and {out / 'gpu-validation.md'}")
    pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

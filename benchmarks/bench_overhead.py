"""Training-thread and sampler-thread cost of greenprof.

Measures, in one process and one run (ratios, never absolute thresholds):

1. the hot path on the training thread — ``step_begin()+step_end()``, ``with prof.step()``
   and the ``prof.steps()`` loop wrapper — timed call by call with ``perf_counter_ns``
   while a profiler samples 2 FakeSensors at 10 Hz (median, p99 per step);
2. the slowdown of a loop of ~1 ms CPU steps (a fixed amount of work, calibrated once)
   with ``prof.step()`` around each step, against the bare loop, in interleaved blocks;
   and the peer: CodeCarbon's ``start_task()/stop_task()`` around each step;
3. the sampler thread's CPU share at 10 Hz (``Sampler.cpu_time_s`` / wall), with the
   detected sensors and with 4 FakeSensors, idle and with 1,000 steps/s being marked.

Run: ``python benchmarks/bench_overhead.py [--quick]`` (about 3 min; --quick about 1 min).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Benchmark the checkout this file lives in, whatever the install state of the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import Row, percentile, print_table

from greenprof import Profiler
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.fake import FakeSensor


def fake_sensors(n: int) -> list[PowerSensor]:
    names = ["gpu:0", "cpu:0", "gpu:1", "dram:0", "gpu:2", "gpu:3"]
    return [FakeSensor(names[i], power_w=100.0 + 10 * i) for i in range(n)]


def detected_sensors() -> tuple[list[PowerSensor], str]:
    """The sensors greenprof would pick on this machine, or FakeSensors with the reason."""
    try:
        from greenprof.sensors.detect import detect_sensors

        detection = detect_sensors()
    except Exception as exc:  # the module is being written by a teammate
        return fake_sensors(2), f"detection unavailable ({exc!r}): 2 FakeSensors instead"
    if not detection.sensors:
        return fake_sensors(2), "nothing detected: 2 FakeSensors instead"
    names = ", ".join(s.device for s in detection.sensors)
    return list(detection.sensors), f"detected: {names}"


def new_profiler(db: Path, sensors: list[PowerSensor], name: str) -> Profiler:
    return Profiler(name, db=db, sensors=sensors, interval_s=0.1, country="DEU")


# 1. The hot path ------------------------------------------------------------------


def time_begin_end(prof: Profiler, n: int) -> list[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    begin, end = prof.step_begin, prof.step_end
    for i in range(n):
        t0 = clock()
        begin()
        end(samples=64)
        out[i] = clock() - t0
    return out


def time_context(prof: Profiler, n: int) -> list[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    step = prof.step
    for i in range(n):
        t0 = clock()
        with step(samples=64):
            pass
        out[i] = clock() - t0
    return out


def time_loop(items: Iterator[Any], n: int) -> list[int]:
    """Cost per iteration of ``for item in items`` with an empty body (n iterations)."""
    out = [0] * n
    clock = time.perf_counter_ns
    i = 0
    previous = clock()
    for _ in items:
        now = clock()
        out[i] = now - previous
        previous = now
        i += 1
        if i == n:
            break
    return out[:i]


def time_empty(n: int) -> list[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        out[i] = clock() - t0
    return out


def pending_steps(prof: Profiler) -> int:
    """Steps marked but not yet attributed (``Profiler.stats()``)."""
    return prof.stats().pending_steps


def settle(prof: Profiler, timeout_s: float = 30.0) -> None:
    """Mark slow steps until the sampler has attributed a burst of short steps.

    A burst of thousands of steps inside one counter interval is only attributed once a
    later step ends past a final knot; left pending, the burst would all go to
    ``stop()``, whose cost grows with the square of the steps pending in one interval
    (see bench_startup.py's "stop() with N steps pending").
    """
    end = time.perf_counter() + timeout_s
    while pending_steps(prof) > 100 and time.perf_counter() < end:
        time.sleep(0.01)
        prof.step_end()


def hot_path_variants(per_chunk: int) -> dict[str, Callable[[Profiler], list[int]]]:
    batch = ([0.0] * 64, [0] * 64)  # an (inputs, targets) batch: samples = len(inputs)
    return {
        TIMER: lambda _p: time_empty(per_chunk),
        "step_begin() + step_end(samples=64)": lambda p: time_begin_end(p, per_chunk),
        "with prof.step(samples=64)": lambda p: time_context(p, per_chunk),
        BARE_LOOP: lambda _p: time_loop(iter(lambda: batch, None), per_chunk),
        "for b in prof.steps(batches)": lambda p: time_loop(
            p.steps(iter(lambda: batch, None)), per_chunk
        ),
        "for i in prof.steps(ints) [no len()]": lambda p: time_loop(
            p.steps(iter(int, 1)), per_chunk
        ),
    }


TIMER = "timer alone (perf_counter_ns pair)"
BARE_LOOP = "bare loop: for b in batches"


def hot_path_row(name: str, samples: list[int], timer: float, bare: float) -> Row:
    med, p99 = statistics.median(samples), percentile(samples, 99)
    p999, worst = percentile(samples, 99.9), max(samples)
    figure = f"median {med:5.0f} ns  p99 {p99:6.0f}  p99.9 {p999:7.0f}  max {worst / 1e3:6.0f} µs"
    if name in (TIMER, BARE_LOOP):
        return Row(name, figure + " " * 15)
    net = med - (bare if name.startswith("for") else timer)
    figure += f"  (net {net:5.0f} ns)"
    return Row(name, figure, "median ≤ 2 µs, p99 ≤ 20 µs", med <= 2000 and p99 <= 20000)


def bench_hot_path(db: Path, calls: int, chunks: int) -> list[Row]:
    """Interleave the variants in chunks while one profiler samples at 10 Hz."""
    variants = hot_path_variants(calls // chunks)
    results: dict[str, list[int]] = {name: [] for name in variants}
    with new_profiler(db, fake_sensors(2), "bench-hot-path") as prof:
        for _ in range(chunks):
            for name, run in variants.items():
                results[name].extend(run(prof))
                if name not in (TIMER, BARE_LOOP):
                    settle(prof)
    timer = statistics.median(results[TIMER])
    bare = statistics.median(results[BARE_LOOP])
    return [hot_path_row(name, samples, timer, bare) for name, samples in results.items()]


# 2. Slowdown of ~1 ms steps ----------------------------------------------------------


def calibrate_work(target_s: float = 0.001) -> int:
    """Iterations of the busy loop that take ``target_s`` (fixed work, not fixed time)."""
    n = 1000
    while True:
        t0 = time.perf_counter()
        busy(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.02:
            return max(1, int(n * target_s / elapsed))
        n *= 2


def busy(n: int) -> float:
    """A fixed amount of CPU work: n calls of perf_counter (stolen time slows it down)."""
    clock = time.perf_counter
    total = 0.0
    for _ in range(n):
        total += clock()
    return total


def block_bare(work: int, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        busy(work)
    return time.perf_counter() - t0


def block_greenprof(db: Path, work: int, steps: int, sensors: int = 2) -> float:
    """The profiler starts before and stops after the timed block (its threads run)."""
    with new_profiler(db, fake_sensors(sensors), "bench-slowdown") as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            with prof.step(samples=64):
                busy(work)
        return time.perf_counter() - t0


def block_codecarbon(tracker: Any, work: int, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        tracker.start_task()
        busy(work)
        tracker.stop_task()
    return time.perf_counter() - t0


def make_codecarbon_tracker() -> tuple[Any, str]:
    """CodeCarbon's offline tracker, or None with the reason it could not be made."""
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)

        tracker = OfflineEmissionsTracker(
            country_iso_code="DEU",
            save_to_file=False,
            log_level="error",
            measure_power_secs=3600,
            project_name="greenprof-bench",
        )
    except Exception as exc:
        return None, f"CodeCarbon unavailable: {type(exc).__name__}: {exc}"
    return tracker, "codecarbon OfflineEmissionsTracker"


def slowdown_row(what: str, times: list[float], bare: list[float], target: bool) -> Row:
    """Paired median (each block against the bare block just before it) and ratio of medians."""
    paired = statistics.median(100 * (t - b) / b for t, b in zip(times, bare, strict=True))
    of_medians = (
        100 * (statistics.median(times) - statistics.median(bare)) / statistics.median(bare)
    )
    figure = f"{paired:+6.2f} %  (ratio of medians {of_medians:+.2f} %)"
    return Row(
        what, figure, "≤ 0.5 %" if target else "(decomposition)", paired <= 0.5 if target else None
    )


def bench_slowdown(db: Path, reps: int, steps: int) -> list[Row]:
    work = calibrate_work()
    tracker, note = make_codecarbon_tracker()
    times: dict[str, list[float]] = {"bare": [], "greenprof": [], "no sensors": [], "cc": []}
    for _ in range(reps):
        times["bare"].append(block_bare(work, steps))
        times["greenprof"].append(block_greenprof(db, work, steps))
        times["no sensors"].append(block_greenprof(db, work, steps, sensors=0))
        if tracker is not None:
            try:
                times["cc"].append(block_codecarbon(tracker, work, steps))
            except Exception as exc:
                note = f"CodeCarbon failed: {type(exc).__name__}: {exc}"
                tracker = None
    bare = times["bare"]
    per_step = 1e6 * statistics.median(bare) / steps
    rows = [
        Row("bare loop, per step", f"{per_step:8.1f} µs", f"({reps} blocks × {steps} steps)"),
        slowdown_row("greenprof: prof.step(), 2 FakeSensors", times["greenprof"], bare, True),
        slowdown_row("  same, no sensors (no attribution)", times["no sensors"], bare, False),
    ]
    if len(times["cc"]) == reps:
        cc = statistics.median(times["cc"])
        cost = 1e6 * (cc - statistics.median(bare)) / steps
        rows.append(
            Row(
                "peer: CodeCarbon start_task/stop_task",
                f"{100 * (cc - statistics.median(bare)) / statistics.median(bare):+7.1f} %"
                f"  ({cost:,.0f} µs per step)",
                "(peer; DESIGN: ~500 µs/step)",
            )
        )
    else:
        rows.append(Row("peer: CodeCarbon start_task/stop_task", "not measured", note))
    rows.append(Row("peer: Zeus begin_window/end_window", "skipped", "(zeus not installed)"))
    return rows


# 3. Sampler CPU share ----------------------------------------------------------------


def thread_cpu_s(name: str) -> float | None:
    """CPU seconds of this process's thread called ``name`` (Linux /proc), else None."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            try:
                stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            except OSError:
                return None
            fields = stat.rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def mark_steps(prof: Profiler, seconds: float, rate_hz: float) -> int:
    """Mark steps at ``rate_hz`` for ``seconds`` (sleeping in between); the step count."""
    period = 1.0 / rate_hz
    start = time.perf_counter()
    n = 0
    while True:
        target = start + n * period
        now = time.perf_counter()
        if now - start >= seconds:
            return n
        if target > now:
            time.sleep(target - now)
        prof.step_end(samples=64)  # contiguous steps: one mark per step boundary
        n += 1


def sampler_share(
    db: Path, sensors: list[PowerSensor], seconds: float, rate_hz: float
) -> tuple[float, float | None, int, float]:
    """(sampler CPU % of a core, writer CPU % or None, polls, steps/s marked)."""
    with new_profiler(db, sensors, "bench-sampler") as prof:
        t0 = time.perf_counter()
        writer0 = thread_cpu_s("greenprof-writer")
        if rate_hz > 0:
            steps = mark_steps(prof, seconds, rate_hz)
        else:
            time.sleep(seconds)
            steps = 0
        wall = time.perf_counter() - t0
        stats = prof.stats()  # the sampler's own CPU clock and poll count
        cpu = stats.sampler_cpu_s
        writer1 = thread_cpu_s("greenprof-writer")
        polls = stats.polls
    writer = None if writer0 is None or writer1 is None else 100 * (writer1 - writer0) / wall
    return 100 * cpu / wall, writer, polls, steps / wall


def bench_sampler(db: Path, seconds: float) -> tuple[list[Row], str]:
    detected, detected_note = detected_sensors()
    n_detected = len(detected)
    for sensor in detected:
        sensor.close()
    scenarios: list[tuple[str, Callable[[], list[PowerSensor]], float]] = [
        ("detected sensors, idle", lambda: detected_sensors()[0], 0.0),
        ("detected sensors, 1,000 steps/s", lambda: detected_sensors()[0], 1000.0),
        ("4 FakeSensors, idle", lambda: fake_sensors(4), 0.0),
        ("4 FakeSensors, 1,000 steps/s", lambda: fake_sensors(4), 1000.0),
    ]
    rows, shares = [], []
    for name, make, rate in scenarios:
        share, writer, polls, steps_per_s = sampler_share(db, make(), seconds, rate)
        shares.append((share, steps_per_s))
        extra = f"{polls} polls" + (f", {steps_per_s:,.0f} steps/s" if rate else "")
        writer_txt = "n/a" if writer is None else f"{writer:.2f} %"
        rows.append(
            Row(
                f"sampler thread, {name}",
                f"{share:5.2f} % of a core  (writer thread {writer_txt}; {extra})",
                "≤ 1 %",
                share <= 1.0,
            )
        )
    for (idle, _), (busy_share, rate), devices, label in (
        (shares[0], shares[1], n_detected, "detected"),
        (shares[2], shares[3], 4, "4 fake"),
    ):
        cost = 1e4 * (busy_share - idle) / rate / max(devices, 1)
        rows.append(
            Row(f"  attribution cost per step per device ({label})", f"{cost:5.1f} µs", "(derived)")
        )
    return rows, detected_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (about 1 min)")
    args = parser.parse_args()
    calls, chunks = (50_000, 2) if args.quick else (200_000, 4)
    reps, steps = (5, 300) if args.quick else (15, 500)
    seconds = 5.0 if args.quick else 20.0
    print(f"bench_overhead: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="greenprof-bench-") as tmp:
        db = Path(tmp) / "overhead.db"
        print_table(
            f"training-thread hot path ({calls:,} calls per variant, profiler sampling at 10 Hz)",
            bench_hot_path(db, calls, chunks),
        )
        print_table(
            f"slowdown of ~1 ms CPU steps (interleaved blocks, median of {reps})",
            bench_slowdown(db, reps, steps),
        )
        rows, note = bench_sampler(db, seconds)
        print_table(f"sampler CPU at 10 Hz over {seconds:.0f} s each ({note})", rows)


if __name__ == "__main__":
    main()

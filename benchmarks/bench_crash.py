"""Steps lost to a SIGKILL: how much completed training a killed process takes with it.

A child process profiles 5 ms steps with two simulated 50 ms counters (``interval_s=0.05``)
and writes its completed-step count after every step; the parent kills it with SIGKILL
after about 2 s, runs ``greenprof repair`` (what ``greenprof run`` and the next run on the
host do by themselves), and compares the completed steps with the stored ones. Two kinds
of step: one that sleeps (a training step in torch or TensorFlow gives up the GIL in its
kernels) and a pure-Python busy loop that holds the GIL (the worst case for greenprof's
threads, which need the GIL to store anything). Each with the sensors polled on threads of
the training process (plain sensor objects) and in the sampler's helper process (sensors
with a recipe, :func:`greenprof.sensors.recipe.spawnable`): the helper keeps polling, but
the readings and steps still reach the store through the training process's threads.

Run: ``python benchmarks/bench_crash.py [--quick]``. Target (DESIGN.md): ≤ 0.5 s lost.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import Row, print_table

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, sys, time
import greenprof
from greenprof.sensors.fake import FakeSensor

from greenprof.sensors.recipe import spawnable

db, out, kind, where = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
if where == "helper":  # sensors with a recipe: polled in the sampler's helper process
    fake = "greenprof.sensors.fake:FakeSensor"
    sensors = [spawnable(fake, "gpu:0", 200.0, update_period_s=0.05),
               spawnable(fake, "cpu:0", 40.0, update_period_s=0.05)]
else:  # plain sensor objects: polled on threads of this process
    sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.05),
               FakeSensor("cpu:0", 40.0, update_period_s=0.05)]
with greenprof.Profiler("killed", db=db, sensors=sensors, interval_s=0.05) as prof:
    taken, start = 0, time.monotonic()
    while True:
        with prof.step(samples=1):
            if kind == "sleep":
                time.sleep(0.005)
            else:
                end = time.perf_counter() + 0.005
                while time.perf_counter() < end:
                    pass
        taken += 1
        os.pwrite(fd, b"%-20d %-20d\\n" % (taken, int((time.monotonic() - start) * 1e6)), 0)
"""


def lost_seconds(tmp: Path, kind: str, where: str, rep: int) -> float:
    """Seconds of completed steps missing after SIGKILL and repair."""
    import sqlite3

    db, out = tmp / f"{kind}-{where}-{rep}.db", tmp / f"{kind}-{where}-{rep}.out"
    script = tmp / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, str(script), str(db), str(out), kind, where], env=env)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    child.send_signal(signal.SIGKILL)
    child.wait()
    completed, elapsed_us = map(int, out.read_text().split())
    subprocess.run(
        [sys.executable, "-m", "greenprof", "repair", "--db", str(db), "1"],  # dead: we killed it
        env=env,
        check=True,
        capture_output=True,
    )
    (stored,) = sqlite3.connect(db).execute("SELECT count(*) FROM steps").fetchone()
    return (completed - stored) / (completed / (elapsed_us / 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 kills per kind instead of 5")
    args = parser.parse_args()
    reps = 2 if args.quick else 5
    print(f"bench_crash: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {reps} kills each")
    rows = []
    with tempfile.TemporaryDirectory(prefix="greenprof-crash-") as name:
        for where, how in (("threads", "threads"), ("helper", "helper process")):
            for kind, label in (
                ("sleep", "steps that release the GIL"),
                ("busy", "busy-loop steps"),
            ):
                # the child's own repair after a few seconds: run them one after another
                lost = [lost_seconds(Path(name), kind, where, rep) for rep in range(reps)]
                rows.append(
                    Row(
                        f"SIGKILL after ~2 s of 5 ms {label}, sensors polled on {how}:"
                        " completed steps lost",
                        f"median {sorted(lost)[len(lost) // 2]:.2f} s, max {max(lost):.2f} s",
                        "≤ 0.5 s",
                        max(lost) <= 0.5,
                    )
                )
    print_table("crash loss (SIGKILL, then greenprof repair)", rows)


if __name__ == "__main__":
    main()

"""Run every ``benchmarks/bench_*.py``, each in its own process, and print a combined report.

A benchmark that fails or times out is reported and the others still run. ``--quick`` is
passed on to the benchmarks that accept it. Databases go to a temporary directory
(``GREENPROF_DB`` is set for the children), never the home directory.
``gpu_validation.py`` is not run here: it needs an NVIDIA GPU (run it by hand).

Run: ``python benchmarks/run_all.py [--quick] [--only NAME ...] [--timeout SECONDS]``.
Exit status: 0 when every benchmark ran (MISSes are reported, not failures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Outcome:
    """How one benchmark script ended."""

    name: str
    status: str  # ok | failed (rc N) | timed out
    seconds: float
    verdicts: list[str]

    @property
    def misses(self) -> int:
        return sum(1 for line in self.verdicts if line.rstrip().endswith("MISS"))


def discover(only: list[str]) -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(name in s.stem for name in only)]
    return scripts


def accepts_quick(script: Path) -> bool:
    return "--quick" in script.read_text(encoding="utf-8", errors="replace")


def run_one(script: Path, quick: bool, timeout_s: float, db_dir: Path) -> Outcome:
    """Run ``script`` (output streamed through), collect its PASS/MISS lines."""
    args = [sys.executable, "-u", str(script)]
    if quick and accepts_quick(script):
        args.append("--quick")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "GREENPROF_DB": str(db_dir / f"{script.stem}.db"),
    }
    print(f"\n{'=' * 100}\n# {script.name} {' '.join(args[3:])}\n{'=' * 100}", flush=True)
    verdicts: list[str] = []
    t0 = time.perf_counter()
    with subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        deadline = t0 + timeout_s
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.rstrip().endswith(("PASS", "MISS")):
                verdicts.append(line.rstrip())
            if time.perf_counter() > deadline:
                proc.kill()
                break
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
    seconds = time.perf_counter() - t0
    if rc is None or seconds > timeout_s:
        status = f"timed out after {timeout_s:.0f} s"
    else:
        status = "ok" if rc == 0 else f"failed (rc {rc})"
    return Outcome(script.name, status, seconds, verdicts)


def print_summary(outcomes: list[Outcome]) -> None:
    print(f"\n{'=' * 100}\n# summary\n{'=' * 100}\n")
    print(f"{'benchmark':<26} {'status':<26} {'time':>8}  PASS  MISS")
    for o in outcomes:
        passes = len(o.verdicts) - o.misses
        print(f"{o.name:<26} {o.status:<26} {o.seconds:7.0f}s  {passes:4d}  {o.misses:4d}")
    misses = [(o.name, line) for o in outcomes for line in o.verdicts if line.endswith("MISS")]
    if misses:
        print("\nmissed targets:")
        for name, line in misses:
            print(f"  {name}: {' '.join(line.split())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick where accepted")
    parser.add_argument("--only", nargs="*", default=[], help="run scripts whose name has this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per script")
    args = parser.parse_args()
    scripts = discover(args.only)
    if not scripts:
        print("no benchmarks/bench_*.py matched", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="greenprof-bench-") as tmp:
        outcomes = [run_one(s, args.quick, args.timeout, Path(tmp)) for s in scripts]
    print_summary(outcomes)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

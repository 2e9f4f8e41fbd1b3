"""The `greenprof` verbs of greenprof.hooks: ``run`` (zero-code profiling of a command)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from greenprof.cli import add_db_argument
from greenprof.records import RunStatus

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's verbs to the command line."""
    run = subparsers.add_parser(
        "run",
        help="run a training command under a profiler, no code change",
        description="Runs COMMAND with zero-code profiling: whole-process energy always; per-"
        "step energy for torch optimizers (global step hook) and Keras fit (callback added), "
        "hooked when the child imports them (a sitecustomize on PYTHONPATH). The child's exit "
        "code, signals and output pass through; a non-zero exit records the run as failed.",
        usage="greenprof run [options] -- COMMAND [ARGS...]",
    )
    add_db_argument(run)
    run.add_argument("--name", default=None, help="run name (default: the script's name)")
    run.add_argument("--country", help="ISO 3166-1 alpha-3 code of the grid, e.g. DEU")
    run.add_argument("--region", help="cloud region or grid zone, e.g. europe-west1")
    run.add_argument("--pue", type=float, default=None, help="data-centre PUE (1.0)")
    run.add_argument("--intensity", type=float, default=None, metavar="G_PER_KWH")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(handler=_run)


def child_environment(args: argparse.Namespace, info_path: str) -> dict[str, str]:
    """The child's environment: the sitecustomize directory first on PYTHONPATH, the
    run's settings in GREENPROF_* variables."""
    env = dict(os.environ)
    site_dir = str(Path(__file__).resolve().parent / "_site")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site_dir, env.get("PYTHONPATH")) if p)
    env["GREENPROF_AUTOHOOK"] = "1"
    env["GREENPROF_RUN_INFO"] = info_path
    env["GREENPROF_COMMAND"] = " ".join(args.command)
    settings = {
        "GREENPROF_DB": args.db,
        "GREENPROF_RUN_NAME": args.name or _script_name(args.command),
        "GREENPROF_COUNTRY": args.country,
        "GREENPROF_REGION": args.region,
        "GREENPROF_PUE": args.pue,
        "GREENPROF_INTENSITY": args.intensity,
    }
    for name, value in settings.items():
        if value is not None:
            env[name] = str(Path(value).resolve()) if name == "GREENPROF_DB" else str(value)
    return env


def _script_name(command: list[str]) -> str:
    for arg in command[1:]:
        if arg.endswith(".py"):
            return Path(arg).stem
    if len(command) >= 3 and command[1] == "-m":
        return command[2]
    return Path(command[0]).name if command else "run"


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    args.command = command
    if not command:
        print("greenprof run: no command given: greenprof run -- python train.py", file=sys.stderr)
        return 2
    fd, info_path = tempfile.mkstemp(prefix="greenprof-run-", suffix=".json")
    os.close(fd)
    try:
        try:
            child = subprocess.Popen(command, env=child_environment(args, info_path))
        except OSError as exc:
            print(f"greenprof run: cannot start {command[0]!r}: {exc}", file=sys.stderr)
            return 127
        previous = _forward_signals(child)
        try:
            code = child.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        _record_exit(info_path, code)
    finally:
        Path(info_path).unlink(missing_ok=True)
    if code < 0:  # killed by a signal: die the same way, so the caller sees it too
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def _forward_signals(child: subprocess.Popen[bytes]) -> dict[int, Any]:
    """Pass signals to the child. Ctrl-C at a terminal already reaches the child (same
    process group, in the foreground), so SIGINT is only forwarded when it cannot have."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _in_terminal_foreground():
            return
        if child.poll() is None:
            child.send_signal(signum)

    previous: dict[int, Any] = {}
    for signum in _FORWARDED:
        try:
            previous[signum] = signal.signal(signum, forward)
        except (OSError, ValueError):  # not the main thread, or not on this platform
            continue
    return previous


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _record_exit(info_path: str, code: int) -> None:
    """A non-zero exit fails the run (a signal: interrupted), whatever the child managed
    to write before it ended."""
    if code == 0:
        return
    try:
        info = json.loads(Path(info_path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    run_id, db = info.get("run_id"), info.get("db")
    if run_id is None or not db:
        return
    status: RunStatus
    if code < 0:
        status, error = "interrupted", f"killed by {signal.Signals(-code).name}"
    else:
        status, error = "failed", f"exit code {code}"
    from greenprof.errors import StoreError
    from greenprof.store.writer import mark_run_ended

    try:
        mark_run_ended(Path(db), int(run_id), status, error)
    except (StoreError, sqlite3.Error) as exc:
        print(f"greenprof run: could not record the exit in {db}: {exc}", file=sys.stderr)

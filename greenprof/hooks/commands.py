"""The `greenprof` verbs of greenprof.hooks: ``run`` (zero-code profiling of a command).

``greenprof run`` stands in for its command: the caller (a shell, SLURM, a CI job) must
see what it would have seen without it. So every setting is checked before the command
starts (a typo must not cost a training run that is then not profiled), signals sent to
``greenprof run`` at any moment reach the command, and the command's exit status, or
the signal it died of, is ``greenprof run``'s own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from greenprof.cliargs import add_db_argument
from greenprof.config import MAX_INTERVAL_S, MIN_INTERVAL_S, ProfilerConfig, summary_setting
from greenprof.errors import ConfigError, GreenprofError
from greenprof.records import RunStatus
from greenprof.redaction import redact_argv
from greenprof.store.location import StoreLocation, is_server_url, redact_url
from greenprof.values import finite_from_text

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this package's verbs to the command line."""
    run = subparsers.add_parser(
        "run",
        help="run a training command under a profiler, no code change",
        description="Runs COMMAND with zero-code profiling: whole-process energy always; per-"
        "step energy for torch optimizers (global step hook) and Keras fit (callback added), "
        "hooked when the child imports them (a sitecustomize on PYTHONPATH). The child's exit "
        "code, signals and output pass through; a non-zero exit records the run as failed. "
        "Settings are checked before COMMAND starts (exit status 2 if one is wrong); secrets "
        "in COMMAND (--hf-token VALUE, URL passwords, ...) are recorded as ***. Launchers "
        "(torchrun, python -m torch.distributed.run, accelerate launch, srun, mpirun) are "
        "not runs: each worker process is one run of the job.",
        usage="greenprof run [options] -- COMMAND [ARGS...]",
    )
    add_db_argument(run)
    run.add_argument("--name", default=None, help="run name (default: the script's name)")
    run.add_argument(
        "--job",
        metavar="NAME",
        help="job id shared by every process's run (default: the launcher's)",
    )
    run.add_argument("--country", help="ISO 3166-1 alpha-3 code of the grid, e.g. DEU")
    run.add_argument("--region", help="cloud region or grid zone, e.g. europe-west1")
    run.add_argument("--pue", metavar="PUE", help="data-centre PUE, ≥ 1.0 (1.0)")
    run.add_argument("--intensity", metavar="G_PER_KWH", help="grid intensity, overrides country")
    run.add_argument(
        "--interval-s",
        metavar="SECONDS",
        help=f"sensor polling interval, {MIN_INTERVAL_S:g}–{MAX_INTERVAL_S:g}",
    )
    run.add_argument("--expected-steps", metavar="N", help="planned steps, for live forecasts")
    run.add_argument("--prometheus-port", metavar="PORT", help="serve /metrics from the child")
    run.add_argument("--pushgateway", metavar="URL", help="push the run's metrics there at the end")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(handler=_run)


# Settings ---------------------------------------------------------------------


def settings_environment(args: argparse.Namespace) -> dict[str, str]:
    """The ``GREENPROF_*`` variables for the run's options, each parsed and checked for
    what the Profiler does not check itself (finiteness, the interval's upper bound, the
    port range). Raises :class:`ConfigError` naming the option."""
    settings = {
        "GREENPROF_RUN_NAME": args.name or _script_name(args.command),
        "GREENPROF_COUNTRY": args.country,
        "GREENPROF_REGION": args.region,
        "GREENPROF_PUSHGATEWAY": args.pushgateway,
        "GREENPROF_JOB": _job(args.job),
    }
    if args.db is not None:
        settings["GREENPROF_DB"] = _absolute_db(args.db)
    if args.pue is not None:
        settings["GREENPROF_PUE"] = repr(_finite(args.pue, "--pue", "a finite number ≥ 1.0"))
    if args.intensity is not None:
        intensity = _finite(args.intensity, "--intensity", "a finite number ≥ 0 (gCO2e/kWh)")
        settings["GREENPROF_INTENSITY"] = repr(intensity)
    if args.interval_s is not None:
        what = f"a finite number of seconds, {MIN_INTERVAL_S:g}–{MAX_INTERVAL_S:g}"
        interval = _finite(args.interval_s, "--interval-s", what)
        if interval > MAX_INTERVAL_S:
            raise ConfigError(f"--interval-s must be {what}; got {args.interval_s!r}")
        settings["GREENPROF_INTERVAL_S"] = repr(interval)
    if args.expected_steps is not None:
        steps = _integer(args.expected_steps, "--expected-steps", "a positive integer")
        settings["GREENPROF_EXPECTED_STEPS"] = str(steps)
    if args.prometheus_port is not None:
        what = "a port number, 1–65535"
        port = _integer(args.prometheus_port, "--prometheus-port", what)
        if not 1 <= port <= 65535:
            raise ConfigError(f"--prometheus-port must be {what}; got {args.prometheus_port!r}")
        settings["GREENPROF_PROMETHEUS_PORT"] = str(port)
    return {name: value for name, value in settings.items() if value is not None}


def _job(job: str | None) -> str | None:
    if job is not None and not job.strip():
        raise ConfigError(f"--job must be a non-empty name; got {job!r}")
    return job


def _finite(text: str, option: str, what: str) -> float:
    return finite_from_text(text, option, what)


def _integer(text: str, option: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{option} must be {what}; got {text!r}") from None


def _absolute_db(db: str) -> str:
    """A database path made absolute (the child may change directory); URLs unchanged."""
    return db if "://" in db else str(Path(db).expanduser().resolve())


def check_child_settings(env: dict[str, str]) -> None:
    """Raise :class:`ConfigError` if the child would refuse these settings: the child's
    own parsing and checks (:meth:`ProfilerConfig.from_env`: interval, steps, PUE,
    country, region, inherited ``GREENPROF_*`` variables) run here; an existing database
    must be a greenprof database this version can write."""
    try:
        config = ProfilerConfig.from_env(env)
    except ConfigError:
        raise
    except (GreenprofError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    _check_database(config.store)


def _check_database(store: StoreLocation) -> None:
    """A ``--db`` typo that names some other file must not cost an unprofiled run."""
    from greenprof.store.reader import RunStore

    if store.kind != "sqlite" or not store.path.exists():
        return  # a new file is created by the child; servers are checked there
    try:
        RunStore(store.path).close()
    except GreenprofError as exc:
        raise ConfigError(str(exc)) from exc


def child_environment(
    args: argparse.Namespace, info_path: str, settings: dict[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: the sitecustomize directory first on PYTHONPATH, the
    run's settings in GREENPROF_* variables, the command line with its secrets hidden."""
    env = dict(os.environ)
    site_dir = str(Path(__file__).resolve().parent / "_site")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site_dir, env.get("PYTHONPATH")) if p)
    env["GREENPROF_AUTOHOOK"] = "1"
    env["GREENPROF_RUN_INFO"] = info_path
    env["GREENPROF_COMMAND"] = " ".join(redact_argv(args.command))
    env.update(settings_environment(args) if settings is None else settings)
    return env


def _script_name(command: list[str]) -> str:
    for arg in command[1:]:
        if arg.endswith(".py"):
            return Path(arg).stem
    if len(command) >= 3 and command[1] == "-m":
        return command[2]
    return Path(command[0]).name if command else "run"


# Running ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    args.command = command
    if not command:
        print("greenprof run: no command given: greenprof run -- python train.py", file=sys.stderr)
        return 2
    try:
        settings = settings_environment(args)
        check_child_settings(child_environment(args, "", settings))
        summary = summary_setting(os.environ)
    except ConfigError as exc:
        print(f"greenprof: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    fd, info_path = tempfile.mkstemp(prefix="greenprof-run-", suffix=".json")
    os.close(fd)
    forwarder = _SignalForwarder()
    try:
        forwarder.install()
        try:
            try:
                child = subprocess.Popen(command, env=child_environment(args, info_path, settings))
            except OSError as exc:
                print(f"greenprof run: cannot start {command[0]!r}: {exc}", file=sys.stderr)
                return 127
            forwarder.attach(child)
            code = child.wait()
        finally:
            forwarder.restore()
        runs = _finish_run(info_path, code)
        if summary:
            _print_summaries(runs)
    finally:
        Path(info_path).unlink(missing_ok=True)
    return _exit_status(code)


def _one_line(message: str) -> str:
    return " ".join(message.split())


@dataclass
class _SignalForwarder:
    """Passes SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child, from before it exists.

    Installed before the child is started: a signal that arrives while it is being
    started is held and sent as soon as it exists (it was lost before, and the child
    ran on). Ctrl-C at a terminal already reaches a running child (same process group,
    in the foreground), so SIGINT is then not sent twice. Signals ignored when we
    started (``nohup``) stay ignored, for us and, by inheritance, for the child.
    """

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = field(default_factory=list)
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        for signum in _FORWARDED:
            try:
                if signal.getsignal(signum) == signal.SIG_IGN:
                    continue
                self.previous[signum] = signal.signal(signum, self._handle)
            except (OSError, ValueError):  # not the main thread, or not on this platform
                continue
        # A launcher may hand these signals to us blocked (the mask survives exec): they
        # would then reach neither us nor, as the child inherits the mask, the child.
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(self.previous))

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        while self.pending:
            self._send(self.pending.pop(0))

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
        elif not (signum == signal.SIGINT and _in_terminal_foreground()):
            self._send(signum)

    def _send(self, signum: int) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signum)  # a no-op once the child has been reaped


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _exit_status(code: int) -> int:
    """``greenprof run``'s exit: the child's status; if the child died of a signal, die
    of the same one, so that a shell or a scheduler sees what it would have seen.
    SIGKILL and SIGSTOP are not raised on ourselves (SIGKILL would look like the OOM
    killer struck ``greenprof run`` itself; SIGSTOP would stop it): exit 128 + signal,
    the shell's convention, as also whenever re-raising fails."""
    if code >= 0:
        return code
    signum = -code
    if signum in (signal.SIGKILL, signal.SIGSTOP):
        return 128 + signum
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        # The child's core dump, if any, is the one that matters: none of our own.
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        if soft != 0:
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):
        pass
    return 128 + signum


# Recording how the run ended --------------------------------------------------


@dataclass
class _RunInfo:
    """What the child's processes wrote to the run-info file, one JSON line each."""

    runs: list[tuple[Path | str, int]] = field(default_factory=list)
    """(store, run id): a SQLite file, or a server's URL as text (a :class:`Path` would
    fold its ``//``)."""
    not_profiled: list[str] = field(default_factory=list)
    launchers: int = 0

    @classmethod
    def read(cls, path: str) -> _RunInfo:
        info = cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            return info
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a process killed mid-write leaves a torn line; the rest stand
            if isinstance(entry, dict):
                info._add(entry)
        return info

    def _add(self, entry: dict[str, Any]) -> None:
        if entry.get("not_profiled"):
            self.not_profiled.append(_one_line(str(entry["not_profiled"])))
        elif entry.get("launcher"):
            self.launchers += 1
        elif entry.get("run_id") is not None and entry.get("db"):
            with contextlib.suppress(TypeError, ValueError):
                self.runs.append((_store(str(entry["db"])), int(entry["run_id"])))


def _store(db: str) -> Path | str:
    """A store named in the run-info file: a server URL stays text, a file is a Path."""
    return db if is_server_url(db) else Path(db)


def _finish_run(info_path: str, code: int) -> list[tuple[Path | str, int]]:
    """Make the stored runs agree with how the child ended, and say so when there is no
    run: a non-zero exit fails the run (a signal: interrupted), whatever the child
    managed to write; a run left ``running`` by a child that exited 0 without stopping
    its profiler (``os._exit``, ``exec``) is ended. With several runs (the workers of a
    launcher), each worker's own ending stands; a run still ``running`` (its process
    killed) gets the launcher's. Returns the runs, (store, run id) each."""
    info = _RunInfo.read(info_path)
    for reason in dict.fromkeys(info.not_profiled):
        _warn(f"the command ran unprofiled: {reason}")
    if not info.runs:
        if info.not_profiled:
            return []
        if info.launchers:
            _warn(
                "no run was recorded: the launcher started no Python worker that took up "
                "profiling (not Python, python -S or -I, or it ended before start-up)"
            )
        else:
            _warn(
                "no run was recorded: the command started no Python process that took up "
                "profiling (not Python, python -S or -I, or it ended before start-up)"
            )
        return []
    sole = len(info.runs) == 1 and not info.launchers
    for db, run_id in info.runs:
        try:
            _end_run(db, run_id, code, sole=sole)
        except (GreenprofError, ValueError) as exc:
            where = redact_url(db) if isinstance(db, str) else db
            _warn(f"could not record the exit in {where}: {_one_line(str(exc))}")
    return info.runs


def _print_summaries(runs: list[tuple[Path | str, int]]) -> None:
    """Each run's end-of-run summary on stderr, as its store now has it (the command's
    processes print none themselves: their run's ending is only final here)."""
    from greenprof.summary_printer import print_run_summary

    for db, run_id in runs:
        print_run_summary(db, run_id)


def _end_run(db: Path | str, run_id: int, code: int, *, sole: bool = True) -> None:
    """End one run from outside its process. ``sole``: the run is the command's only
    process, whose exit status is the command's; a worker's exit status is its own, so
    a worker run that ended itself keeps its ending."""
    from greenprof.store.writer import mark_run_ended

    status: RunStatus
    running = _stored_status(db, run_id) == "running"
    if not sole and not running:
        return
    if code < 0:
        status, error = "interrupted", f"killed by {_signal_name(-code)}"
    elif code > 0:
        status, error = "failed", f"exit code {code}" if sole else f"launcher exit code {code}"
    elif running:
        status = "completed"
        error = (
            "ended by greenprof run: the command exited 0 without stopping its profiler"
            if sole
            else "ended by greenprof run: the launcher exited 0 and this worker had not ended"
        )
    else:
        return
    mark_run_ended(db, run_id, status, error)
    # The child is gone: steps it had seen but not yet attributed are final; attribute
    # them from its stored readings (flagged recovered) rather than leave them pending.
    from greenprof.store.recovery import repair

    repair(db, run_ids=[run_id])


def _stored_status(db: Path | str, run_id: int) -> str | None:
    from greenprof.store.reader import RunStore

    with RunStore(db) as store:
        return store.stored_status(run_id)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _warn(message: str) -> None:
    print(f"greenprof run: warning: {message}", file=sys.stderr)

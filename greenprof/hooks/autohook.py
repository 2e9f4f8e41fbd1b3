"""Zero-code profiling inside the processes that ``greenprof run`` starts.

Mechanism: ``greenprof run`` prepends a directory holding a ``sitecustomize.py`` to the
child's ``PYTHONPATH`` (chaining any ``sitecustomize`` that was there) and sets
``GREENPROF_AUTOHOOK=1`` with the run's settings in ``GREENPROF_*`` variables. At
interpreter start-up that ``sitecustomize`` calls :func:`start_from_env`, which

* starts a :class:`~greenprof.profiler.Profiler` for the whole process (whole-process
  energy always; stopped at exit, ``failed`` on an uncaught exception), and says so at
  exit, on stderr and on the run, when no training step was seen;
* adds a ``sys.meta_path`` finder that runs a callback right after ``torch``, ``keras``
  or ``transformers.trainer`` has been imported (never importing them itself): for torch
  it installs the global optimizer step hook
  (:func:`greenprof.hooks.torch.install_global_hook`), for Keras it patches
  ``Model.fit`` to add the callback (:func:`greenprof.hooks.keras.patch_fit`), for the
  Hugging Face ``Trainer`` it adds its callback
  (:func:`greenprof.hooks.transformers.patch_trainer`), which counts optimizer steps
  and training samples only (evaluation batches are not steps).

Which processes are runs: a launcher (``torchrun``, ``python -m torch.distributed.run``,
``accelerate launch``, ``deepspeed``) is not; it leaves the flag in its environment so
that each worker it starts is one run (of one job: the Profiler reads the job and rank
from the launcher's variables). Any other process takes the flag up and removes it from
its environment, so its own subprocesses and DataLoader workers are not profiled twice.
Non-Python launchers (``srun``, ``mpirun``) pass the flag to every rank. Every process
appends one line to the ``GREENPROF_RUN_INFO`` file (its run, or why there is none), so
``greenprof run`` can end every run. ``python -S`` / ``-I`` skip ``sitecustomize``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import types
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from greenprof.config import ProfilerConfig
from greenprof.errors import GreenprofError
from greenprof.profiler import Profiler
from greenprof.redaction import redact_argv

log = logging.getLogger("greenprof")

ENV_FLAG = "GREENPROF_AUTOHOOK"

NO_STEP_WARNING = (
    "no training step was seen: only the whole process's energy is recorded. Zero-code "
    "mode counts torch optimizer steps, Keras fit batches and Hugging Face Trainer steps; "
    "for another loop, mark steps with greenprof.Profiler(...).step() or a hook"
)
"""Said at exit (stderr and on the run) when a profiled process saw no step: a run that
is ``completed`` with 0 steps must never look like a success of the hooks."""

_LAUNCHER_MODULES = frozenset(
    {
        "torch.distributed.run",
        "torch.distributed.launch",
        "accelerate.commands.launch",
        "deepspeed.launcher.runner",
    }
)
_LAUNCHER_SCRIPTS = frozenset({"torchrun", "accelerate-launch", "deepspeed"})
_INTERPRETER_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def zero_code_config(env: Mapping[str, str]) -> ProfilerConfig:
    """The whole-process run's settings: what the ``GREENPROF_*`` variables of ``env`` ask
    for (:meth:`ProfilerConfig.from_env`, strict: a bad value raises a
    :class:`~greenprof.errors.ConfigError` naming the variable), tagged with the command
    (secrets redacted) and ambient, so that a script's own Profiler joins it.
    ``greenprof run`` checks the same settings in the parent before starting the child.
    The run prints no summary itself: ``greenprof run`` prints it once the command has
    exited and its ending is recorded (a non-zero exit fails the run after the fact).

    Example::

        Profiler.from_config(zero_code_config({"GREENPROF_PUE": "1.2"}))
    """
    command = env.get("GREENPROF_COMMAND") or " ".join(redact_argv(sys.argv))
    config = ProfilerConfig.from_env(
        env, tags={"command": command, "zero_code": "true"}, framework="auto", ambient=True
    )
    return config.replace(summary=False)


def is_launcher(argv: Sequence[str]) -> bool:
    """Whether the interpreter command line ``argv`` (``sys.orig_argv``: the interpreter
    first) runs a launcher of worker processes rather than training itself.

    Example::

        is_launcher(["python", "/venv/bin/torchrun", "--nproc_per_node=2", "train.py"])  # True
    """
    args = list(argv[1:])
    while args and args[0].startswith("-") and args[0] != "-":
        option = args.pop(0)
        if option == "-m":
            return bool(args) and args[0] in _LAUNCHER_MODULES
        if option == "-c":
            return False
        if option in _INTERPRETER_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    if not args:
        return False
    script = Path(args[0]).name
    if script == "accelerate":
        return len(args) > 1 and args[1] == "launch"
    return script in _LAUNCHER_SCRIPTS


def start_from_env(
    env: MutableMapping[str, str] = os.environ, argv: Sequence[str] | None = None
) -> Profiler | None:
    """Start zero-code profiling if ``GREENPROF_AUTOHOOK=1`` (and consume the flag),
    unless this process is a launcher (``argv``, default ``sys.orig_argv``), whose
    workers are profiled instead.

    Never breaks the program it runs in: bad settings or a failing start leave it
    running unprofiled, with one warning line on stderr and the reason in the
    ``GREENPROF_RUN_INFO`` file, so that ``greenprof run`` can say so too.

    Example::

        profiler = start_from_env()   # in sitecustomize, with GREENPROF_AUTOHOOK=1
    """
    if env.get(ENV_FLAG) != "1":
        return None
    info_path = env.get("GREENPROF_RUN_INFO")
    if is_launcher(sys.orig_argv if argv is None else argv):
        _write_info(info_path, {"launcher": os.getpid()})
        return None
    del env[ENV_FLAG]
    profiler: Profiler | None = None
    try:
        # ambient: an explicit Profiler in the script joins this run instead of a second one
        profiler = Profiler.from_config(zero_code_config(env), env=env)
        profiler.start()
    except Exception as exc:
        reason = str(exc) if isinstance(exc, GreenprofError) else repr(exc)
        print(f"greenprof: warning: not profiling this run: {reason}", file=sys.stderr)
        if profiler is not None and profiler.running:
            with contextlib.suppress(Exception):
                profiler.stop(status="failed", error=f"zero-code start failed: {reason}")
        _write_info(info_path, {"not_profiled": reason, "pid": os.getpid()})
        return None
    _write_info(
        info_path, {"run_id": profiler.run_id, "db": str(profiler.db_path), "pid": os.getpid()}
    )
    _stop_at_exit(profiler)
    install_import_hooks(
        {
            "torch": lambda _module: _install_torch(profiler),
            "keras": lambda _module: _install_keras(profiler),
            "transformers.trainer": lambda module: _install_transformers(profiler, module),
        }
    )
    return profiler


def _stop_at_exit(profiler: Profiler) -> None:
    """End the run when the interpreter exits: ``failed`` after an uncaught exception
    (``interrupted`` after Ctrl-C), else ``completed``; say so if no step was seen."""
    outcome: dict[str, Any] = {"status": "completed", "error": None}
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        interrupted = issubclass(kind, KeyboardInterrupt)
        outcome["status"] = "interrupted" if interrupted else "failed"
        outcome["error"] = f"{kind.__name__}: {exc}"
        previous_hook(kind, exc, tb)

    def stop() -> None:
        profiler.stop(status=outcome["status"], error=outcome["error"])
        # after a crash, 0 steps is no news; after a clean end it is the hooks' failure
        if outcome["status"] == "completed" and outcome.get("exit") is None:
            _say_if_no_step(profiler)

    original_exit = sys.exit

    def exit_noting_the_code(status: str | int | None = None) -> NoReturn:
        # atexit handlers cannot see the exit status; `greenprof run` fails the run of a
        # non-zero exit, and a "no step" note must not stand in for that.
        if status is not None and status != 0:
            outcome["exit"] = status
        original_exit(status)

    sys.excepthook = excepthook
    sys.exit = exit_noting_the_code
    atexit.register(stop)


def _say_if_no_step(profiler: Profiler) -> None:
    """After a clean end, a run with no step says so: on stderr and on the run. Read from
    the store once the run is closed (every mark path counts: hooks, ``prof.step()``, a
    script's own Profiler that joined this run), so nothing watches the training thread."""
    if profiler.run_id is None:
        return
    from greenprof.store.reader import RunStore
    from greenprof.store.writer import mark_run_ended

    try:
        with RunStore(profiler.db_path) as store:
            run = store.run(profiler.run_id)
        if run.steps > 0 or run.status != "completed":
            return
        print(f"greenprof: warning: {NO_STEP_WARNING}", file=sys.stderr)
        mark_run_ended(profiler.db_path, profiler.run_id, "completed", NO_STEP_WARNING)
    except Exception as exc:  # never fail the script's exit over a warning
        log.debug("greenprof: could not check the run's steps: %r", exc)


def _write_info(path: str | None, info: dict[str, Any]) -> None:
    """Tell ``greenprof run`` which run this process is (or why there is none): one JSON
    line appended in a single write, so that many processes can share the file."""
    if not path:
        return
    line = (json.dumps(info) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        print(f"greenprof: warning: cannot write {path}: {exc}", file=sys.stderr)


def _install_torch(profiler: Profiler) -> None:
    from greenprof.hooks.torch import install_global_hook

    install_global_hook(profiler)


def _install_keras(profiler: Profiler) -> None:
    from greenprof.hooks.keras import patch_fit

    patch_fit(profiler)


def _install_transformers(profiler: Profiler, module: types.ModuleType) -> None:
    from greenprof.hooks.transformers import patch_trainer

    patch_trainer(profiler, module.Trainer)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of watched modules so that their
    callback runs right after the module has executed, once.

    Robust to probing: ``importlib.util.find_spec(name)`` (TensorFlow probes for
    ``keras``, transformers for ``torch``) gets a wrapped spec too and consumes nothing;
    the callback fires at the module's actual execution. A module that another finder
    loaded without us (one placed ahead of us on ``sys.meta_path``, a loader without
    ``exec_module``) is caught at the next import of anything, once it has finished
    initializing."""

    def __init__(self, callbacks: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self._callbacks = callbacks
        self._busy: set[str] = set()

    @property
    def pending(self) -> bool:
        return bool(self._callbacks)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        self._catch_up()
        if fullname not in self._callbacks or fullname in self._busy:
            return None
        spec = self._real_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        if not isinstance(spec.loader, _CallbackLoader):
            spec.loader = _CallbackLoader(spec.loader, self, fullname)
        return spec

    def _real_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec: importlib.machinery.ModuleSpec | None = finder.find_spec(
                    fullname, path, target
                )
                if spec is not None:
                    return spec
            return None
        finally:
            self._busy.discard(fullname)

    def fire(self, name: str, module: types.ModuleType) -> None:
        """Run the callback of ``name`` if it has not run yet."""
        callback = self._callbacks.pop(name, None)
        if callback is None:
            return
        if not self._callbacks:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
        try:
            callback(module)
        except Exception as exc:
            print(f"greenprof: hooking {name} failed: {exc!r}", file=sys.stderr)

    def _catch_up(self) -> None:
        for name in list(self._callbacks):
            module = sys.modules.get(name)
            if module is not None and not getattr(module.__spec__, "_initializing", False):
                self.fire(name, module)


class _CallbackLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, finder: _PostImportFinder, name: str) -> None:
        self._loader = loader
        self._finder = finder
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = self._loader  # type: ignore[union-attr]
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._finder.fire(self._name, module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, get_filename, ...
        return getattr(self._loader, name)


def install_import_hooks(callbacks: dict[str, Callable[[types.ModuleType], None]]) -> None:
    """Run ``callbacks[name](module)`` once each module is imported (now, if it already is).

    Example::

        install_import_hooks({"torch": lambda torch: print("torch loaded")})
    """
    pending = {}
    for name, callback in callbacks.items():
        module = sys.modules.get(name)
        if module is not None:
            callback(module)
        else:
            pending[name] = callback
    if pending:
        sys.meta_path.insert(0, _PostImportFinder(pending))

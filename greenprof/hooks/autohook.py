"""Zero-code profiling inside the process that ``greenprof run`` starts.

Mechanism: ``greenprof run`` prepends a directory holding a ``sitecustomize.py`` to the
child's ``PYTHONPATH`` (chaining any ``sitecustomize`` that was there) and sets
``GREENPROF_AUTOHOOK=1`` with the run's settings in ``GREENPROF_*`` variables. At
interpreter start-up that ``sitecustomize`` calls :func:`start_from_env`, which

* starts a :class:`~greenprof.profiler.Profiler` for the whole process (whole-process
  energy always; stopped at exit, ``failed`` on an uncaught exception);
* adds a ``sys.meta_path`` finder that runs a callback right after ``torch`` or
  ``keras`` has been imported (never importing them itself): for torch it installs
  the global optimizer step hook (:func:`greenprof.hooks.torch.install_global_hook`),
  for Keras it patches ``Model.fit`` to add the callback
  (:func:`greenprof.hooks.keras.patch_fit`).

Only the first Python process takes it up (the variable is removed from its
environment), so subprocesses and DataLoader workers are not profiled twice.
``python -S`` / ``-I`` skip ``sitecustomize`` and so skip profiling.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import json
import logging
import math
import os
import sys
import types
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, overload

from greenprof.errors import ConfigError, GreenprofError
from greenprof.profiler import Profiler
from greenprof.redaction import redact_argv

log = logging.getLogger("greenprof")

ENV_FLAG = "GREENPROF_AUTOHOOK"


def profiler_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The :class:`Profiler` keyword arguments that the ``GREENPROF_*`` variables of
    ``env`` ask for. Strict, so that a bad value is reported rather than half-applied
    (an empty ``GREENPROF_PUE`` once became 1.0, ``0`` too): raises
    :class:`~greenprof.errors.ConfigError` naming the variable. ``greenprof run`` calls
    this in the parent to check the child's settings before starting it.

    Example::

        Profiler(**profiler_settings({"GREENPROF_PUE": "1.2"}))
    """
    command = env.get("GREENPROF_COMMAND") or " ".join(redact_argv(sys.argv))
    return {
        "run": env.get("GREENPROF_RUN_NAME") or None,
        "country": env.get("GREENPROF_COUNTRY") or None,
        "region": env.get("GREENPROF_REGION") or None,
        "pue": _number(env, "GREENPROF_PUE", 1.0),
        "intensity_g_per_kwh": _number(env, "GREENPROF_INTENSITY", None),
        "interval_s": _number(env, "GREENPROF_INTERVAL_S", 0.1),
        "expected_steps": _integer(env, "GREENPROF_EXPECTED_STEPS"),
        "framework": env.get("GREENPROF_FRAMEWORK", "auto"),
        "tags": {"command": command, "zero_code": "true"},
        "env": env,
    }


@overload
def _number(env: Mapping[str, str], name: str, default: float) -> float: ...
@overload
def _number(env: Mapping[str, str], name: str, default: None) -> float | None: ...
def _number(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    value = env.get(name)
    if not value:  # unset or empty: the default, as for the Profiler's own variables
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"${name} must be a finite number; got {value!r}")
    return number


def _integer(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be an integer; got {value!r}") from None


def start_from_env(env: MutableMapping[str, str] = os.environ) -> Profiler | None:
    """Start zero-code profiling if ``GREENPROF_AUTOHOOK=1`` (and consume the flag).

    Never breaks the program it runs in: bad settings or a failing start leave it
    running unprofiled, with one warning line on stderr and the reason in the
    ``GREENPROF_RUN_INFO`` file, so that ``greenprof run`` can say so too.

    Example::

        profiler = start_from_env()   # in sitecustomize, with GREENPROF_AUTOHOOK=1
    """
    if env.pop(ENV_FLAG, None) != "1":
        return None
    info_path = env.get("GREENPROF_RUN_INFO")
    profiler: Profiler | None = None
    try:
        profiler = Profiler(**profiler_settings(env))
        profiler.start()
    except Exception as exc:
        reason = str(exc) if isinstance(exc, GreenprofError) else repr(exc)
        print(f"greenprof: warning: not profiling this run: {reason}", file=sys.stderr)
        if profiler is not None and profiler.running:
            with contextlib.suppress(Exception):
                profiler.stop(status="failed", error=f"zero-code start failed: {reason}")
        _write_info(info_path, {"not_profiled": reason})
        return None
    _write_info(info_path, {"run_id": profiler.run_id, "db": str(profiler.db_path)})
    outcome: dict[str, Any] = {"status": "completed", "error": None}
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        interrupted = issubclass(kind, KeyboardInterrupt)
        outcome["status"] = "interrupted" if interrupted else "failed"
        outcome["error"] = f"{kind.__name__}: {exc}"
        previous_hook(kind, exc, tb)

    sys.excepthook = excepthook
    atexit.register(lambda: profiler.stop(status=outcome["status"], error=outcome["error"]))
    install_import_hooks(
        {
            "torch": lambda _module: _install_torch(profiler),
            "keras": lambda _module: _install_keras(profiler),
        }
    )
    return profiler


def _write_info(path: str | None, info: dict[str, Any]) -> None:
    """Tell ``greenprof run`` which run this is (or why there is none)."""
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(info, f)
    except OSError as exc:
        print(f"greenprof: warning: cannot write {path}: {exc}", file=sys.stderr)


def _install_torch(profiler: Profiler) -> None:
    from greenprof.hooks.torch import install_global_hook

    install_global_hook(profiler)


def _install_keras(profiler: Profiler) -> None:
    from greenprof.hooks.keras import patch_fit

    patch_fit(profiler)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of watched modules so that a callback
    runs right after the module has executed."""

    def __init__(self, callbacks: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self._callbacks = callbacks
        self._busy: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._callbacks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        callback = self._callbacks.pop(fullname)
        spec.loader = _CallbackLoader(loader, callback)
        return spec


class _CallbackLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, callback: Callable[[types.ModuleType], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = self._loader  # type: ignore[union-attr]
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception as exc:
            print(f"greenprof: hooking {module.__name__} failed: {exc!r}", file=sys.stderr)


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

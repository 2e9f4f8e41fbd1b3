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
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import types
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from greenprof.profiler import Profiler

log = logging.getLogger("greenprof")

ENV_FLAG = "GREENPROF_AUTOHOOK"


def _float(env: MutableMapping[str, str], name: str) -> float | None:
    value = env.get(name)
    return float(value) if value else None


def start_from_env(env: MutableMapping[str, str] = os.environ) -> Profiler | None:
    """Start zero-code profiling if ``GREENPROF_AUTOHOOK=1`` (and consume the flag).

    Example::

        profiler = start_from_env()   # in sitecustomize, with GREENPROF_AUTOHOOK=1
    """
    if env.pop(ENV_FLAG, None) != "1":
        return None
    profiler = Profiler(
        env.get("GREENPROF_RUN_NAME") or None,
        country=env.get("GREENPROF_COUNTRY") or None,
        region=env.get("GREENPROF_REGION") or None,
        pue=_float(env, "GREENPROF_PUE") or 1.0,
        intensity_g_per_kwh=_float(env, "GREENPROF_INTENSITY"),
        framework=env.get("GREENPROF_FRAMEWORK", "auto"),
        tags={"command": env.get("GREENPROF_COMMAND", " ".join(sys.argv)), "zero_code": "true"},
    )
    profiler.start()
    info_path = env.get("GREENPROF_RUN_INFO")
    if info_path:
        with open(info_path, "w", encoding="utf-8") as f:
            json.dump({"run_id": profiler.run_id, "db": str(profiler.db_path)}, f)
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

"""Injected by ``greenprof run``: chains any other ``sitecustomize``, then starts
zero-code profiling in this process (see :mod:`greenprof.hooks.autohook`).

Never lets greenprof break the program: failures are reported on stderr and ignored.
"""

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _chain_next_sitecustomize() -> None:
    saved_path = sys.path[:]
    me = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    try:
        chained = importlib.import_module("sitecustomize")
        sys.modules["_greenprof_chained_sitecustomize"] = chained
    except ImportError as exc:
        if exc.name != "sitecustomize":
            print(f"greenprof: the existing sitecustomize failed: {exc!r}", file=sys.stderr)
    except Exception as exc:
        print(f"greenprof: the existing sitecustomize failed: {exc!r}", file=sys.stderr)
    finally:
        sys.path[:] = saved_path
        if me is not None:
            sys.modules["sitecustomize"] = me


_chain_next_sitecustomize()

if os.environ.get("GREENPROF_AUTOHOOK") == "1":
    try:
        from greenprof.hooks.autohook import start_from_env

        start_from_env()
    except Exception as exc:
        print(f"greenprof: zero-code profiling not started: {exc!r}", file=sys.stderr)

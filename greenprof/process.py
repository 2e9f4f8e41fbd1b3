"""What a run must survive in its process: a fork, and SIGTERM.

A forked child owns nothing of its parent's runs (the parent stores and ends them);
SIGTERM (a scheduler's cancel, ``kill``, ``docker stop``) would end the process without
a word, so the run is stored ``interrupted`` first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

_in_child: list[weakref.WeakMethod[Callable[[], None]]] = []
"""Methods of started profilers to call in a forked child (weak: a profiler that is gone
needs nothing)."""


def on_fork_in_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in the child of a later ``fork()`` (once per fork)."""
    if not _in_child and hasattr(os, "register_at_fork"):
        _register_once()
    _in_child[:] = [ref for ref in _in_child if ref() is not None]
    _in_child.append(weakref.WeakMethod(method))


def _register_once() -> None:
    if not getattr(_register_once, "done", False):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _register_once.done = True  # type: ignore[attr-defined]


def _after_fork_in_child() -> None:
    methods = [ref() for ref in _in_child]
    _in_child.clear()
    for method in methods:
        if method is not None:
            method()


class TermHandler:
    """A SIGTERM handler for one run: stop the run (``interrupted``), then die of the signal
    as the sender expects (exit status 143).

    Installed only where no one else handles SIGTERM (a handler left by a stopped run
    counts as no one), and only from the main thread.
    """

    def __init__(self, is_running: Callable[[], bool], stop: Callable[[], None]) -> None:
        self._is_running = is_running
        self._stop = stop
        self.previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            current: Any = signal.getsignal(signal.SIGTERM)
            if isinstance(current, TermHandler) and not current._is_running():
                current = current.previous
            if current is not signal.SIG_DFL:
                return
            signal.signal(signal.SIGTERM, self)
            self.previous = signal.SIG_DFL
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            self.previous = None

    def restore(self) -> None:
        """Put the default back (main thread only: a stop from another thread leaves the
        handler, which then acts as the default would)."""
        previous = self.previous
        if previous is None:
            return
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                handler: object = signal.getsignal(signal.SIGTERM)
                if handler is self:
                    signal.signal(signal.SIGTERM, previous)
                    self.previous = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self._is_running():
            self._stop()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

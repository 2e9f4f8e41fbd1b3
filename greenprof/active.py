"""Which Profiler is running here: hooks and ``@greenprof.profile`` join it (one run, not
two). A context variable, so threads and asyncio tasks started inside a run see it."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from greenprof.profiler import Profiler

P = ParamSpec("P")
R = TypeVar("R")

Token = contextvars.Token["Profiler | None"]

_active: contextvars.ContextVar[Profiler | None] = contextvars.ContextVar(
    "greenprof_active_profiler", default=None
)


def current_profiler() -> Profiler | None:
    """The innermost running Profiler in this context (hooks use it to join a run)."""
    profiler = _active.get()
    return profiler if profiler is not None and profiler.running else None


def activate(profiler: Profiler) -> Token:
    """Make ``profiler`` the current one; :func:`deactivate` with the token undoes it."""
    return _active.set(profiler)


def deactivate(token: Token) -> None:
    """Undo :func:`activate` (a no-op from another thread or context, where it never was)."""
    with contextlib.suppress(ValueError):
        _active.reset(token)


def profile(run: str | None = None, **options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: profile each call of a training function as one run.

    Takes the same keywords as :class:`~greenprof.Profiler`. Inside the function,
    ``greenprof.current_profiler()`` returns the run's profiler, and framework hooks
    created without a profiler join it (one run, not two).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            from greenprof.profiler import Profiler

            with Profiler(run or function.__name__, **options):
                return function(*args, **kwargs)

        return wrapper

    return decorate

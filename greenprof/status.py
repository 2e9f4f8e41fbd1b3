"""Run statuses: one reading of how training ended, for every hook.

Every place that ends a run (the ``Profiler`` context, the decorator, each framework
hook, the zero-code exit handler) turns "how did training end" into a stored status
the same way, so a Ctrl-C reads ``interrupted`` and a crash ``failed`` with the same
error text whichever hook saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenprof.records import RunStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: its status and the error text stored with it."""

    status: RunStatus
    error: str | None


COMPLETED = Outcome("completed", None)


def outcome_of(exc: BaseException | None) -> Outcome:
    """The run status for training that ended with ``exc`` (None: it returned).

    - none, or ``sys.exit(0)`` / ``sys.exit()``: ``completed``;
    - ``KeyboardInterrupt``: ``interrupted``, error ``KeyboardInterrupt``;
    - ``SystemExit`` with another code: ``failed``, ``exit code N`` (or its message);
    - anything else: ``failed``, ``TypeName: message``.

    Example::

        try:
            train()
        except BaseException as exc:
            end = outcome_of(exc)
            profiler.stop(status=end.status, error=end.error)
            raise
    """
    if exc is None:
        return COMPLETED
    if isinstance(exc, KeyboardInterrupt):
        return Outcome("interrupted", _described("KeyboardInterrupt", exc))
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or code == 0:
            return COMPLETED
        return Outcome("failed", f"exit code {code}" if isinstance(code, int) else str(code))
    return Outcome("failed", _described(type(exc).__name__, exc))


def outcome_of_type(exc_type: type[BaseException] | None, exc: BaseException | None) -> Outcome:
    """:func:`outcome_of` for an ``__exit__``'s arguments (where ``exc`` may be None
    although a type is given: an exception raised as a class)."""
    if exc_type is None:
        return COMPLETED
    if exc is not None:
        return outcome_of(exc)
    if issubclass(exc_type, KeyboardInterrupt):
        return Outcome("interrupted", exc_type.__name__)
    return Outcome("failed", exc_type.__name__)


def _described(name: str, exc: BaseException) -> str:
    message = str(exc)
    return f"{name}: {message}" if message else name

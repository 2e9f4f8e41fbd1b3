"""Numbers that come from user code, made plain Python numbers (pure).

Training scripts pass whatever they hold: ``len(x)``, ``np.int64(32)``, ``x.shape[0]``,
``loss`` as a 0-d tensor. The training thread stores them as given (converting a CUDA
tensor there would synchronise the GPU every step); the profiler's own threads convert
them with these functions before anything is counted or stored. A value that cannot be
converted raises :class:`ValueError` or :class:`TypeError` naming what was wrong, and the
caller drops it with one warning; it never loses the step.
"""

from __future__ import annotations

import math
import operator


def as_count(value: object, name: str = "samples") -> int | None:
    """A non-negative integer (``samples``, ``epoch``), or None for None.

    Accepts ints and anything with ``__index__`` (numpy integers, integer 0-d tensors);
    refuses bools, floats and strings (``"32"`` is a bug in the caller, not a count).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not a bool ({value!r})")
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an integer; got {type(value).__name__} {_short(value)}"
        ) from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0; got {count}")
    return count


def as_number(value: object, name: str = "loss") -> float | None:
    """A finite float (``loss``), or None for None, NaN and infinities.

    Accepts Python and numpy numbers and one-element tensors (``float(tensor)``; on the
    profiler's threads, never the training thread). A tensor that is part of an autograd
    graph (``loss`` itself, not ``loss.detach()``) is detached first: converting it as it
    is makes PyTorch warn, on our thread, and under ``-W error`` would lose the steps.
    A diverged loss (NaN, inf) is stored as NULL, like SQLite stores NaN, rather than
    refused.
    """
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {_short(value)}")
    detach = getattr(value, "detach", None)
    if callable(detach) and getattr(value, "requires_grad", False):
        value = detach()
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a number; got {type(value).__name__} {_short(value)}"
        ) from None
    return number if math.isfinite(number) else None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def setting_number(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float = math.inf,
    hint: str = "",
) -> float:
    """A setting that must be a finite real number in [minimum, maximum] (ints and numpy
    numbers accepted; strings, bools, NaN and infinities refused with a ConfigError)."""
    from greenprof.errors import ConfigError

    ok = not isinstance(value, (bool, str, bytes)) and hasattr(value, "__float__")
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(number) and minimum <= number <= maximum):
        span = f">= {minimum:g}" if maximum == math.inf else f"between {minimum:g} and {maximum:g}"
        raise ConfigError(
            f"{name} must be a finite number {span}; got {_short(value)}"
            + (f" ({hint})" if hint else "")
        )
    return number


def setting_int(name: str, value: object, *, minimum: int, maximum: int) -> int:
    """A setting that must be an integer in [minimum, maximum] (ConfigError otherwise)."""
    from greenprof.errors import ConfigError

    try:
        number = as_count(value, name) if minimum >= 0 else operator.index(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None or not minimum <= number <= maximum:
        raise ConfigError(
            f"{name} must be an integer between {minimum} and {maximum}; got {_short(value)}"
        )
    return number


def finite_from_text(text: str, label: str, what: str = "a finite number") -> float:
    """A finite float parsed from command-line or environment text (ConfigError naming
    ``label`` otherwise: ``nan``, ``inf`` and words are refused alike)."""
    from greenprof.errors import ConfigError

    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{label} must be {what}; got {text!r}")
    return number

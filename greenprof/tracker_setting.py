"""The ``trackers`` setting: which experiment trackers get a run's numbers (pure).

Kept apart from :mod:`greenprof.exporters.trackers` so that the settings
(:mod:`greenprof.config`) can check it and the Profiler can tell, without importing an
exporter, whether any tracker observer is needed at all (with ``auto``, only when the
script has imported ``mlflow`` or ``wandb``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Iterable, Mapping

from greenprof.errors import ConfigError

TRACKERS_ENV = "GREENPROF_TRACKERS"
AUTO = "auto"
KNOWN_TRACKERS = ("mlflow", "wandb")
"""The trackers greenprof can log to (each also the name of its Python module)."""
OFF = ("off", "none")


def parse_trackers(
    value: str | Iterable[str] | None, env: Mapping[str, str] = os.environ
) -> tuple[str, ...]:
    """The trackers setting, checked: ``("auto",)``, ``()`` (off) or names from
    :data:`KNOWN_TRACKERS`. ``None`` reads ``$GREENPROF_TRACKERS`` (default ``auto``);
    a string is comma-separated. An unknown name is a
    :class:`~greenprof.errors.ConfigError` with a suggestion. Idempotent.

    Example::

        parse_trackers("mlflow, wandb")  # ('mlflow', 'wandb')
    """
    if value is None:
        value = env.get(TRACKERS_ENV) or AUTO
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"trackers must be names such as 'mlflow'; got {item!r}")
        name = item.strip().lower()
        if name and name not in names:
            names.append(name)
    if not names or any(name in OFF for name in names):
        return ()
    if AUTO in names:
        return (AUTO,)
    for name in names:
        if name not in KNOWN_TRACKERS:
            raise ConfigError(unknown_tracker(name))
    return tuple(names)


def unknown_tracker(name: str) -> str:
    """The message for a tracker greenprof does not know, with a suggestion."""
    choices = (*KNOWN_TRACKERS, AUTO, "off")
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown tracker {name!r}{hint}; choose from {', '.join(choices)}"


def trackers_wanted(trackers: Iterable[str], modules: Collection[str]) -> bool:
    """Whether a run with this (checked) setting may log to a tracker: a named one, or
    with ``auto`` one whose module the script has imported (``modules``: the names in
    ``sys.modules``). False means no tracker observer need be built or imported.

    Example::

        trackers_wanted(config.trackers, sys.modules)
    """
    names = tuple(trackers)
    if AUTO in names:
        return any(name in modules for name in KNOWN_TRACKERS)
    return bool(names)

"""Exceptions raised by greenprof.

The hierarchy::

    GreenprofError
      ├── ConfigError          bad argument, unknown country/region, bad flag value
      ├── StoreError           database problems
      │     ├── NotAGreenprofDatabase   the file exists but is not ours (never modified)
      │     ├── SchemaTooNew            written by a newer greenprof
      │     └── RunNotFound             no run with that id or name
      └── SensorError          a sensor could not be opened or read

Errors inside the profiler's background threads never reach the training loop:
they are logged once and recorded on the run.
"""

from __future__ import annotations


class GreenprofError(Exception):
    """Base class of every error greenprof raises on purpose."""


class ConfigError(GreenprofError, ValueError):
    """An argument or setting is invalid; the message says how to fix it."""


class StoreError(GreenprofError):
    """The run database cannot be used."""


class NotAGreenprofDatabase(StoreError):
    """The file exists and is not a greenprof database; it is left untouched."""


class SchemaTooNew(StoreError):
    """The database was written by a newer greenprof than this one."""


class RunNotFound(StoreError, LookupError):
    """No run matches the given id or name."""


class SensorError(GreenprofError):
    """A sensor could not be opened or read."""

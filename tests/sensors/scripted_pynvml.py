"""Moved to :mod:`greenprof.sensors.testing` (shipped, so users can test against it).

Kept as a re-export for tests written before the move; import from the package.
"""

from greenprof.sensors.testing import COUNTER_PERIOD_S, FakeClock, Handle, ScriptedGpu, ScriptedNvml

__all__ = ["COUNTER_PERIOD_S", "FakeClock", "Handle", "ScriptedGpu", "ScriptedNvml"]

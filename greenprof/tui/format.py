"""Former home of the terminal UI's formatting: now thin names over :mod:`greenprof.formatting`.

No screen imports it any more (they use :mod:`greenprof.formatting`); it stays for code
outside the package that imported the old names, which then shows the one formatting
rule too.
"""

from __future__ import annotations

from greenprof import formatting
from greenprof.units import J_PER_KWH as J_PER_KWH  # noqa: PLC0414 (re-export)
from greenprof.units import J_PER_WH as J_PER_WH  # noqa: PLC0414 (re-export)

energy = formatting.energy
power = formatting.power
co2 = formatting.co2
duration = formatting.duration
number = formatting.number
percent = formatting.percent
memory = formatting.memory
tags = formatting.tags


def kwh(energy_j: float | None) -> str:
    """A run's energy with its unit (Wh family, by magnitude); the old name of
    :func:`greenprof.formatting.energy_wh`."""
    return formatting.energy_wh(energy_j)


def timestamp(unix_s: float) -> str:
    """ISO 8601 local time with its zone; :func:`greenprof.formatting.timestamp`."""
    return formatting.timestamp(unix_s)

"""Unit conversions: one home for every constant that turns one SI unit into another.

Everything greenprof stores is SI with the unit in the name (``energy_j``, ``power_w``,
``duration_s``, ``co2_g``); these constants convert at the edges, where a report or a
format expects kWh, mg or kg.
"""

from __future__ import annotations

from typing import Final

J_PER_WH: Final = 3600.0
"""Joules in one watt-hour."""

J_PER_KWH: Final = 3.6e6
"""Joules in one kilowatt-hour (the unit of grid carbon intensity, gCO2e/kWh)."""

G_PER_KG: Final = 1000.0
"""Grams in one kilogram (CodeCarbon reports emissions in kg)."""

MG_PER_G: Final = 1000.0
"""Milligrams in one gram."""

S_PER_MIN: Final = 60.0
S_PER_H: Final = 3600.0


def kwh_from_j(energy_j: float) -> float:
    """Energy in kWh."""
    return energy_j / J_PER_KWH


def j_from_kwh(energy_kwh: float) -> float:
    """Energy in joules."""
    return energy_kwh * J_PER_KWH

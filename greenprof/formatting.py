"""Human formatting of quantities: one rule for the CLI, the terminal UI and reports.

The rule (issue 12), so that the same run reads the same everywhere:

- Three significant digits, never an exponent and never a long run of zeros: the unit
  prefix moves instead (``4.10 mJ``, not ``0.0041 J``; ``2.23 mWh``, not
  ``0.00000223 kWh``; ``40.0 mg``, not ``4e-05 kg``).
- Energy has two families. :func:`energy` (mJ, J, kJ, MJ) is for figures per step or
  per sample; :func:`energy_wh` (mWh, Wh, kWh, MWh) is for totals of a run or a job,
  the unit of electricity bills and grid intensities. Each picks the prefix by magnitude.
- Carbon is CO2-equivalent mass in mg, g or kg (:func:`co2`).
- Durations have one style, SI symbols with spaces: ``850 ms``, ``4.20 s``,
  ``3 min 07 s``, ``2 h 05 min``, ``3 d 04 h`` (:func:`duration`).
- Times are ISO 8601 with their zone: ``2023-11-14T22:13+00:00`` (:func:`timestamp`).
- A missing figure is ``–``.

Pure functions of numbers; nothing here reads a clock except :func:`timestamp`'s
conversion of the time it is given.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

from greenprof.records import TagValue, tag_text
from greenprof.units import J_PER_WH

MISSING = "–"
"""What a missing figure reads as."""

SIGNIFICANT_DIGITS = 3

_ENERGY_J: tuple[tuple[float, str], ...] = (
    (1e6, "MJ"),
    (1e3, "kJ"),
    (1.0, "J"),
    (1e-3, "mJ"),
    (1e-6, "µJ"),
)
_ENERGY_WH: tuple[tuple[float, str], ...] = (
    (1e6 * J_PER_WH, "MWh"),
    (1e3 * J_PER_WH, "kWh"),
    (J_PER_WH, "Wh"),
    (1e-3 * J_PER_WH, "mWh"),
    (1e-6 * J_PER_WH, "µWh"),
)
_POWER_W: tuple[tuple[float, str], ...] = (
    (1e6, "MW"),
    (1e3, "kW"),
    (1.0, "W"),
    (1e-3, "mW"),
)
_MASS_G: tuple[tuple[float, str], ...] = ((1e3, "kg"), (1.0, "g"), (1e-3, "mg"), (1e-6, "µg"))


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` with ``digits`` significant digits in plain notation (no exponent).

    Integers that need more digits keep them (``12345`` stays ``12345``): dropping them
    would write zeros that were never measured, or an exponent.

    Example::

        significant(0.0041234)  # '0.00412'
    """
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return MISSING
    exponent = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - exponent)
    text = f"{value:.{decimals}f}"
    # rounding may carry into a new digit (9.996 -> 10.00): keep `digits` significant
    if decimals > 0 and len(text.lstrip("-").replace(".", "").lstrip("0")) > digits:
        text = f"{value:.{decimals - 1}f}"
    return text


def _prefixed(value: float, units: Sequence[tuple[float, str]], zero: str) -> str:
    """``value`` in the largest unit of ``units`` (largest first) it reaches, after
    rounding; values below the smallest unit use the smallest; 0 is ``0 <zero>``."""
    if value == 0:
        return f"0 {zero}"
    if not math.isfinite(value):
        return MISSING
    magnitude = abs(value)
    for factor, unit in units:
        # 999.7 J rounds to "1000 J": it is 1.00 kJ
        if float(significant(magnitude / factor)) >= 1.0:
            return f"{significant(value / factor)} {unit}"
    factor, unit = units[-1]
    return f"{significant(value / factor)} {unit}"


def energy(energy_j: float | None) -> str:
    """Energy per step or per sample, in mJ, J, kJ or MJ: ``512 J``, ``3.41 kJ``.

    Example::

        energy(0.0041)  # '4.10 mJ'
    """
    return MISSING if energy_j is None else _prefixed(energy_j, _ENERGY_J, "J")


def energy_wh(energy_j: float | None) -> str:
    """Energy of a run or a job, in mWh, Wh, kWh or MWh: ``2.23 mWh``, ``1.20 kWh``
    (an energy too small for µWh is written in mJ rather than as a run of zeros).

    Example::

        energy_wh(8.03)  # '2.23 mWh'
    """
    if energy_j is None:
        return MISSING
    if 0 < abs(energy_j) < _ENERGY_WH[-1][0] / 2:  # below 1 µWh (3.6 mJ): no 0.000… µWh
        return energy(energy_j)
    return _prefixed(energy_j, _ENERGY_WH, "Wh")


def power(power_w: float | None) -> str:
    """Power in mW, W, kW or MW: ``251 W``, ``1.20 kW``."""
    return MISSING if power_w is None else _prefixed(power_w, _POWER_W, "W")


def co2(co2_g: float | None) -> str:
    """CO2-equivalent mass in mg, g or kg: ``40.0 mg``, ``12.3 g``, ``1.20 kg``."""
    return MISSING if co2_g is None else _prefixed(co2_g, _MASS_G, "g")


def duration(duration_s: float | None) -> str:
    """A duration: ``850 ms``, ``4.20 s``, ``3 min 07 s``, ``2 h 05 min``, ``3 d 04 h``.

    Below a minute, three significant digits; above, two units, the smaller zero-padded
    (whole seconds, rounded; the larger unit carries, so never ``3 min 60 s``).
    """
    if duration_s is None or not math.isfinite(duration_s):
        return MISSING
    if duration_s < 0:
        return "-" + duration(-duration_s)
    if duration_s == 0:
        return "0 s"
    if float(significant(duration_s)) < 1.0:
        return f"{significant(duration_s * 1e3)} ms"
    if float(significant(duration_s)) < 60:
        return f"{significant(duration_s)} s"
    minutes, seconds = divmod(round(duration_s), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def number(value: float | None, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A count or a ratio: integers below 10,000 as they are, larger values with a k or M
    suffix, fractions with ``digits`` significant digits: ``640``, ``12.5k``, ``0.0123``."""
    if value is None or not math.isfinite(value):
        return MISSING
    if abs(value) >= 1e4:
        for factor, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
            scaled = significant(value / factor, digits)
            # 999,900 rounds to "1000k": it is 1.00M
            if abs(float(scaled)) < 1000 or suffix == "G":
                return scaled + suffix
    if float(value).is_integer():
        return str(int(value))
    return significant(value, digits)


def percent(value: float | None, *, signed: bool = False) -> str:
    """A percentage with one decimal: ``12.5 %``; ``+12.5 %`` when ``signed``."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:+.1f} %" if signed else f"{value:.1f} %"


def memory(memory_bytes: int | None) -> str:
    """Memory in binary units: ``512 B``, ``11.2 GiB``."""
    if memory_bytes is None:
        return MISSING
    value = float(memory_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return MISSING  # pragma: no cover (the loop returns at GiB)


def timestamp(unix_s: float | None, *, zone: dt.tzinfo | None = None, seconds: bool = False) -> str:
    """A Unix time as ISO 8601 with its zone: ``2023-11-14T22:13+00:00``.

    ``zone`` defaults to the machine's local zone (what the user reads on their clock);
    the offset is always written, so a time copied elsewhere stays unambiguous.
    """
    if unix_s is None or not math.isfinite(unix_s):
        return MISSING
    moment = dt.datetime.fromtimestamp(unix_s, tz=dt.timezone.utc).astimezone(zone)
    return moment.isoformat(timespec="seconds" if seconds else "minutes")


def axis_tick(value: float) -> str:
    """Short text for a chart's tick value, at most three significant digits and never an
    exponent: ``0.0123``, ``12.5``, ``250``, ``1.23k`` (1234), ``15.0k``, ``40µ``
    (0.00004, not ``4e-05``). Trailing zeros of a fraction are dropped (``0.25``, not
    ``0.250``); thousands take the ``k`` of :func:`number`.

    Example::

        axis_tick(1234.0)  # '1.23k'
    """
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return MISSING
    rounded = float(significant(value))  # 999.7 is 1000 and 0.00099996 is 0.001 first
    magnitude = abs(rounded)
    if magnitude >= 1e4:
        return number(rounded)
    if magnitude >= 1e3:
        return f"{significant(rounded / 1e3)}k"
    if magnitude >= 1e-3:
        return _without_trailing_zeros(significant(rounded))
    return f"{_without_trailing_zeros(significant(rounded * 1e6))}µ"


def _without_trailing_zeros(text: str) -> str:
    """``0.250`` as ``0.25``, ``40.0`` as ``40`` (integers keep their zeros)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def tags(tag_map: Mapping[str, TagValue]) -> str:
    """Tags as ``k=v k=v`` in key order (values as written in JSON: ``amp=true``)."""
    return " ".join(f"{key}={tag_text(tag_map[key])}" for key in sorted(tag_map))

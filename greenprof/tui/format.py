"""Human formatting of SI quantities for the terminal UI (pure, no Textual)."""

from __future__ import annotations

import math
import time

J_PER_KWH = 3.6e6
J_PER_WH = 3600.0


def _scaled(value: float, units: tuple[tuple[float, str], ...], digits: int = 3) -> str:
    magnitude = abs(value)
    for factor, unit in units:
        if magnitude >= factor:
            return f"{_sig(value / factor, digits)} {unit}"
    factor, unit = units[-1]
    return f"{_sig(value / factor, digits)} {unit}"


def _sig(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, without an exponent."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def energy(energy_j: float | None) -> str:
    """Energy with a readable unit: ``512 J``, ``3.41 kJ``, ``1.20 kWh``."""
    if energy_j is None:
        return "–"
    if abs(energy_j) >= J_PER_KWH:
        return f"{_sig(energy_j / J_PER_KWH, 3)} kWh"
    if abs(energy_j) >= 10 * J_PER_WH:
        return f"{_sig(energy_j / J_PER_WH, 3)} Wh"
    return _scaled(energy_j, ((1e3, "kJ"), (1.0, "J"), (1e-3, "mJ")))


def kwh(energy_j: float | None) -> str:
    """Energy in kWh with enough digits to be non-zero: ``0.0123``."""
    if energy_j is None:
        return "–"
    value = energy_j / J_PER_KWH
    if value == 0:
        return "0"
    return _sig(value, 3)


def power(power_w: float | None) -> str:
    """Power: ``251 W``, ``1.20 kW``."""
    if power_w is None:
        return "–"
    return _scaled(power_w, ((1e3, "kW"), (1.0, "W"), (1e-3, "mW")))


def co2(co2_g: float | None) -> str:
    """Emissions in CO2-equivalent mass: ``12.3 g``, ``1.20 kg``, ``4.1 mg``."""
    if co2_g is None:
        return "–"
    return _scaled(co2_g, ((1e6, "t"), (1e3, "kg"), (1.0, "g"), (1e-3, "mg")))


def duration(duration_s: float | None) -> str:
    """Durations: ``4.2s``, ``3m07s``, ``2h05m``."""
    if duration_s is None:
        return "–"
    if duration_s < 60:
        return f"{duration_s:.1f}s"
    minutes, seconds = divmod(int(duration_s), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def number(value: float | None, digits: int = 3) -> str:
    """A plain number with ``digits`` significant digits; thousands get a k/M suffix."""
    if value is None:
        return "–"
    if abs(value) >= 1e6:
        return f"{_sig(value / 1e6, digits)}M"
    if abs(value) >= 1e4:
        return f"{_sig(value / 1e3, digits)}k"
    if float(value).is_integer():
        return str(int(value))
    return _sig(value, digits)


def percent(value: float | None, *, signed: bool = False) -> str:
    """A percentage: ``12.5 %``; ``+12.5 %`` when ``signed``."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:+.1f} %" if signed else f"{value:.1f} %"
    return text


def memory(memory_bytes: int | None) -> str:
    """Memory in binary units: ``11.2 GiB``."""
    if memory_bytes is None:
        return "–"
    value = float(memory_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def timestamp(unix_s: float) -> str:
    """Local wall-clock time of a Unix timestamp: ``2024-05-01 14:03``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix_s))


def tags(tag_map: dict[str, str]) -> str:
    """Tags as ``k=v k=v`` in key order."""
    return " ".join(f"{key}={tag_map[key]}" for key in sorted(tag_map))

"""The one formatting rule: what every figure reads like in the CLI, the TUI and reports."""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest

from greenprof import formatting as fmt

EXPONENT = re.compile(r"\de[-+]?\d", re.IGNORECASE)


@pytest.mark.parametrize(
    ("energy_j", "text"),
    [
        (0.0, "0 J"),
        (0.0041, "4.10 mJ"),
        (0.9996, "1.00 J"),  # rounding carries into the next prefix
        (512.0, "512 J"),
        (999.7, "1.00 kJ"),
        (3410.0, "3.41 kJ"),
        (12.3e6, "12.3 MJ"),
        (-5.0, "-5.00 J"),
    ],
)
def test_energy_per_step_uses_joule_prefixes_with_three_significant_digits(
    energy_j: float, text: str
) -> None:
    assert fmt.energy(energy_j) == text


@pytest.mark.parametrize(
    ("energy_j", "text"),
    [
        (0.0, "0 Wh"),
        (8.03, "2.23 mWh"),  # was 0.00000223 kWh
        (3600.0, "1.00 Wh"),
        (4.5e5, "125 Wh"),
        (4.32e6, "1.20 kWh"),
        (7.2e9, "2.00 MWh"),
    ],
)
def test_run_energy_uses_watt_hours_by_magnitude(energy_j: float, text: str) -> None:
    assert fmt.energy_wh(energy_j) == text


@pytest.mark.parametrize(
    ("co2_g", "text"),
    [(4e-2, "40.0 mg"), (12.34, "12.3 g"), (1234.0, "1.23 kg"), (0.0, "0 g")],
)
def test_carbon_mass_in_mg_g_kg(co2_g: float, text: str) -> None:
    assert fmt.co2(co2_g) == text


@pytest.mark.parametrize(
    ("duration_s", "text"),
    [
        (0.0, "0 s"),
        (0.85, "850 ms"),
        (4.2, "4.20 s"),
        (59.94, "59.9 s"),
        (59.99, "1 min 00 s"),  # never "60.0 s" nor "0 min 59 s"
        (187.0, "3 min 07 s"),
        (3599.6, "1 h 00 min"),
        (7500.0, "2 h 05 min"),
        (216_000.0, "2 d 12 h"),
    ],
)
def test_one_duration_style(duration_s: float, text: str) -> None:
    assert fmt.duration(duration_s) == text


def test_power_numbers_and_percentages() -> None:
    assert fmt.power(251.4) == "251 W"
    assert fmt.power(1200.0) == "1.20 kW"
    assert fmt.number(640) == "640"
    assert fmt.number(12_500) == "12.5k"
    assert fmt.number(4_520_000) == "4.52M"
    assert fmt.number(0.0123456) == "0.0123"
    assert fmt.percent(12.345) == "12.3 %"
    assert fmt.percent(-20.04, signed=True) == "-20.0 %"
    assert fmt.memory(11.2 * 2**30) == "11.2 GiB"  # type: ignore[arg-type]
    assert fmt.memory(512) == "512 B"


def test_missing_and_non_finite_figures_read_as_a_dash() -> None:
    for show in (fmt.energy, fmt.energy_wh, fmt.power, fmt.co2, fmt.duration, fmt.number):
        assert show(None) == fmt.MISSING
        assert show(math.nan) == fmt.MISSING
    assert fmt.percent(math.inf) == fmt.MISSING


def test_times_are_iso_8601_with_their_zone() -> None:
    t = 1_700_000_000.0
    assert fmt.timestamp(t, zone=dt.timezone.utc) == "2023-11-14T22:13+00:00"
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert fmt.timestamp(t, zone=berlin, seconds=True) == "2023-11-14T23:13:20+01:00"
    local = fmt.timestamp(t)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d[+-]\d\d:\d\d", local)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (4e-5, "40µ"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.3"),
        (250.0, "250"),
        (15e3, "15.0k"),
        (0.0123, "0.0123"),
        (0.012345, "0.0123"),
        (1234.0, "1.23k"),
        (12.5, "12.5"),
        (12.3456, "12.3"),
        (-1234.0, "-1.23k"),
        (999.7, "1.00k"),  # rounds up into the next unit
        (0.00099996, "0.001"),
        (123456.0, "123k"),
        (999_900.0, "1.00M"),  # not 1000k
    ],
)
def test_axis_ticks_never_use_an_exponent(value: float, text: str) -> None:
    assert fmt.axis_tick(value) == text


def test_no_figure_is_written_with_an_exponent_or_a_long_run_of_zeros() -> None:
    values = [10.0**k * m for k in range(-6, 13) for m in (1.0, 1.234, 9.999)]  # 1 µJ..10 TJ
    for value in values:
        for show in (fmt.energy, fmt.energy_wh, fmt.power, fmt.co2, fmt.number, fmt.axis_tick):
            text = show(value)
            assert not EXPONENT.search(text), (show.__name__, value, text)
        assert "0.000" not in fmt.energy_wh(value), value
        assert "0.000" not in fmt.co2(value), value
        assert "0.000" not in fmt.energy(value), value


def test_significant_keeps_three_digits_through_rounding() -> None:
    assert fmt.significant(0.0041234) == "0.00412"
    assert fmt.significant(9.9996) == "10.0"
    assert fmt.significant(12345.6) == "12346"  # integers keep their digits
    assert fmt.significant(0.0) == "0"


def test_axis_ticks_keep_at_most_three_significant_digits() -> None:
    for k in range(-7, 8):
        for m in (1.0, 1.234, 2.5, 5.0, 9.999, 1.23456789):
            text = fmt.axis_tick(m * 10.0**k)
            digits = re.sub(r"[^0-9]", "", text.removesuffix("k").removesuffix("µ")).lstrip("0")
            assert len(digits) <= 3, (m, k, text)

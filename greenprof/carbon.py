"""Energy to emissions: grid intensity with provenance, and PUE.

Grid intensity comes from CodeCarbon's offline data files, read directly from its
installed package directory (``codecarbon/data``) so that neither codecarbon nor
pandas is imported: country averages by ISO 3166-1 alpha-3 code (Our World in
Data, via ``private_infra/global_energy_mix.json``), Google Cloud regions
(``cloud/impact.csv``) and Nordic bidding zones (``private_infra/nordic_emissions.json``).
No network, never IP geolocation. Without any location the world average
(475 g/kWh, IEA 2019) is used and labelled as such.

Emissions = IT energy × PUE × intensity (see :meth:`CarbonSettings.co2_g`).
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Literal

from greenprof.errors import ConfigError
from greenprof.records import CarbonSettings
from greenprof.values import setting_number

WORLD_AVERAGE_G_PER_KWH = 475.0
"""CodeCarbon's ``world_average`` (IEA 2019), used only as a labelled fallback."""


ZoneKind = Literal["country", "cloud_region", "grid_zone"]
"""What a zone is: a ``country`` (``--country``, ISO 3166-1 alpha-3), a ``cloud_region``
of a provider (``--region europe-west1``) or a ``grid_zone``, an electricity market's
bidding zone within a country (``--region SE3``, the Nordic zones)."""


@dataclass(frozen=True, slots=True)
class Zone:
    """One place with a grid intensity."""

    code: str
    name: str
    intensity_g_per_kwh: float
    source: str
    kind: ZoneKind = "country"


def codecarbon_data_dir(
    find_spec: Callable[[str], ModuleSpec | None] = importlib.util.find_spec,
) -> Path:
    """The ``data`` directory of the installed codecarbon package, found without importing it."""
    spec = find_spec("codecarbon")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "data"
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "codecarbon's data files were not found: install it with `pip install codecarbon`, "
        "or pass intensity_g_per_kwh= to state the grid intensity yourself"
    )


@lru_cache(maxsize=4)
def _countries(data_dir: Path) -> dict[str, Zone]:
    path = data_dir / "private_infra" / "global_energy_mix.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    zones = {}
    for code, entry in raw.items():
        intensity = entry.get("carbon_intensity")
        if intensity is None:
            continue
        year = entry.get("year", "?")
        zones[code.upper()] = Zone(
            code=code.upper(),
            name=str(entry.get("country_name", code)),
            intensity_g_per_kwh=float(intensity),
            source=f"CodeCarbon global_energy_mix (Our World in Data), {year}",
        )
    return zones


@lru_cache(maxsize=4)
def _regions(data_dir: Path) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    with (data_dir / "cloud" / "impact.csv").open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            code = row["region"].strip().lower()
            zones[code] = Zone(
                code=code,
                name=f"{row['providerName']} {code} ({row['city'] or row['country_name']})",
                intensity_g_per_kwh=float(row["impact"]),
                source=f"CodeCarbon cloud/impact.csv ({row['provider']}: {row['source']})",
                kind="cloud_region",
            )
    nordic_path = data_dir / "private_infra" / "nordic_emissions.json"
    if nordic_path.exists():
        nordic = json.loads(nordic_path.read_text(encoding="utf-8")).get("data", {})
        for code, entry in nordic.items():
            zones[code.lower()] = Zone(
                code=code.upper(),
                name=str(entry.get("description", code)),
                intensity_g_per_kwh=float(entry["emission_factor"]),
                source=f"CodeCarbon nordic_emissions.json, {entry.get('year', '?')}",
                kind="grid_zone",
            )
    return zones


def list_zones(data_dir: Path | None = None) -> list[Zone]:
    """Every known country and region, countries first."""
    directory = data_dir or codecarbon_data_dir()
    return sorted(_countries(directory).values(), key=lambda z: z.code) + sorted(
        _regions(directory).values(), key=lambda z: z.code
    )


def _unknown(kind: str, value: str, known: dict[str, Zone]) -> ConfigError:
    names = {zone.name.lower(): zone.code for zone in known.values()}
    close = difflib.get_close_matches(value.lower(), list(known) + list(names), n=3, cutoff=0.6)
    hints = sorted(
        {names.get(match, known[match].code if match in known else match) for match in close}
    )
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    example = (
        "an ISO 3166-1 alpha-3 code such as DEU, USA, FRA"
        if kind == "country"
        else ("a Google Cloud region such as europe-west1, or a Nordic zone such as SE3")
    )
    return ConfigError(
        f"unknown {kind} {value!r}: use {example}.{hint} "
        "`greenprof regions` lists every code; intensity_g_per_kwh= overrides."
    )


MAX_PUE = 10.0
"""No data centre comes near it (typical 1.1–2); larger is a typo."""
MAX_INTENSITY = 5000.0
"""gCO2e/kWh; the dirtiest grids are about 1,000."""


def resolve_carbon(
    *,
    country: str | None = None,
    region: str | None = None,
    pue: float = 1.0,
    intensity_g_per_kwh: float | None = None,
    data_dir: Path | None = None,
) -> CarbonSettings:
    """Carbon settings for a run, with the source of the intensity.

    Precedence: an explicit ``intensity_g_per_kwh``, then ``region`` (cloud region or
    grid zone), then ``country`` (ISO-3), then the world average (labelled).
    Raises :class:`ConfigError` for unknown codes or impossible values.
    """
    pue = setting_number(
        "pue", pue, minimum=1.0, maximum=MAX_PUE, hint="facility energy / IT energy"
    )
    for label, code in (("country", country), ("region", region)):
        if code is not None and not isinstance(code, str):
            raise ConfigError(f"{label} must be a string code; got {type(code).__name__}")
    country_code = country.strip().upper() if country else None
    region_code = region.strip().lower() if region else None
    if intensity_g_per_kwh is not None:
        intensity_g_per_kwh = setting_number(
            "intensity_g_per_kwh", intensity_g_per_kwh, minimum=0.0, maximum=MAX_INTENSITY
        )
        return CarbonSettings(
            intensity_g_per_kwh=float(intensity_g_per_kwh),
            pue=pue,
            source="stated by the user",
            country=country_code,
            region=region_code,
        )
    directory = data_dir or codecarbon_data_dir()
    if region_code:
        regions = _regions(directory)
        if region_code not in regions:
            raise _unknown("region", region_code, regions)
        zone = regions[region_code]
        return CarbonSettings(zone.intensity_g_per_kwh, pue, zone.source, country_code, region_code)
    if country_code:
        countries = _countries(directory)
        if country_code not in countries:
            raise _unknown("country", country_code, countries)
        zone = countries[country_code]
        return CarbonSettings(zone.intensity_g_per_kwh, pue, zone.source, country_code, None)
    return CarbonSettings(
        WORLD_AVERAGE_G_PER_KWH,
        pue,
        "world average (IEA 2019, via CodeCarbon): no country or region given",
        None,
        None,
    )

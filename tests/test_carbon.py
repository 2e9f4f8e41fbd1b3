from pathlib import Path

import pytest

from greenprof.carbon import (
    WORLD_AVERAGE_G_PER_KWH,
    codecarbon_data_dir,
    list_zones,
    resolve_carbon,
)
from greenprof.errors import ConfigError


def test_country_intensity_comes_from_codecarbon_data_with_its_year() -> None:
    settings = resolve_carbon(country="fra", pue=1.2)
    assert settings.country == "FRA"
    assert 20 < settings.intensity_g_per_kwh < 150
    assert "Our World in Data" in settings.source
    assert any(str(year) in settings.source for year in range(2015, 2031))
    assert settings.co2_g(3.6e6) == pytest.approx(1.2 * settings.intensity_g_per_kwh)


def test_cloud_region_and_grid_zone_lookup() -> None:
    assert resolve_carbon(region="europe-north1").intensity_g_per_kwh < 100
    assert "nordic" in resolve_carbon(region="SE3").source


def test_user_override_wins_and_is_labelled() -> None:
    settings = resolve_carbon(country="DEU", intensity_g_per_kwh=12.5)
    assert settings.intensity_g_per_kwh == 12.5
    assert settings.source == "stated by the user"


def test_no_location_uses_the_labelled_world_average() -> None:
    settings = resolve_carbon()
    assert settings.intensity_g_per_kwh == WORLD_AVERAGE_G_PER_KWH
    assert "world average" in settings.source


def test_unknown_country_error_suggests_the_code_and_the_listing_command() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean DEU.*greenprof regions"):
        resolve_carbon(country="Germany")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pue": 0.9}, "pue must be"),
        ({"intensity_g_per_kwh": -1.0}, "intensity_g_per_kwh must be"),
        ({"region": "mars-central1"}, "unknown region"),
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, float | str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_carbon(**kwargs)  # type: ignore[arg-type]


def test_missing_codecarbon_data_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="intensity_g_per_kwh"):
        codecarbon_data_dir(find_spec=lambda _name: None)


def test_the_listing_covers_countries_and_regions(tmp_path: Path) -> None:
    codes = {zone.code for zone in list_zones()}
    assert {"DEU", "USA", "europe-west1"} <= codes


def test_each_zone_says_what_kind_of_place_it_is() -> None:
    zones = {zone.code: zone for zone in list_zones()}
    assert zones["DEU"].kind == "country"
    assert zones["europe-west1"].kind == "cloud_region"
    nordic = [zone for zone in zones.values() if zone.source.startswith("CodeCarbon nordic")]
    assert nordic and all(zone.kind == "grid_zone" for zone in nordic)
    assert {zone.kind for zone in zones.values()} == {"country", "cloud_region", "grid_zone"}

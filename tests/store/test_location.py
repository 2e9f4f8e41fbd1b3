"""Store locations: a file or a PostgreSQL URL, decided once; passwords never displayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprof.errors import StoreError
from greenprof.store.location import StoreLocation, parse_location
from greenprof.store.paths import resolve_db_path
from greenprof.store.reader import RunStore


@pytest.mark.parametrize(
    ("db", "display"),
    [
        ("postgresql://bob:s3cret@db.example:5433/runs", "postgresql://bob:***@db.example:5433/runs"),
        ("postgres://bob@db/runs", "postgres://bob@db/runs"),
        ("postgresql://db/runs?password=s3cret&sslmode=require", "postgresql://db/runs?password=***&sslmode=require"),
        ("postgresql://al:pw@[::1]:5432/g", "postgresql://al:***@[::1]:5432/g"),
    ],
)  # fmt: skip
def test_server_urls_are_postgresql_and_display_without_the_password(db: str, display: str) -> None:
    location = parse_location(db, {})
    assert (location.kind, location.target, location.display) == ("postgresql", db, display)
    assert "s3cret" not in f"{location} {location!r}"


def test_the_environment_may_name_a_server(tmp_path: Path) -> None:
    env = {"GREENPROF_DB": "postgresql://u:pw@h/db"}
    assert parse_location(None, env).kind == "postgresql"
    assert parse_location(tmp_path / "x.db", env) == StoreLocation(
        "sqlite", str(tmp_path / "x.db"), str(tmp_path / "x.db")
    )


def test_paths_keep_resolve_db_path_semantics(tmp_path: Path) -> None:
    env = {"GREENPROF_DB": str(tmp_path / "env.db"), "HOME": str(tmp_path)}
    for db in (None, "runs.db", tmp_path / "a.db"):
        location = parse_location(db, env)
        assert location.kind == "sqlite"
        assert location.path == resolve_db_path(db, env)
    with pytest.raises(ValueError, match="not a file"):
        _ = parse_location("postgresql://h/db", {}).path


def test_a_server_store_without_its_backend_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "greenprof.store.postgres.reader", None)
    with pytest.raises(StoreError) as caught:
        RunStore("postgresql://bob:s3cret@localhost:1/none")
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert "postgresql://bob:***@localhost:1/none" in message

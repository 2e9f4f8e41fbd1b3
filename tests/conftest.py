"""Shared fixtures: a per-test database path, never the user's home directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pg_cluster import pg_cluster, pg_url  # noqa: F401  (a real PostgreSQL server)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own default database under tmp_path."""
    monkeypatch.setenv("GREENPROF_DB", str(tmp_path / "default-runs.db"))
    monkeypatch.delenv("GREENPROF_PROMETHEUS_PORT", raising=False)
    monkeypatch.delenv("GREENPROF_TRACKERS", raising=False)
    monkeypatch.delenv("GREENPROF_PUSHGATEWAY", raising=False)
    monkeypatch.setenv("GREENPROF_SUMMARY", "0")  # no end-of-run summaries: tests turn it on


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"

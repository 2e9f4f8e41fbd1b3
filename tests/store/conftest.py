"""Store fixtures: a fresh, empty store of each backend the read contract covers."""

from __future__ import annotations

import itertools
import os

import pytest

READ_BACKENDS = ["sqlite", "postgresql"]
"""The backends ``tests/store/test_read_contract.py`` runs against: one entry per backend
(a new backend is one more entry here plus a branch in ``empty_store``). The PostgreSQL
server comes from ``tests/pg_cluster.py``'s session-scoped ``pg_cluster`` fixture; those
cases are skipped where PostgreSQL or psycopg is not installed."""

_names = itertools.count()


@pytest.fixture(scope="module", params=READ_BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store nothing has written yet, as the ``db`` string a user would pass: a file
    path, or a ``postgresql://`` URL of a new database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("contract") / "runs.db")
    cluster = request.getfixturevalue("pg_cluster")
    return str(cluster.create_database(f"contract{os.getpid()}_{next(_names)}"))

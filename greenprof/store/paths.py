"""Where the run database lives by default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "GREENPROF_DB"


def default_db_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$GREENPROF_DB`` if set, else ``runs.db`` in the user data directory (platformdirs)."""
    configured = env.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("greenprof", appauthor=False)) / "runs.db"


def resolve_db_path(db: str | os.PathLike[str] | None, env: Mapping[str, str] = os.environ) -> Path:
    """The database path for an explicit ``db`` argument, or the default."""
    return Path(db).expanduser() if db is not None else default_db_path(env)

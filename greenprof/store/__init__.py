"""SQLite persistence: the schema (``schema``), one batching writer thread per process
(``writer``), and the read API (``reader.RunStore``). The database file is the interface
between the training process and everything that looks at it."""

from greenprof.store.paths import default_db_path
from greenprof.store.reader import RunStore

__all__ = ["RunStore", "default_db_path"]

"""Run stores: a SQLite file (the embedded default) or a PostgreSQL database.

``location`` says which (:func:`parse_location`), ``schema`` and ``writer`` write,
``api`` is the read contract every backend implements and ``reader.RunStore`` the read
façade over it. The store is the interface between the training process and everything
that looks at it, and the only package that speaks SQL.
"""

from greenprof.store.location import StoreLocation, parse_location
from greenprof.store.memory import memory_store
from greenprof.store.paths import default_db_path
from greenprof.store.reader import RunStore
from greenprof.store.writer import open_writer

__all__ = [
    "RunStore",
    "StoreLocation",
    "default_db_path",
    "memory_store",
    "open_writer",
    "parse_location",
]

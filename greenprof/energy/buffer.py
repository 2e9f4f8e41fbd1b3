"""Rows in parallel columns, addressed by a run-wide index, with the oldest dropped in chunks.

The attribution keeps three histories — knots, power readings, steps — each a few columns
searched with :mod:`bisect` and sliced, and each trimmed at the front as the run goes on.
Lists, not deques: ``bisect`` and slices need O(1) random access (a deque indexes in O(n)
and cannot be sliced). Deleting the head of a list costs its length, so rows are dropped
only in chunks of at least half the buffer: trimming stays amortized O(1) per row, like a
ring. Rows keep a run-wide (absolute) index, ``base + position``, so caches keyed by it
survive a trim.

Example::

    steps: RowBuffer[tuple[list[int], list[float]]] = RowBuffer(([], []))
    numbers, ends_s = steps.columns
    for i in range(200):
        numbers.append(i)
        ends_s.append(0.1 * i)
    steps.drop_oldest(150)  # -> True: rows 150..199 remain, at positions 0..49
    assert steps.base == 150 and numbers[0] == 150
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

MIN_DROP = 64
"""Rows are dropped only in chunks larger than this: below it the copy that a front delete
costs is not worth a call (and a short history is kept whole, whatever the cutoff)."""

Columns = TypeVar("Columns", bound=tuple[list[Any], ...])


class RowBuffer(Generic[Columns]):
    """Parallel columns (one list per field) whose rows share a run-wide index.

    Callers append to every column (the row's fields) and read them in place; the buffer
    owns only the offset and the trimming policy.
    """

    __slots__ = ("base", "columns")

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        """The column lists; unpack them once and keep the references (never replaced)."""
        self.base = 0
        """Run-wide index of the first retained row (position 0)."""

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def end(self) -> int:
        """Run-wide index one past the last row."""
        return self.base + len(self.columns[0])

    def drop_oldest(self, count: int) -> bool:
        """Drop the first ``count`` rows if that is a chunk worth dropping (see module doc).

        Returns whether rows were dropped: callers with caches keyed by the run-wide index
        evict ``base - count .. base - 1`` then.
        """
        if count <= MIN_DROP or 2 * count < len(self.columns[0]):
            return False
        for column in self.columns:
            del column[:count]
        self.base += count
        return True

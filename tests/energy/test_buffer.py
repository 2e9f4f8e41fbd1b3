"""The one history type: parallel columns, run-wide index, trimmed in chunks."""

from __future__ import annotations

from greenprof.energy.buffer import MIN_DROP, RowBuffer


def _filled(n: int) -> tuple[RowBuffer[tuple[list[int], list[float]]], list[int], list[float]]:
    rows: RowBuffer[tuple[list[int], list[float]]] = RowBuffer(([], []))
    numbers, times = rows.columns
    for i in range(n):
        numbers.append(i)
        times.append(0.5 * i)
    return rows, numbers, times


def test_rows_keep_their_run_wide_index_across_a_drop() -> None:
    rows, numbers, times = _filled(300)
    assert rows.drop_oldest(200)
    assert (rows.base, len(rows), rows.end) == (200, 100, 300)
    assert (numbers[0], times[0]) == (200, 100.0)  # the same lists, trimmed in place
    assert numbers[rows.end - 1 - rows.base] == 299


def test_small_or_minor_drops_wait_for_a_chunk_worth_the_copy() -> None:
    rows, numbers, _ = _filled(1000)
    assert not rows.drop_oldest(MIN_DROP)  # too few rows
    assert not rows.drop_oldest(400)  # less than half: the copy would cost more than it frees
    assert (rows.base, len(rows), numbers[0]) == (0, 1000, 0)
    assert rows.drop_oldest(500)
    assert (rows.base, numbers[0]) == (500, 500)

"""Rows as the writer stores them: whatever shape a caller queues, each value binds as the
schema means it (a bound not known is NULL, never 0; an unstorable energy drops the row)."""

import math

from greenprof.store.rows import clean_step_energy, clean_steps


def test_a_step_with_float_bounds_stores_their_sum_and_parts() -> None:
    (row,) = clean_steps(7, [(3, 1, 0.0, 0.5, 64, 12.5, 0, 2.25, 0, 0.25, 0.5, 0.125)])
    assert row == (7, 3, 1, 0.0, 0.5, 64, 12.5, 0, 2.25, 0, 0.875, 0.25, 0.5, 0.125)


def test_bounds_of_other_number_types_are_floats_and_a_missing_part_is_null() -> None:
    rows = clean_steps(
        1,
        [
            (0, 0, 0.0, 1.0, None, 5.0, 0, None, True, 1, 2, 0),  # int parts, bool flags
            (1, 0, 1.0, 2.0, None, 5.0, 0, None, 0, 0.1, math.nan, 0.1),
            (2, 0, 2.0, 3.0, None, 5.0, 0, None, 0, None, None, None),
            (3, 0, 3.0, 4.0, None, 5.0, 0, None),  # queued before bounds existed
        ],
    )
    assert rows[0][9:] == (1, 3.0, 1.0, 2.0, 0.0)
    assert all(type(v) is float for v in rows[0][10:])
    assert [r[10:] for r in rows[1:]] == [(None, None, None, None)] * 3
    assert rows[3][9] == 0


def test_unstorable_energies_drop_the_row_and_odd_losses_become_floats_or_null() -> None:
    class Scalar:  # what a 0-d tensor offers: float()
        def __float__(self) -> float:
            return 0.5

    rows = clean_steps(
        1,
        [
            (0, 0, 0.0, 1.0, None, math.inf, 0, None),
            (1, 0, 1.0, 2.0, None, "12", 0, None),
            (2, 0, 2.0, 3.0, None, 4, 0, Scalar()),
            (3, 0, 3.0, 4.0, None, 4.0, 0, math.nan),
        ],
    )
    assert [(r[1], r[6], r[8]) for r in rows] == [(2, 4, 0.5), (3, 4.0, None)]


def test_step_energy_rows_keep_finite_bounds_only() -> None:
    rows = clean_step_energy(
        2,
        [(0, "gpu:0", 1.5, 0.25), (0, "cpu:0", 0.5), (1, "gpu:0", math.nan, 0.1),
         (1, "cpu:0", 0.5, math.inf), (2, "gpu:0", 1.0, 1)],
    )  # fmt: skip
    assert rows == [
        (2, 0, "gpu:0", 1.5, 0.25),
        (2, 0, "cpu:0", 0.5, None),
        (2, 1, "cpu:0", 0.5, None),
        (2, 2, "gpu:0", 1.0, 1.0),
    ]

"""The batch-size rule every hook counts samples with."""

from __future__ import annotations

import numpy as np
import torch

from greenprof.batches import batch_size


def test_leading_dimension_of_the_first_tensor() -> None:
    x, y = torch.zeros(32, 10), torch.zeros(32)
    assert batch_size((x, y)) == 32
    assert batch_size([x]) == 32
    assert batch_size({"input_ids": torch.zeros(8, 128), "labels": torch.zeros(8)}) == 8
    assert batch_size(([torch.zeros(4, 3), torch.zeros(4, 5)], y)) == 4  # multi-input models
    assert batch_size(np.zeros((16, 2))) == 16


def test_plain_containers_and_unknowns() -> None:
    assert batch_size([1, 2, 3]) is None  # unwrapped to a number: no batch, not a guess
    assert batch_size("abcd") == 4
    assert batch_size(torch.tensor(3.0)) is None  # a scalar has no batch dimension
    assert batch_size(object()) is None
    assert batch_size(()) == 0
    assert batch_size({}) == 0


def test_hooks_use_the_same_rule() -> None:
    from greenprof.hooks import _common

    assert _common.batch_size is batch_size

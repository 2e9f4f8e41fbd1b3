"""Workload shapes, parameter formulas and the shared synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from greenprof.bench.workloads import SIZES, WORKLOADS, make_batches, parameter_count, workload


def test_parameter_formulas_by_hand() -> None:
    # mlp tiny: 16→32→4
    assert parameter_count(workload("mlp", "tiny")) == 16 * 32 + 32 + 32 * 4 + 4
    # cnn tiny: 8×8×3, conv 4 then 8 channels, two 2× pools → 2×2×8 into 4 classes
    assert parameter_count(workload("cnn", "tiny")) == (27 * 4 + 4) + (36 * 8 + 8) + (32 * 4 + 4)
    # transformer tiny: vocab 32, 8 positions, d 8, ff 16, one block, 4 classes
    d = 8
    block = (4 * d * d + 4 * d) + (d * 16 + 16) + (16 * d + d) + 4 * d
    assert parameter_count(workload("transformer", "tiny")) == 32 * d + 8 * d + block + d * 4 + 4


def test_every_workload_exists_at_every_size() -> None:
    for kind in WORKLOADS:
        counts = [parameter_count(workload(kind, size)) for size in SIZES]
        assert counts == sorted(counts)  # tiny < cpu < gpu


def test_unknown_workload_names_the_choices() -> None:
    with pytest.raises(ValueError, match="workloads are mlp, cnn, transformer"):
        workload("resnet", "cpu")


@pytest.mark.parametrize("kind", WORKLOADS)
def test_the_same_arguments_give_the_same_bytes(kind: str) -> None:
    w = workload(kind, "tiny")
    first, again = make_batches(w, 8, count=3, seed=1), make_batches(w, 8, count=3, seed=1)
    other = make_batches(w, 8, count=3, seed=2)
    assert len(first) == 3
    for a, b in zip(first.x + first.y, again.x + again.y, strict=True):
        assert a.tobytes() == b.tobytes()
    assert first.x[0].tobytes() != other.x[0].tobytes()
    assert first.y[0].dtype == np.int64
    assert set(np.concatenate(first.y)) <= set(range(w.classes))


def test_batch_shapes() -> None:
    assert make_batches(workload("mlp", "tiny"), 4, count=1).x[0].shape == (4, 16)
    assert make_batches(workload("cnn", "tiny"), 4, count=1).x[0].shape == (4, 8, 8, 3)
    tokens = make_batches(workload("transformer", "tiny"), 4, count=1).x[0]
    assert tokens.shape == (4, 8)
    assert tokens.dtype == np.int32
    assert tokens.min() >= 0 and tokens.max() < 32

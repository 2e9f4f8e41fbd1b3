"""The bench's workloads: shapes, sizes, parameter counts and synthetic data (NumPy only).

Every framework trains the same model on the same bytes: the data are generated here,
once, from a seeded NumPy generator, and handed to each framework as arrays; the model
shapes are read from :class:`Workload` by every framework's builder; the parameter count
of each workload is a formula here that each builder's model must match (a test builds
them all and compares).

Data are a small pool of distinct batches cycled over (one pass of the pool is the
warm-up): generating data inside the measured window would measure NumPy, not the
framework. Each task is learnable in a few dozen steps, so that "time to a target loss"
is reached on every size.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["mlp", "cnn", "transformer"]
Size = Literal["tiny", "cpu", "gpu"]

WORKLOADS: tuple[Kind, ...] = ("mlp", "cnn", "transformer")
SIZES: tuple[Size, ...] = ("tiny", "cpu", "gpu")


@dataclass(frozen=True, slots=True)
class Workload:
    """One model shape and its task. Unused fields of a kind stay at their defaults.

    mlp: ``features`` → ``depth`` × Dense(``hidden``, relu) → Dense(``classes``).
    cnn: NHWC images ``image`` → Conv3×3(``channels[0]``, same) → relu → max-pool 2 →
    Conv3×3(``channels[1]``, same) → relu → max-pool 2 → flatten → Dense(``classes``).
    transformer: ``seq_len`` tokens of ``vocab`` → Embedding(``d_model``) + a learned
    positional embedding → ``layers`` post-norm encoder blocks (``heads``, feed-forward
    ``ff``, relu, no dropout, LayerNorm ε 1e-5) → mean over positions → Dense(``classes``).
    """

    kind: Kind
    size: Size
    classes: int = 10
    features: int = 0
    hidden: int = 0
    depth: int = 0
    image: tuple[int, int, int] = (0, 0, 0)
    """Height, width, channels."""
    channels: tuple[int, int] = (0, 0)
    seq_len: int = 0
    vocab: int = 0
    d_model: int = 0
    heads: int = 0
    ff: int = 0
    layers: int = 0

    @property
    def name(self) -> str:
        return self.kind

    @property
    def target_loss(self) -> float:
        """The loss that counts as trained: half the loss of a uniform guess (ln classes)."""
        return 0.5 * math.log(self.classes)


_SHAPES: dict[tuple[Kind, Size], Workload] = {
    ("mlp", "tiny"): Workload("mlp", "tiny", classes=4, features=16, hidden=32, depth=1),
    ("mlp", "cpu"): Workload("mlp", "cpu", classes=10, features=256, hidden=512, depth=2),
    ("mlp", "gpu"): Workload("mlp", "gpu", classes=10, features=1024, hidden=4096, depth=3),
    ("cnn", "tiny"): Workload("cnn", "tiny", classes=4, image=(8, 8, 3), channels=(4, 8)),
    ("cnn", "cpu"): Workload("cnn", "cpu", classes=10, image=(32, 32, 3), channels=(16, 32)),
    ("cnn", "gpu"): Workload("cnn", "gpu", classes=10, image=(64, 64, 3), channels=(64, 128)),
    ("transformer", "tiny"): Workload(
        "transformer", "tiny", classes=4, seq_len=8, vocab=32, d_model=8, heads=2, ff=16, layers=1
    ),
    ("transformer", "cpu"): Workload(
        "transformer", "cpu", seq_len=32, vocab=500, d_model=64, heads=4, ff=128, layers=2
    ),
    ("transformer", "gpu"): Workload(
        "transformer", "gpu", seq_len=256, vocab=8000, d_model=256, heads=8, ff=1024, layers=4
    ),
}


def workload(kind: str, size: str) -> Workload:
    """The workload ``kind`` at ``size``; ValueError names the choices."""
    found = _SHAPES.get((kind, size))  # type: ignore[arg-type]
    if found is None:
        raise ValueError(
            f"unknown workload {kind!r} at size {size!r}: workloads are {', '.join(WORKLOADS)}, "
            f"sizes {', '.join(SIZES)}"
        )
    return found


def _dense(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def parameter_count(w: Workload) -> int:
    """Trainable parameters of ``w``'s model: what every framework's model must have."""
    if w.kind == "mlp":
        widths = [w.features, *([w.hidden] * w.depth), w.classes]
        return sum(_dense(a, b) for a, b in itertools.pairwise(widths))
    if w.kind == "cnn":
        height, width, channels = w.image
        first, second = w.channels
        conv = 9 * channels * first + first + 9 * first * second + second
        return conv + _dense((height // 4) * (width // 4) * second, w.classes)
    d = w.d_model
    block = 4 * d * d + 4 * d + _dense(d, w.ff) + _dense(w.ff, d) + 4 * d
    return w.vocab * d + w.seq_len * d + w.layers * block + _dense(d, w.classes)


@dataclass(frozen=True, slots=True)
class Batches:
    """The pool of batches every framework trains on, in order: ``x[i]``, ``y[i]``.

    ``x`` is float32 (mlp: ``(batch, features)``; cnn: NHWC ``(batch, h, w, c)``) or
    int64 tokens (transformer: ``(batch, seq_len)``); ``y`` int64 class labels.
    """

    x: tuple[Any, ...]
    y: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.x)


def make_batches(w: Workload, batch_size: int, *, count: int, seed: int = 0) -> Batches:
    """``count`` batches of ``w``'s task, the same bytes for the same arguments."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = batch_size * count
    y = rng.integers(0, w.classes, size=n)
    x: Any
    if w.kind == "mlp":
        # A linear teacher: the label is the arg-max of a fixed projection of x.
        teacher = rng.standard_normal((w.features, w.classes))
        x = rng.standard_normal((n, w.features)).astype(np.float32)
        y = np.argmax(x @ teacher, axis=1)
    elif w.kind == "cnn":
        # Noise images with a bright band of rows whose position is the label.
        height, width, channels = w.image
        band = max(1, height // w.classes)
        rows = np.arange(height)
        mask = (rows[None, :] // band) == y[:, None]
        x = rng.random((n, height, width, channels), dtype=np.float32)
        x += 0.5 * mask[:, :, None, None].astype(np.float32)
    else:
        # Random tokens, a third of them drawn from the label's slice of the vocabulary.
        x = rng.integers(0, w.vocab, size=(n, w.seq_len))
        slice_len = w.vocab // w.classes
        marked = rng.random((n, w.seq_len)) < 1 / 3
        own = y[:, None] * slice_len + rng.integers(0, slice_len, size=(n, w.seq_len))
        x = np.where(marked, own, x).astype(np.int32)
    y = y.astype(np.int64)
    return Batches(
        x=tuple(x[i * batch_size : (i + 1) * batch_size] for i in range(count)),
        y=tuple(y[i * batch_size : (i + 1) * batch_size] for i in range(count)),
    )

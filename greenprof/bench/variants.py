"""The framework variants the bench compares, and whether this machine has each.

Availability is decided without importing the framework (``importlib.util.find_spec``,
injectable so that tests can simulate a missing one): the parent process of a bench
stays light, and each worker imports only what its variant needs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")

FindSpec = Callable[[str], object]
"""``importlib.util.find_spec``: None when a top-level module cannot be imported."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One way to train: a framework, an execution mode and, for Keras, its backend."""

    name: str
    """The id on the command line and in the ``variant`` tag."""
    framework: str
    """The ``framework`` tag: torch, keras or tensorflow."""
    label: str
    needs: tuple[str, ...]
    """Top-level modules the variant imports."""
    install: str
    """The line that installs what is missing."""
    trainer: str
    """The module whose ``train`` function runs it (imported only in the worker)."""
    keras_backend: str | None = None
    """``KERAS_BACKEND`` for the worker (set before keras is imported)."""
    compiled: bool = False
    """PyTorch: wrap the model in ``torch.compile``."""


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "torch",
        "torch",
        "PyTorch eager",
        ("torch",),
        "pip install torch",
        "greenprof.bench.models_torch",
    ),
    Variant(
        "torch-compile",
        "torch",
        "PyTorch torch.compile",
        ("torch",),
        "pip install torch (and a C compiler for inductor on CPU)",
        "greenprof.bench.models_torch",
        compiled=True,
    ),
    Variant(
        "keras-tf",
        "keras",
        "Keras 3 on TensorFlow",
        ("keras", "tensorflow"),
        "pip install keras tensorflow",
        "greenprof.bench.models_keras",
        keras_backend="tensorflow",
    ),
    Variant(
        "keras-torch",
        "keras",
        "Keras 3 on PyTorch",
        ("keras", "torch"),
        "pip install keras torch",
        "greenprof.bench.models_keras",
        keras_backend="torch",
    ),
    Variant(
        "keras-jax",
        "keras",
        "Keras 3 on JAX",
        ("keras", "jax"),
        "pip install keras 'jax[cpu]' (or 'jax[cuda12]' on a GPU)",
        "greenprof.bench.models_keras",
        keras_backend="jax",
    ),
    Variant(
        "tf-function",
        "tensorflow",
        "TensorFlow custom loop (tf.function)",
        ("tensorflow", "keras"),
        "pip install tensorflow",
        "greenprof.bench.models_tf",
        keras_backend="tensorflow",
    ),
)

VARIANT_NAMES: tuple[str, ...] = tuple(v.name for v in VARIANTS)


def variant(name: str) -> Variant:
    """The variant called ``name``; ValueError lists the names."""
    for candidate in VARIANTS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown variant {name!r}: variants are {', '.join(VARIANT_NAMES)}")


def missing_modules(v: Variant, find_spec: FindSpec = importlib.util.find_spec) -> list[str]:
    """The modules ``v`` needs that cannot be imported here (empty: available)."""
    missing = []
    for module in v.needs:
        try:
            found = find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None:
            missing.append(module)
    return missing


@dataclass(frozen=True, slots=True)
class Selection:
    """The variants a bench runs and the ones it skips, each with why."""

    run: tuple[Variant, ...]
    skipped: tuple[tuple[Variant, str], ...]
    """(variant, the line saying what is missing and how to install it)."""


def select(names: Sequence[str], find_spec: FindSpec = importlib.util.find_spec) -> Selection:
    """Split the named variants into those this machine can run and those it cannot."""
    run: list[Variant] = []
    skipped: list[tuple[Variant, str]] = []
    for name in names:
        v = variant(name)
        missing = missing_modules(v, find_spec)
        if missing:
            skipped.append(
                (v, f"{v.name} skipped: {', '.join(missing)} not installed ({v.install})")
            )
        else:
            run.append(v)
    return Selection(tuple(run), tuple(skipped))

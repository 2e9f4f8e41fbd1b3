"""`import greenprof` is quick: the names that pull the profiler, its settings, the
sampler and the store are imported on first use, and behave as ordinary attributes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import greenprof

LAZY = ("Profiler", "ProfilerConfig", "ProfilerStats", "RunStore")


def _fresh(code: str) -> str:
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_greenprof_loads_neither_the_profiler_nor_the_store() -> None:
    loaded = _fresh("import sys, greenprof; print(' '.join(sorted(sys.modules)))").split()
    chain = ("greenprof.profiler", "greenprof.config", "greenprof.sampler", "greenprof.carbon")
    assert not [m for m in loaded if m in chain or m.startswith("greenprof.store")]


def test_the_lazy_names_import_on_first_use_by_either_spelling() -> None:
    code = (
        "import greenprof\n"
        "from greenprof import Profiler, RunStore\n"
        "from greenprof.profiler import Profiler as P\n"
        "from greenprof.store.reader import RunStore as R\n"
        "assert Profiler is P is greenprof.Profiler and RunStore is R is greenprof.RunStore\n"
        "print('ok')"
    )
    assert _fresh(code) == "ok"
    star = "from greenprof import *; print(Profiler.__name__, ProfilerConfig.__name__)"
    assert _fresh(star) == "Profiler ProfilerConfig"


def test_the_lazy_names_are_public_listed_and_unknown_names_still_fail() -> None:
    for name in LAZY:
        assert name in greenprof.__all__ and name in dir(greenprof)
        assert getattr(greenprof, name).__name__ == name
    with pytest.raises(AttributeError, match="Prfiler"):
        greenprof.Prfiler  # type: ignore[attr-defined]  # noqa: B018

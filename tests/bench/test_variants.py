"""Which variants run here: decided without importing a framework, injectable."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from greenprof.bench import commands
from greenprof.bench.variants import VARIANT_NAMES, missing_modules, select, variant
from greenprof.errors import ConfigError


def without(*absent: str) -> Callable[[str], object]:
    """A find_spec for a machine where ``absent`` are not installed."""
    return lambda name: None if name in absent else object()


def test_a_missing_framework_skips_its_variants_with_the_install_line() -> None:
    selection = select(VARIANT_NAMES, without("torch"))
    assert [v.name for v in selection.run] == ["keras-tf", "keras-jax", "tf-function"]
    lines = {v.name: line for v, line in selection.skipped}
    assert set(lines) == {"torch", "torch-compile", "keras-torch"}
    assert lines["torch"] == "torch skipped: torch not installed (pip install torch)"
    assert lines["keras-torch"] == (
        "keras-torch skipped: torch not installed (pip install keras torch)"
    )


def test_every_missing_module_is_named() -> None:
    assert missing_modules(variant("keras-jax"), without("keras", "jax")) == ["keras", "jax"]


def test_a_find_spec_that_raises_counts_as_missing() -> None:
    def broken(name: str) -> object:
        raise ValueError("a half-installed package")

    assert missing_modules(variant("torch"), broken) == ["torch"]


def test_unknown_variant_lists_the_names() -> None:
    with pytest.raises(ValueError, match="variants are torch, torch-compile"):
        variant("mxnet")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    commands.register(sub)
    return parser.parse_args(["bench", *argv])


def test_no_framework_at_all_is_one_clear_error(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["--quick", "--db", str(tmp_path) + "/runs.db"])
    with pytest.raises(ConfigError, match="no variant can run here"):
        commands.run_bench(args, find_spec=without("torch", "tensorflow", "keras", "jax"))
    err = capsys.readouterr().err
    for name in VARIANT_NAMES:
        assert f"greenprof bench: {name} skipped: " in err
    assert "(pip install 'jax[cpu]'" not in err  # keras is missing first: named with jax
    assert "keras, jax not installed" in err


def test_options_are_checked_at_parsing() -> None:
    args = _parse(["--variants", "torch,keras-tf", "--batch-size", "32,64", "--precision", "bf16"])
    assert args.variants == ("torch", "keras-tf")
    assert args.batch_size == (32, 64)
    assert args.precision == ("bf16",)
    with pytest.raises(SystemExit):
        _parse(["--variants", "mxnet"])
    with pytest.raises(SystemExit):
        _parse(["--batch-size", "0"])

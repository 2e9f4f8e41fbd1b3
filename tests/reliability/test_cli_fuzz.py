"""Fuzzing the command line and the read API: mistyped input ends in a clear error.

The only acceptable outcomes of ``greenprof.cli.main`` are a return code or SystemExit
of 0, 1 or 2; of ``RunStore.run``, a run or a GreenprofError. Never another exception
(a traceback). Read commands only, against a small database prepared once; the working
directory is a temporary one, and values hold no ``/`` or ``~``, so whatever ``-o`` a
random list produces lands there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprof
from greenprof.cli import main
from greenprof.errors import GreenprofError
from tests.exporters._factory import T0, build_run

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("runs",),
    ("show",),
    ("regions",),
    ("export", "csv"),
    ("export", "codecarbon"),
    ("export", "prometheus"),
    ("report",),
)
OPTIONS = (
    "--limit",
    "--name",
    "--table",
    "--tag",
    "--since",
    "--until",
    "-o",
    "--output",
    "--format",
    "--follow-symlinks",
    "--textfile",
    "--port",
    "--refresh",
    "--help",
    "--",
)
AWKWARD = (
    "0",
    "1",
    "2",
    "-1",
    "-0",
    "1_0",
    " 1",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "²",
    "١٢",
    "resnet18-bs64",
    "resnet50[bs=64]",
    "[/x]",
    "runs",
    "steps",
    "step-devices",
    "md",
    "html",
    "k=v",
    "=",
    "-",
    "",
    "2025-01-01",
    "9999-12-31",
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2025-13-45",
    "x.html",
    "\udcff",  # a byte that is not UTF-8, as Python hands it over in argv
    "a\x00b",
)
TEXT = st.text(alphabet=st.characters(blacklist_characters="/~"), max_size=12)
VALUES = st.one_of(
    st.sampled_from(AWKWARD),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    TEXT,
)
ARGS = st.lists(st.one_of(st.sampled_from(OPTIONS), VALUES), max_size=6)


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("fuzz") / "runs.db"
    build_run(db, "resnet18-bs64", steps=12, tags={"batch_size": "64"})
    build_run(db, "resnet50[bs=64]", started_at=T0 + 600, steps=6, carbon=None)
    return db


@pytest.fixture
def in_workdir(tmp_path: Path) -> Iterator[Path]:
    """A scratch working directory for the files random ``-o`` values create."""
    work = tmp_path / "work"
    work.mkdir()
    before = Path.cwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(before)


def _outcome(argv: list[str]) -> int:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=st.sampled_from(COMMANDS), args=ARGS)
def test_read_commands_exit_cleanly_on_any_arguments(
    fuzz_db: Path, in_workdir: Path, command: tuple[str, ...], args: list[str]
) -> None:
    db = [] if command == ("regions",) else ["--db", str(fuzz_db)]
    assert _outcome([*command, *db, *args]) in (0, 1, 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "99999999999999999999"],
        ["show", "²"],
        ["runs", "--limit", "99999999999999999999"],
        ["runs", "--limit", "0"],
        ["export", "csv", "--since", "9999-12-31T23:59:59-01:00"],
        ["export", "csv", "--until", "9999-12-31"],
        ["export", "csv", "99999999999999999999"],
        ["report", "1", "--format", "pdf"],
        ["serve", "--port", "99999"],
        ["serve", "--port", "-1"],
        ["serve", "--host", "bad host"],
        ["top", "--refresh", "0"],
        ["top", "--refresh", "nan"],
        ["top", "99999999999999999999"],
        ["compare", "1", "99999999999999999999"],
        ["demo", "--steps", "0"],
        ["demo", "--pue", "inf"],
        ["demo", "--pue", "0.5"],
        ["demo", "--intensity", "-1"],
        ["show", "\udcff"],
        ["runs", "--name", "\udcff"],
        ["export", "csv", "-o", "a\x00b"],
    ],
)
def test_mistyped_values_are_one_line_errors(
    argv: list[str], fuzz_db: Path, in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _outcome([*argv, "--db", str(fuzz_db)])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert err.startswith("greenprof: error: ") and err.count("\n") == 1, err


def test_port_zero_means_any_free_port_and_is_accepted() -> None:
    from greenprof.cli import build_parser

    assert build_parser().parse_args(["serve", "--port", "0"]).port == 0


REFS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(max_size=20),
    st.sampled_from(["1", "²", "١", "99999999999999999999", "", " 1", "1.0", "0x1"]),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ref=REFS)
def test_read_api_finds_a_run_or_raises_a_greenprof_error(fuzz_db: Path, ref: int | str) -> None:
    with greenprof.RunStore(fuzz_db) as store:
        try:
            run = store.run(ref)
        except GreenprofError:
            return
    assert run.run_id in (1, 2)

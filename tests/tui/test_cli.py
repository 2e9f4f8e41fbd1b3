"""The `greenprof top / history / compare` verbs: argument handling and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from greenprof.cli import build_parser, main


def test_verbs_are_registered_without_importing_textual() -> None:
    code = (
        "import sys; from greenprof.cli import build_parser; build_parser();"
        " print('textual' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    args = build_parser().parse_args(["compare", "a", "7", "--db", "x.db"])
    assert args.runs == ["a", "7"]
    assert args.db == "x.db"


def test_missing_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(tmp_path / "nope.db")]) == 1
    err = capsys.readouterr().err
    assert "no greenprof database at" in err
    assert "greenprof demo" in err


def test_foreign_file_is_refused_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database")
    assert main(["top", "--db", str(foreign)]) == 1
    assert "not a SQLite database" in capsys.readouterr().err
    assert foreign.read_text() == "not a database"


def test_compare_unknown_run_names_the_run(
    two_runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "resnet-bs64", "no-such-run", "--db", str(two_runs_db)]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_compare_needs_two_runs(two_runs_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "resnet-bs64", "--db", str(two_runs_db)]) == 2
    assert "two or more runs" in capsys.readouterr().err

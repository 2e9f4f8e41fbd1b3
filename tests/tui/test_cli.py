"""The `greenprof top / history / compare` verbs: argument handling, clear errors, and
what they print when stdout is not a terminal (pytest's capture is not one)."""

from __future__ import annotations

import os
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
    assert main(["history", "--db", str(foreign)]) == 1
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


def test_compare_on_a_pipe_prints_the_table_and_verdict_and_exits(two_runs_db: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "greenprof", "compare", "resnet-bs64", "resnet-bs128"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GREENPROF_DB": str(two_runs_db)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["A  resnet-bs64 #1", "B  resnet-bs128 #2"]
    assert "\x1b" not in result.stdout  # no screen drawn
    table = next(line for line in lines if line.startswith("energy "))
    assert table.split()[1:] == ["2.83", "Wh", "4.54", "Wh", "+60.0", "%"]
    assert any(line.startswith("J/sample (run)") for line in lines)
    assert lines[-1] == (
        "verdict: resnet-bs128 #2 is 25.0 % more energy-efficient per sample than resnet-bs64 #1"
    )


def test_compare_text_shows_what_the_screen_shows(
    two_runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenprof.store import RunStore
    from greenprof.tui.comparison import compare
    from greenprof.tui.plain import load_summaries

    assert main(["compare", "1", "2", "--db", str(two_runs_db)]) == 0
    out = capsys.readouterr().out
    with RunStore(two_runs_db) as store:
        comparison = compare(load_summaries(store, ["1", "2"]))
    for row in comparison.rows:
        line = next(line for line in out.splitlines() if line.startswith(row.metric + " "))
        assert line.split("  ")[0] == row.metric
        for cell in (*row.values, row.deltas[1]):
            assert cell in line


def test_compare_one_run_on_a_pipe_still_needs_two(
    two_runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "1", "resnet-bs64", "--db", str(two_runs_db)]) == 2
    assert "two or more runs" in capsys.readouterr().err
    assert main(["compare", "1", "resnet-bs64", "2", "--db", str(two_runs_db)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["A  resnet-bs64 #1", "B  resnet-bs128 #2", ""]


def test_history_on_a_pipe_prints_the_run_list(
    two_runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(two_runs_db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "name", "status", "steps"]
    assert lines[2].split()[:3] == ["2", "resnet-bs128", "completed"]
    assert lines[3].split()[:3] == ["1", "resnet-bs64", "completed"]
    assert lines[3].endswith("2023-11-14T22:13+00:00")  # ISO with zone (TZ=UTC here)


def test_history_on_a_pipe_with_no_runs_says_how_to_make_one(
    empty_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(empty_db)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "greenprof demo" in captured.err


def test_top_on_a_pipe_refuses_with_one_line(
    two_runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--db", str(two_runs_db)]) == 1
    assert main(["top", "--demo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("greenprof: error: top is a live full-screen view")
    assert "greenprof runs --json" in errors[0]

"""Shell completion: candidates from the real parser and a real database, and the bash
script driven the way bash drives it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from greenprof.cli import build_parser, main
from greenprof.completion import Candidate, complete, script, stored_refs
from greenprof.store.writer import RunSpec, StoreWriter

T0 = 1_700_000_000.0


def values(words: list[str], refs: list[Candidate] | None = None) -> list[str]:
    found = complete(build_parser(), words, lambda db: refs or [])
    return [candidate.value for candidate in found]


def make_db(path: Path, runs: list[tuple[str, str | None]]) -> Path:
    for index, (name, job) in enumerate(runs):
        writer = StoreWriter(path, wall_clock=lambda: T0 + 1)
        writer.create_run(
            RunSpec(name, started_at=T0 + index, interval_s=0.1, job_id=job, host="h", pid=1)
        )
        writer.close(status="completed")
    return path


def test_verbs_complete_with_their_help_and_hidden_ones_stay_hidden() -> None:
    assert values(["sh"]) == ["show"]
    assert values(["re"]) == ["regions", "report", "repair"]
    everything = complete(build_parser(), [""], lambda db: [])
    assert {"demo", "runs", "compare", "completion", "export"} <= {c.value for c in everything}
    assert "__complete" not in {c.value for c in everything}
    show = next(c for c in everything if c.value == "show")
    assert "summary of a run" in show.description


def test_options_choices_and_nested_verbs() -> None:
    assert values(["show", "--"]) == ["--help", "--db", "--json"]
    assert values(["runs", "--l"]) == ["--limit"]
    assert values(["completion", ""]) == ["bash", "zsh", "fish"]
    assert values(["export", ""]) == ["csv", "codecarbon", "prometheus"]
    assert "--table" in values(["export", "csv", "--t"])
    assert values(["report", "--format", ""]) == ["md", "html"]


def test_run_arguments_complete_to_refs_and_files_to_nothing() -> None:
    refs = [Candidate("resnet", "run 2"), Candidate("job-7"), Candidate("2")]
    assert values(["show", ""], refs) == ["resnet", "job-7", "2"]
    assert values(["show", "res"], refs) == ["resnet"]
    assert values(["compare", "resnet", "j"], refs) == ["job-7"]  # RUN... keeps completing
    assert values(["show", "resnet", ""], refs) == []  # one RUN only
    assert values(["show", "--db", ""], refs) == []  # a path: the shell completes files
    assert values(["run", "--", "python", ""], refs) == []  # another program's words
    assert values(["nosuchverb", ""], refs) == []


def test_refs_come_from_the_database_on_the_line(tmp_path: Path) -> None:
    seen: list[str | None] = []

    def refs(db: str | None) -> list[Candidate]:
        seen.append(db)
        return []

    complete(build_parser(), ["top", "--db", "a.db", ""], refs)
    complete(build_parser(), ["compare", "--db=b.db", "x", ""], refs)
    complete(build_parser(), ["show", ""], refs)
    assert seen == ["a.db", "b.db", None]


def test_stored_refs_reads_names_jobs_and_ids_newest_first(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "runs.db",
        [("resnet", None), ("bert", "job-7"), ("bert", "job-7"), ("has space", None)],
    )
    found = stored_refs(str(path))
    assert [c.value for c in found] == ["bert", "resnet", "job-7", "4", "3", "2", "1"]
    assert found[0].description == "run 3, completed"
    assert found[2].description == "job of 2 run(s)"
    assert found[3].description == "has space (completed)"


def test_stored_refs_is_quiet_without_a_usable_database(tmp_path: Path) -> None:
    assert stored_refs(str(tmp_path / "missing.db")) == []
    assert not (tmp_path / "missing.db").exists()
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database")
    assert stored_refs(str(foreign)) == []
    assert foreign.read_text() == "not a database"


def test_the_hidden_verb_prints_value_tab_description_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_db(tmp_path / "runs.db", [("resnet", None)])
    monkeypatch.setenv("GREENPROF_DB", str(path))
    assert main(["__complete", "--", "show", ""]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "resnet\trun 1, completed",
        "1\tresnet (completed)",
    ]
    assert main(["__complete", "--", "show", "-"]) == 0
    assert "--json\tprint one JSON document" in capsys.readouterr().out
    monkeypatch.setenv("GREENPROF_DB", str(tmp_path / "nothing-here.db"))
    assert main(["__complete", "--", "show", ""]) == 0
    assert capsys.readouterr() == ("", "")
    assert "__complete" not in build_parser().format_help()


def test_completion_prints_a_script_per_shell(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert main(["completion", shell]) == 0
        out = capsys.readouterr().out
        assert out == script(shell)
        assert "greenprof __complete --" in out


def shell_env(tmp_path: Path, db: Path) -> dict[str, str]:
    """A ``greenprof`` on PATH that runs this checkout with this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "greenprof"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m greenprof "$@"\n')
    launcher.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GREENPROF_DB": str(db),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }


def run_shell(argv: list[str], env: dict[str, str]) -> list[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=True)
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_through_the_script(tmp_path: Path) -> None:
    db = make_db(tmp_path / "runs.db", [("resnet-bs64", None), ("resnet-bs128", None)])
    driver = (
        script("bash")
        + "COMP_WORDS=(greenprof show resnet-); COMP_CWORD=2; _greenprof_complete\n"
        + 'printf "%s\\n" "${COMPREPLY[@]}"\n'
        + "COMP_WORDS=(greenprof com); COMP_CWORD=1; _greenprof_complete\n"
        + 'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    lines = run_shell(["bash", "--norc", "--noprofile", "-c", driver], shell_env(tmp_path, db))
    assert lines == ["resnet-bs128", "resnet-bs64", "compare", "completion"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_completes_through_the_script_with_descriptions(tmp_path: Path) -> None:
    db = make_db(tmp_path / "runs.db", [("resnet-bs64", None), ("resnet-bs128", None)])
    # compsys's _describe and _files replaced by printers: the script's own logic runs
    driver = (
        "compdef() { : }\n"
        '_describe() { print -rl -- "${(@P)${@[-1]}}" }\n'
        "_files() { print FILES }\n"
        + script("zsh")
        + "words=(greenprof show resnet-); CURRENT=3; _greenprof\n"
        + 'words=(greenprof show --db ""); CURRENT=4; _greenprof\n'
    )
    lines = run_shell(["zsh", "-f", "-c", driver], shell_env(tmp_path, db))
    assert lines == ["resnet-bs128:run 2, completed", "resnet-bs64:run 1, completed", "FILES"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_completes_through_the_script(tmp_path: Path) -> None:
    db = make_db(tmp_path / "runs.db", [("resnet-bs64", None), ("resnet-bs128", None)])
    script_path = tmp_path / "greenprof.fish"
    script_path.write_text(script("fish"))
    driver = (
        f"source {script_path}; complete -C 'greenprof show resnet-'; complete -C 'greenprof com'"
    )
    lines = run_shell(["fish", "--no-config", "-c", driver], shell_env(tmp_path, db))
    assert [line.split("\t")[0] for line in lines] == [
        "resnet-bs64",
        "resnet-bs128",
        "compare",
        "completion",
    ]
    assert lines[0] == "resnet-bs64\trun 1, completed"

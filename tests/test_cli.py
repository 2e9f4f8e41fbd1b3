import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.store.reader import RunStore


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "runs.db"
    assert (
        main(["demo", "--db", str(path), "--steps", "30", "--batch-size", "16", "--country", "FRA"])
        == 0
    )
    return path


def test_demo_trains_and_prints_a_summary_from_real_sensors(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunStore(demo_db).run("demo-bs16")
    assert run.status == "completed"
    assert run.steps == 30
    assert run.samples == 30 * 16
    assert run.energy_j > 0
    assert run.framework == "torch"
    assert run.carbon is not None and run.carbon.country == "FRA"
    # On this machine at least the CPU is measured (RAPL) or modelled, and labelled so.
    assert {d.method for d in run.devices} <= {"counter", "power_integration", "model"}
    assert len(RunStore(demo_db).steps(run.run_id)) == 30


def test_runs_and_show(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(demo_db)]) == 0
    listing = capsys.readouterr().out
    assert "demo-bs16" in listing and "completed" in listing
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d[+-]\d\d:\d\d", listing)  # ISO, with zone
    assert main(["show", "demo-bs16", "--db", str(demo_db)]) == 0
    summary = capsys.readouterr().out
    assert "J/step" in summary and "CO2e" in summary and "J/sample" in summary


def test_unknown_run_is_a_clear_error(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "no-such-run", "--db", str(demo_db)]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_a_foreign_database_is_reported_and_not_modified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert main(["runs", "--db", str(path)]) == 1
    assert "another application" in capsys.readouterr().err
    assert main(["demo", "--db", str(path), "--steps", "2"]) == 1
    assert path.read_bytes() == before


def test_empty_database_explains_how_to_create_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--db", str(tmp_path / "none.db")]) == 1
    assert "greenprof demo" in capsys.readouterr().err


def test_bad_flags_exit_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--steps", "-5"])
    assert exited.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_unknown_country_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--db", str(tmp_path / "x.db"), "--country", "XYZ", "--steps", "1"]) == 1
    assert "greenprof regions" in capsys.readouterr().err


def test_regions_lists_matching_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regions", "germany"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("DEU") and " country " in out
    assert main(["regions", "europe-west1"]) == 0
    assert " cloud_region " in capsys.readouterr().out


def test_regions_without_a_match_is_an_error_with_suggestions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["regions", "zzz"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("greenprof: error: no country or region code or name")
    assert main(["regions", "germny"]) == 1
    assert "Did you mean DEU?" in capsys.readouterr().err


def test_a_mistyped_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shwo", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenprof: error: unknown command 'shwo'; did you mean show?")
    assert main(["comprae", "1", "2"]) == 2
    assert "did you mean compare?" in capsys.readouterr().err
    assert main(["xyzzy"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy'" in err and "did you mean" not in err
    assert "__complete" not in err


def test_a_mistyped_choice_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "csvv"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'csvv'" in err and "did you mean csv?" in err
    assert len(err.splitlines()) == 1


def test_doctor_states_the_method_for_each_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "cpu:0" in out
    assert any(method in out for method in ("counter", "model"))


def test_python_dash_m_entry_point_prints_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "greenprof", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout and "doctor" in out.stdout

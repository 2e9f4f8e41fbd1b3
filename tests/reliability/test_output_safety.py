"""Output is safe for its medium: hostile run names and tags reach terminals, the Textual
UI, CSV files and Markdown as text, never as instructions; ``-o`` writes regular files
only. Runs are profiled for real (fake sensors) into a database under tmp_path."""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import select
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

import greenprof
from greenprof.cli import main
from greenprof.exporters.codecarbon import EMISSIONS_COLUMNS
from greenprof.sensors.fake import FakeSensor
from greenprof.textsafe import (
    csv_text,
    csv_value,
    markdown_fence,
    markdown_text,
    terminal_text,
)
from greenprof.tui.app import GreenprofApp
from greenprof.tui.snapshot import screen_text
from tests.tui.conftest import run_async

ESCAPES = "evil\x1b]0;pwned\x07\x1b[2J\nfake row\x9b31m"
"""Sets the window title, clears the screen, forges a row, and a one-byte C1 CSI."""
BRACKETS = "resnet50[bs=64]"
CLOSING = "[/x]"
CLICK = "[@click=app.quit]quit[/]"
FORMULA = '=HYPERLINK("http://evil.example","x")'
MARKDOWN = "<img src=x onerror=alert(1)>*b*_u_```c```[l](u)|p&amp;\n# line"
TAGS = {"note": "[/x]\x1b[31m", "experiment_id": "@SUM(A1)", "delta": "-1+2"}
DEVICE_NAME = "dev\x1b[31m```"

UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
"""Control characters other than the newline greenprof's own layout uses."""


def profile(db: Path, name: str, *, loss: float = 0.5, tags: dict[str, str] | None = None) -> int:
    """One tiny real run (three steps, a simulated device with a hostile model name)."""
    sensor = FakeSensor("gpu:0", 120.0, update_period_s=0.01, name=DEVICE_NAME)
    with greenprof.Profiler(name, db=db, sensors=[sensor], tags=tags or TAGS) as prof:
        for _ in range(3):
            with prof.step(samples=8, loss=loss):
                time.sleep(0.005)
    assert prof.run_id is not None
    return prof.run_id


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A database of runs with hostile names; run ids by name."""
    db = tmp_path_factory.mktemp("hostile") / "runs.db"
    names = (ESCAPES, BRACKETS, CLOSING, CLICK, FORMULA, MARKDOWN)
    ids = {name: profile(db, name, loss=-3.5) for name in names}
    return db, ids


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# Terminal --------------------------------------------------------------------------


def test_terminal_text_escapes_controls_and_keeps_unicode() -> None:
    assert terminal_text("a\x1b[2Jb\nc\td\x7f\x9b\u202e") == "a\\x1b[2Jb\\nc\\td\\x7f\\x9b\\u202e"
    assert terminal_text("café ∑ 日本 🌱") == "café ∑ 日本 🌱"
    assert terminal_text("two\nlines", keep="\n") == "two\nlines"
    assert terminal_text(terminal_text(ESCAPES)) == terminal_text(ESCAPES)  # idempotent


def test_runs_shows_escaped_names_and_no_control_bytes(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = hostile
    code, out, _ = run_cli(capsys, "runs", "--db", str(db))
    assert code == 0
    assert not UNSAFE.search(out)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\nfake row\\x9b31m" in out
    assert not any(line.startswith("fake row") for line in out.splitlines())
    assert BRACKETS in out and FORMULA in out


def test_show_escapes_name_tags_and_device_names(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    code, out, _ = run_cli(capsys, "show", str(ids[ESCAPES]), "--db", str(db))
    assert code == 0
    assert not UNSAFE.search(out)
    assert "'evil\\x1b]0;pwned\\x07" in out
    assert "note=[/x]\\x1b[31m" in out
    assert "dev\\x1b[31m```" in out


def test_error_messages_escape_what_was_typed(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = hostile
    code, _, err = run_cli(capsys, "show", "no\x1b]0;x\x07such", "--db", str(db))
    assert code == 1
    assert not UNSAFE.search(err.rstrip("\n"))
    assert err.startswith("greenprof: error: ") and err.count("\n") == 1


def test_export_to_a_terminal_is_escaped(
    hostile: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard output that is a real terminal (a pty) gets escapes; a pipe gets bytes."""
    db, _ = hostile
    master, slave = pty.openpty()
    with os.fdopen(slave, "w", encoding="utf-8", closefd=True) as tty:
        monkeypatch.setattr(sys, "stdout", tty)
        assert main(["export", "csv", "--table", "runs", "--db", str(db)]) == 0
        tty.flush()
        monkeypatch.undo()
        shown = _drain(master)
    os.close(master)
    assert "evil\\x1b]0;pwned" in shown
    assert "\x1b" not in shown and "\x07" not in shown


def _drain(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


# Textual ---------------------------------------------------------------------------


async def _wait_for(pilot: Pilot[int], condition: Callable[[], bool]) -> None:
    """Let the app run until ``condition()`` holds; a generous bound for loaded machines."""
    for _ in range(600):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(screen_text(pilot.app))


def test_history_shows_bracketed_names_whole(hostile: tuple[Path, dict[str, int]]) -> None:
    db, _ = hostile

    async def body() -> str:
        app = GreenprofApp(db, "history")
        async with app.run_test(size=(160, 30)) as pilot:
            await _wait_for(pilot, lambda: "6 of 6 runs" in screen_text(app))
            await pilot.press("enter")  # the detail view of the highlighted (newest) run
            await _wait_for(pilot, lambda: "energy" in screen_text(app))
            detail = screen_text(app)
            await pilot.press("escape")
            await _wait_for(pilot, lambda: "6 of 6 runs" in screen_text(app))
            return screen_text(app) + detail

    text = run_async(body)
    assert BRACKETS in text
    assert CLOSING in text
    assert "[@click=app.quit]quit" in text
    assert "evil\\x1b]0;pwned" in text
    assert "\x1b" not in text


def test_compare_shows_bracketed_names_whole(hostile: tuple[Path, dict[str, int]]) -> None:
    db, ids = hostile
    refs = [str(ids[BRACKETS]), str(ids[CLOSING]), str(ids[ESCAPES])]

    async def body() -> str:
        app = GreenprofApp(db, "compare", refs)
        async with app.run_test(size=(200, 40)) as pilot:
            await _wait_for(pilot, lambda: "▶" in screen_text(app))
            return screen_text(app)

    text = run_async(body)
    assert BRACKETS in text
    assert CLOSING in text
    assert "\x1b" not in text


def test_live_shows_bracketed_name_whole(hostile: tuple[Path, dict[str, int]]) -> None:
    db, ids = hostile

    async def body() -> str:
        app = GreenprofApp(db, "live", [str(ids[CLICK])])
        async with app.run_test(size=(120, 30)) as pilot:
            await _wait_for(pilot, lambda: "[@click=app.quit]quit[/]" in screen_text(app))
            await _wait_for(pilot, lambda: "gpu:0" in screen_text(app))
            return screen_text(app)

    assert "\x1b" not in run_async(body)


# CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_text_is_quoted(text: str) -> None:
    assert csv_text(text) == "'" + text


def test_numbers_and_plain_text_are_untouched() -> None:
    assert csv_value(-3.5) == -3.5
    assert csv_value(-2) == -2
    assert csv_value(None) is None
    assert csv_value("resnet-50") == "resnet-50"
    assert csv_value("") == ""


def _export(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> list[dict[str, str]]:
    code, out, err = run_cli(capsys, "export", *args, "--db", str(db))
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def test_csv_runs_quotes_formula_names_and_tags_but_not_numbers(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    rows = _export(capsys, db, "csv", "--table", "runs", str(ids[FORMULA]))
    assert rows[0]["name"] == "'" + FORMULA
    assert float(rows[0]["energy_j"]) > 0


def test_csv_steps_quote_the_name_and_keep_negative_losses_numeric(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    for table in ("steps", "epochs", "devices", "step-devices", "samples"):
        rows = _export(capsys, db, "csv", "--table", table, str(ids[FORMULA]))
        assert rows, table
        assert {row["run_name"] for row in rows} == {"'" + FORMULA}, table
    steps = _export(capsys, db, "csv", "--table", "steps", str(ids[FORMULA]))
    assert {row["loss"] for row in steps} == {"-3.5"}  # a number, not text: no quote


def test_codecarbon_quotes_project_name_and_experiment_id(
    hostile: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    (row,) = _export(capsys, db, "codecarbon", str(ids[FORMULA]))
    assert row["project_name"] == "'" + FORMULA
    assert row["experiment_id"] == "'@SUM(A1)"
    assert float(row["duration"]) > 0


# Markdown --------------------------------------------------------------------------


def test_markdown_text_escapes_html_emphasis_links_pipes_and_breaks() -> None:
    escaped = markdown_text(MARKDOWN)
    assert "\n" not in escaped
    assert "<" not in escaped.replace("\\<", "")
    assert escaped.startswith("\\<img")
    for literal in ("\\*b\\*", "\\_u\\_", "\\`\\`\\`c", "\\[l\\](u)", "\\|p", "\\&amp;"):
        assert literal in escaped
    assert markdown_text("# title") == "\\# title"
    assert markdown_text("1. item") == "1\\. item"
    assert markdown_text("+5.0 %", block_start=False) == "+5.0 %"


def test_markdown_fence_outlasts_backticks_in_the_body() -> None:
    block = markdown_fence(["a ```` b", "two\nlines"])
    lines = block.split("\n")
    assert lines[0] == "`````text" and lines[-1] == "`````"
    assert lines[1:-1] == ["a ```` b", "two lines"]


def test_markdown_report_escapes_names_tags_and_devices(
    hostile: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    out = tmp_path / "report.md"
    code, _, err = run_cli(
        capsys, "report", str(ids[MARKDOWN]), str(ids[ESCAPES]), "--db", str(db), "-o", str(out)
    )
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text
    prose, code = _split_fences(text)
    assert not re.search(r"(?<!\\)<", prose)  # every "<" escaped: no raw HTML
    assert "\\<img src=x onerror=alert(1)\\>\\*b\\*" in prose
    assert "<img src=x" in code  # verbatim inside a code block, where nothing renders
    assert "````text" in text  # the fence outlasts the name's ```
    lines = text.splitlines()
    assert not any(line.startswith(("# line", "fake row")) for line in lines)


def _split_fences(text: str) -> tuple[str, str]:
    """The Markdown outside and inside fenced code blocks (CommonMark's closing rule)."""
    prose, code, fence = [], [], ""
    for line in text.splitlines():
        if not fence and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        elif fence and line.strip() == fence:
            fence = ""
        else:
            (code if fence else prose).append(line)
    assert not fence, "unclosed code block"
    return "\n".join(prose), "\n".join(code)


def test_html_report_stays_escaped(
    hostile: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = hostile
    out = tmp_path / "report.html"
    code, _, err = run_cli(capsys, "report", str(ids[MARKDOWN]), "--db", str(db), "-o", str(out))
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\x1b" not in page


# -o --------------------------------------------------------------------------------

WRITERS = {
    "csv": ("export", "csv"),
    "codecarbon": ("export", "codecarbon"),
    "prometheus": ("export", "prometheus"),
    "report": ("report", "1"),
}


@pytest.fixture(scope="module")
def plain_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("plain") / "runs.db"
    profile(db, "plain", tags={"batch_size": "8"})
    return db


def _write(
    capsys: pytest.CaptureFixture[str], db: Path, writer: str, target: Path, *extra: str
) -> tuple[int, str]:
    code, _, err = run_cli(capsys, *WRITERS[writer], "--db", str(db), "-o", str(target), *extra)
    return code, err


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield path
    server.close()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_output_refuses_a_fifo(
    writer: str, plain_db: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _write(capsys, plain_db, writer, fifo)
    assert code == 1
    assert "FIFO" in err and err.count("\n") == 1
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the pipe: nothing renamed over it


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_output_refuses_a_directory_a_socket_and_a_device(
    writer: str,
    plain_db: Path,
    tmp_path: Path,
    unix_socket: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _write(capsys, plain_db, writer, tmp_path)[0] == 1
    code, err = _write(capsys, plain_db, writer, unix_socket)
    assert code == 1 and "socket" in err
    assert stat.S_ISSOCK(unix_socket.lstat().st_mode)
    devnull = Path(os.devnull)
    code, err = _write(capsys, plain_db, writer, devnull)
    assert code == 1 and "character device" in err
    assert stat.S_ISCHR(devnull.lstat().st_mode)
    assert not list(Path("/dev").glob(".null.*.tmp"))  # no temporary file beside it


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_symlink_is_refused_without_the_flag_and_followed_with_it(
    writer: str, plain_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "real.txt"
    # export codecarbon appends to a CodeCarbon file (and refuses any other): give it one
    before = ",".join(EMISSIONS_COLUMNS) + "\n" if writer == "codecarbon" else "before\n"
    target.write_text(before)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    code, err = _write(capsys, plain_db, writer, link)
    assert code == 1 and "symbolic link" in err and "--follow-symlinks" in err
    assert target.read_text() == before and link.is_symlink()

    code, err = _write(capsys, plain_db, writer, link, "--follow-symlinks")
    assert code == 0, err
    assert link.is_symlink()  # the link stays; its target got the export
    assert target.read_text() != before and target.stat().st_size > 0


def test_followed_symlink_must_end_at_a_regular_file_or_nothing(
    plain_db: Path, tmp_path: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    to_fifo = tmp_path / "to-fifo.csv"
    to_fifo.symlink_to(fifo)
    code, err = _write(capsys, plain_db, "csv", to_fifo, "--follow-symlinks")
    assert code == 1 and "FIFO" in err
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "new.csv")
    assert _write(capsys, plain_db, "csv", dangling, "--follow-symlinks")[0] == 0
    assert (tmp_path / "new.csv").read_text().startswith("run_id,")


def test_textfile_obeys_the_same_rule(
    plain_db: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "export", "prometheus", "--db", str(plain_db), "--textfile", str(fifo)
    )
    assert code == 1 and "FIFO" in err


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_exports_follow_the_umask(
    umask: int, plain_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "steps.csv"
    previous = os.umask(umask)
    try:
        assert _write(capsys, plain_db, "csv", out)[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_replaced_exports_keep_their_permissions(
    plain_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "steps.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert _write(capsys, plain_db, "csv", out)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.read_text().startswith("run_id,")

"""`greenprof report`: figures, assumptions, comparison, offline HTML with an SVG chart."""

from __future__ import annotations

import html.parser
import re
import sqlite3
from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.exporters.chart import nice_ticks, sparkline
from greenprof.exporters.report import num, timeline
from greenprof.records import DeviceInfo
from greenprof.store.reader import RunStore
from tests.exporters._factory import CPU, GPU, T0, build_run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    build_run(path, "resnet18-bs64", steps=40, epochs=2)
    build_run(path, "resnet18-bs128", started_at=T0 + 3600, steps=20, batch=128, epochs=4)
    return path


def report(db: Path, out: Path, *refs: str, fmt: str | None = None) -> str:
    args = ["report", "--db", str(db), *refs, "-o", str(out)]
    if fmt:
        args += ["--format", fmt]
    assert main(args) == 0
    return out.read_text(encoding="utf-8")


def test_markdown_states_totals_tables_and_assumptions(db: Path, tmp_path: Path) -> None:
    text = report(db, tmp_path / "report.md", "1")
    with RunStore(db) as store:
        run = store.run(1)
    assert text.startswith("# Energy and carbon report: resnet18-bs64 #1")
    assert num(run.energy_kwh) in text  # kWh total
    assert num((run.co2_g or 0) / 1000) in text  # kg CO2e
    assert num(run.energy_j / (run.samples or 1)) in text  # J per sample
    assert "| gpu:0 | gpu | NVIDIA H100 80GB HBM3 | counter |" in text
    assert re.search(r"^\| 1 \| 20 \| 10\.0 s \| 1,280 \|", text, re.M)  # epoch 1
    assert "grid intensity 380 g CO2e/kWh for DEU (source: test grid data, 2023); PUE 1.2" in text
    assert "Method 'model' (cpu:0): ESTIMATE" in text
    assert "measures the whole node" in text
    assert "```text\ncpu:0" in text  # sparklines stand in for the chart


def test_html_is_self_contained_with_an_svg_chart(db: Path, tmp_path: Path) -> None:
    text = report(db, tmp_path / "report.html", "1", "2")
    assert "<script" not in text
    assert not re.search(r"(src|href)=", text)
    assert set(re.findall(r"https?://[^\"' ]+", text)) == {"http://www.w3.org/2000/svg"}
    assert text.count("<svg") == 3  # the comparison bars and one chart per run
    assert "<polyline" in text

    class Checker(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.tables += tag == "table"

    checker = Checker()
    checker.feed(text)
    assert checker.tables == 1 + 1 + 2 * 2  # totals, comparison, devices and epochs per run


def test_comparison_is_relative_to_the_first_run(db: Path, tmp_path: Path) -> None:
    text = report(db, tmp_path / "r.md", "resnet18-bs64", "resnet18-bs128")
    with RunStore(db) as store:
        first, second = store.run(1), store.run(2)
    change = (second.energy_j - first.energy_j) / first.energy_j * 100
    assert f"| resnet18-bs128 #2 | {change:+.1f} % |" in text
    assert "Most energy-efficient per training sample:" in text


def test_simulated_data_is_flagged(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    fake = DeviceInfo("gpu:0", "gpu", "simulated", name="fake GPU")
    build_run(db, "demo", devices=(fake,), watts={"gpu:0": 200.0})
    text = report(db, tmp_path / "r.md", "demo")
    assert "SYNTHETIC data from simulated sensors" in text
    assert "not a measurement" in text


def test_names_are_escaped(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    build_run(db, "<script>alert(1)</script>|x")
    page = report(db, tmp_path / "r.html", "1")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "\\|x" in report(db, tmp_path / "r.md", "1")


def test_unknown_run_is_an_error_and_writes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "1", "nope", "-o", str(out)]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_timeline_accounts_for_the_run_energy(db: Path) -> None:
    with RunStore(db) as store:
        run = store.run(1)
        line = timeline(store, run, points=50)
    assert len(line.times_s) == 50
    assert line.source == "samples"
    assert line.energy_j[-1] == pytest.approx(sum(GPU_CPU_W) * run.duration_s, rel=0.01)
    assert max(v or 0 for v in line.power_w["gpu:0"]) == pytest.approx(250.0)


GPU_CPU_W = (250.0, 40.0)


def test_timeline_falls_back_to_steps_without_samples(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM samples WHERE run_id = 1")
    conn.close()
    with RunStore(db) as store:
        run = store.run(1)
        line = timeline(store, run, points=20)
    assert line.source == "steps"
    assert line.energy_j[-1] == pytest.approx(run.step_energy_j)
    assert set(line.power_w) == {GPU.device, CPU.device}


def test_chart_helpers() -> None:
    assert nice_ticks(0, 237) == [0, 50, 100, 150, 200, 250]
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert sparkline([None, 3.0]) == " █"

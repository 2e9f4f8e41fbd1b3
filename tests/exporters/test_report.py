"""`greenprof report`: figures, assumptions, comparison, offline HTML with an SVG chart."""

from __future__ import annotations

import html.parser
import re
import sqlite3
from pathlib import Path

import pytest

from greenprof import formatting
from greenprof.cli import main
from greenprof.exporters.chart import (
    Series,
    bar_chart,
    line_chart,
    nice_ticks,
    sparkline,
    text_width,
)
from greenprof.exporters.report import timeline
from greenprof.metrics import run_j_per_sample, run_samples_per_kwh
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
    assert formatting.energy_wh(run.energy_j) in text  # run total, e.g. "1.61 Wh"
    assert formatting.co2(run.co2_g) in text  # e.g. "733 mg"
    assert formatting.energy(run_j_per_sample(run)) in text  # J per sample
    assert "| gpu:0 | gpu | NVIDIA H100 80GB HBM3 | counter |" in text
    assert re.search(r"^\| 1 \| 20 \| 10\.0 s \| 1280 \|", text, re.M)  # epoch 1
    assert re.search(r"^\| Total \(2\) \| 40 \| 20\.0 s \| 2560 \|", text, re.M)
    assert re.search(r"^\| Total \|  \|  \|  \| [\d.]+ Wh \| 100\.0 % \|", text, re.M)
    assert "grid intensity 380 g CO2e/kWh for DEU (source: test grid data, 2023); PUE 1.20" in text
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


def test_comparison_puts_the_runs_side_by_side_with_deltas(db: Path, tmp_path: Path) -> None:
    text = report(db, tmp_path / "r.md", "resnet18-bs64", "resnet18-bs128")
    with RunStore(db) as store:
        first, second = store.run(1), store.run(2)

    def delta(new: float | None, base: float | None) -> str:
        assert new is not None and base
        return formatting.percent((new - base) / base * 100, signed=True)

    row = (
        f"| resnet18-bs128 #2 | completed "
        f"| {formatting.energy(run_j_per_sample(second))} "
        f"| {delta(run_j_per_sample(second), run_j_per_sample(first))} "
        f"| {formatting.number(run_samples_per_kwh(second))} "
        f"| {delta(run_samples_per_kwh(second), run_samples_per_kwh(first))} "
        f"| {formatting.energy_wh(second.energy_j)} | {delta(second.energy_j, first.energy_j)} "
        f"| {formatting.co2(second.co2_g)} | {delta(second.co2_g, first.co2_g)} |"
    )
    assert row in text
    assert "| resnet18-bs64 #1 | completed | " in text and "| baseline |" in text
    assert "Most energy-efficient per training sample among the completed runs:" in text
    # The totals end with a total row over both runs.
    total = formatting.energy_wh(first.energy_j + second.energy_j)
    assert re.search(rf"^\| Total \(2 runs\) \|.*\| {re.escape(total)} \|", text, re.M)


def test_a_failed_run_is_compared_with_a_caveat(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db, "good")
    build_run(db, "broken", started_at=T0 + 600, status="failed", carbon=None)
    text = report(db, tmp_path / "r.md", "good", "broken")
    assert "broken #2 failed. Its totals stop where it did; it is left out of the verdict." in text
    assert "broken #2 has no grid intensity: no CO2e." in text
    assert "Most energy-efficient" not in text  # one completed run: no verdict


def test_long_epoch_tables_are_bounded_with_the_export_command(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db, "many-epochs", steps=184, epochs=92)
    text = report(db, tmp_path / "r.md", "1")
    epochs = re.findall(r"^\| (\d+) \| 2 \|", text, re.M)
    assert epochs == [str(e) for e in [*range(10), *range(82, 92)]]
    assert "| … 72 more |" in text
    assert "greenprof export csv --table epochs --db runs.db 1 -o epochs-1.csv" in text
    assert re.search(r"^\| Total \(92\) \| 184 \|", text, re.M)


def test_setup_phase_and_energy_outside_steps_are_stated(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db, "slow-start", setup_s=10.0, steps=40)  # 290 W for 10 s of setup
    text = report(db, tmp_path / "r.md", "1")
    setup = formatting.energy_wh(290.0 * 10.0)
    assert f"Setup (start to first step: imports, data, compilation): 10.0 s, {setup}" in text
    assert f"Energy outside steps: {setup}" in text
    assert "| 10.0 s |" in text  # the setup column of the totals


def test_every_figure_is_formatted(db: Path, tmp_path: Path) -> None:
    """No exponents (4e-05) and no long decimals (8-decimal kg) anywhere in the report."""
    for name in ("r.md", "r.html"):
        page = report(db, tmp_path / name, "1", "2")
        visible = re.sub(r"<[^>]*>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S))
        assert not re.search(r"\d[eE][-+]?\d", visible), name
        assert not re.search(r"\d\.\d{4,}", visible), name


def test_power_line_is_continuous_across_missing_readings(db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:  # a sensor that skipped readings for a while
        conn.execute("DELETE FROM samples WHERE run_id = 1 AND time_s > 5 AND time_s < 9")
    conn.close()
    page = report(db, tmp_path / "r.html", "1")
    assert page.count("<polyline") == 3  # gpu:0, cpu:0 and the cumulative energy


def test_bar_labels_and_values_fit_the_chart() -> None:
    name = "a-very-long-experiment-name-with-a-sweep-id-0123456789 #12 rank 3"
    svg = bar_chart([(name, 0.00004), ("b #2", 123456.0)], unit="J/sample", title="t")
    width = float(re.search(r'width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    for x, anchor, label in re.findall(
        r'<text x="([\d.]+)" y="[\d.]+"( text-anchor="end")?>([^<]*)<', svg
    ):
        left = float(x) - (text_width(label) if anchor else 0.0)
        right = float(x) + (0.0 if anchor else text_width(label))
        assert left >= 0 and right <= width, label
    assert "4e-05" not in svg


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


def test_line_chart_legend_wraps_and_every_text_fits() -> None:
    """Eight devices: the legend takes several rows instead of running off the chart."""
    x = [float(i) for i in range(10)]
    left = [Series(f"gpu:{i} NVIDIA H100 80GB HBM3", [200.0 + i] * 10) for i in range(8)]
    svg = line_chart(
        x, left, left_unit="power (W)", right=Series("energy (kWh)", [0.00004 * i for i in x])
    )
    width = float(re.search(r'width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    height = float(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    texts = re.findall(r'<text x="([\d.]+)" y="([\d.]+)"( text-anchor="\w+")?>([^<]*)<', svg)
    legend = [(float(x0), float(y0), label) for x0, y0, anchor, label in texts if not anchor]
    assert len({y0 for _, y0, label in legend if label.startswith("gpu:")}) >= 2  # wrapped
    for x0, y0, label in legend:
        assert x0 + text_width(label) <= width and y0 <= height, label
    assert not re.search(r"\de-\d", svg) and "100µ" in svg  # energy ticks, no exponent
    assert svg.count("<polyline") == 9

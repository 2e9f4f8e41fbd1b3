"""`greenprof report --bench ID`: a bench's runs as a comparison with error bars."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.exporters.report_bench import error_bar_chart
from tests.exporters._factory import CPU, GPU, T0, build_run


def _bench(db: Path) -> None:
    """Three interleaved repeats of two variants; keras-tf draws 25 % more GPU power."""
    for repeat, step_s in enumerate((0.5, 0.5125, 0.4875)):  # samples reach each end
        for variant, gpu_w in (("torch", 200.0), ("keras-tf", 250.0)):
            tags = {
                "bench": "b7",
                "variant": variant,
                "framework": variant.split("-")[0],
                "workload": "mlp",
                "size": "tiny",
                "batch_size": "64",
                "precision": "fp32",
                "repeat": str(repeat),
                "version_torch": "2.13",
            }
            build_run(
                db,
                f"bench-mlp-{variant}",
                started_at=T0 + 100 * repeat,
                steps=20,
                epochs=2,
                step_s=step_s,
                devices=(GPU, CPU),
                watts={"gpu:0": gpu_w, "cpu:0": 40.0},
                tags=tags,
            )
    build_run(db, "not-a-bench", started_at=T0 + 900)


def test_markdown_compares_the_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    _bench(db)
    assert main(["report", "--bench", "b7", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# greenprof bench b7\n")
    assert "energy measured by: counter (hardware energy counter), model (a CPU-load" in text
    assert "## mlp (tiny, batch 64, fp32)" in text
    # 240 W × 0.5 s / 64 samples = 1.875 J/sample for torch; 290 W for keras-tf
    assert "| torch | 1875 ± " in text
    assert "| keras-tf | 2266 ± " in text
    assert "torch uses 17 % ± " in text and "less energy per sample than keras-tf" in text
    assert "runs 1, 3, 5" in text  # the torch repeats; the run that is no bench is not there


def test_html_has_the_chart_with_error_bars(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    _bench(db)
    out = tmp_path / "bench.html"
    assert main(["report", "--bench", "b7", "--db", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert page.count("<svg") == 1
    assert "Energy per sample, mlp (tiny, batch 64, fp32)" in page
    assert page.count('stroke="#1d1d1d"') == 2 * 3  # a whisker and two caps per variant


def test_an_unknown_bench_is_an_error_and_writes_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    _bench(db)
    out = tmp_path / "r.md"
    assert main(["report", "--bench", "nope", "--db", str(db), "-o", str(out)]) == 1
    assert "no runs of bench 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_runs_or_bench_but_not_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    _bench(db)
    assert main(["report", "--db", str(db)]) == 1
    assert main(["report", "1", "--bench", "b7", "--db", str(db)]) == 1
    assert "report needs RUN ids or --bench ID" in capsys.readouterr().err


def test_one_repeat_draws_no_whisker() -> None:
    svg = error_bar_chart([("a", 2.0, float("nan")), ("b", 3.0, 0.5)], unit="mJ", title="t")
    assert svg.count('stroke="#1d1d1d"') == 3
    assert "2.00 ± ? mJ" in svg and "3.00 ± 0.50 mJ" in svg

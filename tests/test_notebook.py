import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import greenprof
from greenprof.notebook import run_html
from greenprof.records import RunInfo
from tests.exporters._factory import build_run

UTC = dt.timezone.utc


class _Text(HTMLParser):
    """The visible text of an HTML fragment, and whether its tags balance."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _visible(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    return " ".join(parser.text)


def _run(db_path: Path, **kwargs: object) -> RunInfo:
    build_run(db_path, **kwargs)  # type: ignore[arg-type]
    return greenprof.RunStore(db_path).runs()[0]


def test_a_run_in_a_notebook_shows_what_greenprof_show_says(db_path: Path) -> None:
    run = _run(db_path, tags={"batch_size": "64"})

    text = _visible(run_html(run, zone=UTC))

    assert "resnet18-bs64" in text and "completed" in text
    assert "2025-02-19T21:20:00+00:00" in text  # ISO with its zone
    assert "20.0 s" in text and "40 of" not in text  # duration; no plan was declared
    assert "40, 2560 samples" in text
    assert "g/kWh" in text and "PUE 1.2" in text and "DEU" in text
    assert "/sample (run energy)" in text
    assert "NVIDIA H100 80GB HBM3" in text and "counter" in text and "model" in text
    assert "batch_size=64" in text
    assert "kWh" not in text.replace("g/kWh", "")  # a 20 s run is in Wh or mWh, not kWh


def test_the_runs_repr_html_is_the_card(db_path: Path) -> None:
    run = _run(db_path)
    assert _visible(run._repr_html_()) == _visible(run_html(run))  # type: ignore[attr-defined]


def test_user_text_is_escaped(db_path: Path) -> None:
    run = _run(db_path, name="<script>alert(1)</script>", tags={"note": "<b>&"})
    html = run_html(run)
    assert "<script>" not in html and "<b>&" not in html
    assert "<script>alert(1)</script>" in _visible(html)


def test_a_failed_run_and_a_run_without_carbon_settings(db_path: Path) -> None:
    build_run(db_path, "failed", status="failed", carbon=None)
    run = greenprof.RunStore(db_path).run("failed")
    text = _visible(run_html(run))
    assert "failed" in text
    assert "carbon –" in text

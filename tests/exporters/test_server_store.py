"""The exporters against a PostgreSQL store (``--db postgresql://...``): CSV export,
Prometheus export and ``greenprof serve`` read the server through ``store.location``, and
no message shows the password."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import cast

import pytest

from greenprof.cli import main
from greenprof.store.location import parse_location
from tests.exporters._factory import build_run
from tests.exporters.test_prometheus import samples, value
from tests.exporters.test_serve import fetch, serving
from tests.pg_cluster import TEST_PASSWORD


@pytest.fixture
def server_store(pg_url: str) -> str:
    """A server store with two finished runs of one name on two hosts."""
    build_run(cast(Path, pg_url), "resnet18-bs64", rank=0)
    build_run(cast(Path, pg_url), "resnet18-bs64", rank=1, host="node-b")
    return pg_url


def test_export_csv_reads_a_server_store(
    server_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs.csv"
    assert main(["export", "csv", "--db", server_store, "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows
    assert TEST_PASSWORD not in capsys.readouterr().err


def test_a_selection_error_names_the_server_without_its_password(
    server_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "csv", "--db", server_store, "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert parse_location(server_store).display in err
    assert TEST_PASSWORD not in err


def test_export_prometheus_reads_a_server_store(
    server_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "prometheus", "--db", server_store]) == 0
    text = capsys.readouterr().out
    assert value(text, "greenprof_steps_total", run_id="2", host="node-b") == 40
    assert value(text, "greenprof_job_runs_total", job_id="resnet18-bs64", host="node-a") == 1


def test_serve_reads_a_server_store(server_store: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serving(server_store, log, "--run-ttl", "never") as target:
        text = fetch(f"http://{target}/metrics")
    hosts = {
        dict(labels)["host"]
        for (name, labels), _ in samples(text).items()
        if name == "greenprof_job_energy_joules_total"
    }
    assert hosts == {"node-a", "node-b"}
    banner = log.read_text()
    assert parse_location(server_store).display in banner
    assert TEST_PASSWORD not in banner


def test_the_terminal_views_open_a_server_store(
    server_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenprof.tui.commands import _resolve

    location, refs = _resolve(server_store, ["resnet18-bs64"])
    assert location.kind == "postgresql" and refs == ["2"]  # the name's newest run
    assert main(["history", "--db", server_store]) == 0  # on a pipe: the run list as text
    out = capsys.readouterr().out
    assert "resnet18-bs64" in out and TEST_PASSWORD not in out

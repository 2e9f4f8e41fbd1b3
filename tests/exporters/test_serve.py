"""`greenprof serve` end to end: a real Prometheus server scrapes it and we query it back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from greenprof.cli import main
from greenprof.store.reader import RunStore
from tests.exporters._factory import T0, build_run

PROMETHEUS = shutil.which("prometheus")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, timeout_s: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return str(response.read().decode())


def wait_for(what: str, probe: object, *, timeout_s: float = 30) -> object:
    """Call ``probe`` until it returns something truthy without raising (bounded)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()  # type: ignore[operator]
            if result:
                return result
        except OSError as exc:  # not listening yet
            last = exc
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response's socket
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, a process we started; never leaves it running."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    build_run(path, "resnet18-bs64", rank=0)
    build_run(path, "resnet18-bs64", rank=1, started_at=T0 + 1, host="node-b")
    build_run(path, "vit-b16", started_at=T0 + 60, watts={"gpu:0": 400.0, "cpu:0": 50.0})
    return path


@contextlib.contextmanager
def serving(db: str | Path, log_path: Path, *extra: str) -> Iterator[str]:
    """``greenprof serve`` as a subprocess on a free loopback port; yields host:port."""
    port = free_port()
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "greenprof", "serve", "--db", str(db), "--port", str(port)]
    process = subprocess.Popen([*command, *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for("greenprof serve", lambda: fetch(f"http://127.0.0.1:{port}/metrics"))
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()
    assert process.returncode == 0, log_path.read_text()


@contextlib.contextmanager
def prometheus(target: str, tmp_path: Path) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """A real Prometheus server scraping ``target`` every second; yields a PromQL query
    function (instant queries through the HTTP API)."""
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: greenprof\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(promql: str) -> list[dict[str, Any]]:
        body = json.loads(fetch(api + urllib.parse.quote(promql)))
        assert body["status"] == "success"
        return list(body["data"]["result"])

    try:
        wait_for("a successful scrape", lambda: query('up{job="greenprof"} == 1'), timeout_s=60)
        yield query
    finally:
        stop(process)
        log.close()


@pytest.fixture
def served(db: Path, tmp_path: Path) -> Iterator[str]:
    """``greenprof serve`` over the test runs, keeping finished runs' series."""
    with serving(db, tmp_path / "serve.log", "--run-ttl", "never") as target:
        yield target


@pytest.mark.slow
@pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus server is not installed (apt-get install prometheus)"
)
def test_prometheus_scrapes_serve_and_reports_database_values(
    served: str, db: Path, tmp_path: Path
) -> None:
    with prometheus(served, tmp_path) as query:
        energy = wait_for("energy series", lambda: query("greenprof_energy_joules_total"))
        assert isinstance(energy, list)
        with RunStore(db) as store:
            expected = {
                (str(run.run_id), device): joules
                for run in store.runs()
                for device, joules in store.device_energy_j(run.run_id).items()
            }
            runs = {str(run.run_id): run for run in store.runs()}
        got = {
            (str(item["metric"]["run_id"]), str(item["metric"]["device"])): float(item["value"][1])
            for item in energy
        }
        assert got == pytest.approx(expected)
        # Aggregations people write in dashboards work on the scraped data.
        (per_host,) = query('sum by (host) (greenprof_steps_total{host="node-b"})')
        assert float(per_host["value"][1]) == runs["2"].steps
        (co2,) = query('greenprof_emissions_grams_total{run="vit-b16"}')
        assert float(co2["value"][1]) == pytest.approx(runs["3"].co2_g)


def documented(metric: str) -> str:
    """The per-job-per-hour PromQL of docs/prometheus.md for ``metric``."""
    return f"sum by (job_id) ({metric} - ({metric} offset 1h or {metric} * 0))"


def per_job(result: list[dict[str, Any]]) -> dict[str, float]:
    return {str(item["metric"]["job_id"]): float(item["value"][1]) for item in result}


def set_job(db: Path, run_id: int, job_id: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET job_id = ? WHERE run_id = ?", (job_id, run_id))
    conn.close()


def add_energy(db: Path, run_id: int, device: str, joules: float) -> None:
    """What a live run's writer does between two scrapes: more energy, a newer heartbeat."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE devices SET energy_j = energy_j + ? WHERE run_id = ? AND device = ?",
            (joules, run_id, device),
        )
        conn.execute(
            "UPDATE runs SET energy_j = energy_j + ?, heartbeat_at = ? WHERE run_id = ?",
            (joules, time.time(), run_id),
        )
    conn.close()


def scrapes_after(query: Callable[[str], list[dict[str, Any]]], count: int) -> None:
    """Wait until Prometheus has scraped ``count`` more times (1 s interval)."""
    (first,) = query('count_over_time(up{job="greenprof"}[1h])')
    target = float(first["value"][1]) + count
    wait_for(
        f"{count} scrapes",
        lambda: float(query('count_over_time(up{job="greenprof"}[1h])')[0]["value"][1]) >= target,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus server is not installed (apt-get install prometheus)"
)
def test_documented_promql_counts_runs_running_at_first_scrape_and_shorter_than_a_scrape(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    now = time.time()
    # A run that has been training for a while before Prometheus first scrapes.
    long = build_run(db, "bert", started_at=now - 20, steps=40, status="running",
                     tags={"model": "bert-large"})  # fmt: skip
    set_job(db, long.run_id, "slurm-1")
    with (
        serving(db, tmp_path / "serve.log", "--label-tags", "model") as target,
        prometheus(target, tmp_path) as query,
    ):
        wait_for("job series", lambda: query("greenprof_job_energy_joules_total"))
        add_energy(db, long.run_id, "gpu:0", 500.0)  # it goes on training
        # A second rank of the same job, and a lone run, each written whole between scrapes.
        short = build_run(db, "bert", started_at=time.time(), steps=2, host="node-b",
                          tags={"model": "bert-large"})  # fmt: skip
        set_job(db, short.run_id, "slurm-1")
        lone = build_run(db, "tiny", started_at=time.time(), steps=1, tags={"model": "mlp"})
        scrapes_after(query, 3)
        with RunStore(db) as store:
            stored: dict[str, float] = {}
            co2: dict[str, float] = {}
            for run in store.runs():
                job = run.job_id or run.name
                stored[job] = stored.get(job, 0.0) + run.energy_j
                co2[job] = co2.get(job, 0.0) + (run.co2_g or 0.0)
        assert set(stored) == {"slurm-1", "tiny"}
        assert stored["slurm-1"] == pytest.approx(long.energy_j + 500 + short.energy_j)
        assert stored["tiny"] == pytest.approx(lone.energy_j)
        energy = per_job(query(documented("greenprof_job_energy_joules_total")))
        assert energy == pytest.approx(stored)
        emissions = per_job(query(documented("greenprof_job_emissions_grams_total")))
        assert emissions == pytest.approx(co2)
        # What the per-run counters gave before: increase() misses what a run used before
        # its first scrape, and a run that appeared whole.
        (naive,) = query('sum(increase(greenprof_energy_joules_total{run="bert"}[1h]))')
        assert float(naive["value"][1]) < 0.5 * stored["slurm-1"]
        # Tags are labels: per model.
        per_model = {
            str(item["metric"]["tag_model"]): float(item["value"][1])
            for item in query("sum by (tag_model) (greenprof_job_energy_joules_total)")
        }
        assert per_model == pytest.approx({"bert-large": stored["slurm-1"], "mlp": stored["tiny"]})


def test_serve_answers_metrics_only(served: str) -> None:
    assert "greenprof_job_energy_joules_total" in fetch(f"http://{served}/metrics")
    for path in ("/", "/metric", "/favicon.ico"):
        with pytest.raises(urllib.error.HTTPError) as error:
            fetch(f"http://{served}{path}")
        assert error.value.code == 404
        error.value.close()


def test_serve_on_a_busy_port_is_one_clear_line(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--db", str(db), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("greenprof: error: cannot serve metrics on 127.0.0.1:")
    assert "already in use" in err
    assert err.count("\n") == 1


def test_serve_refuses_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", str(tmp_path / "none.db"), "--port", "0"]) == 1
    assert "no greenprof database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()

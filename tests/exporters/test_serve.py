"""`greenprof serve` end to end: a real Prometheus server scrapes it and we query it back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def served(db: Path, tmp_path: Path) -> Iterator[str]:
    """``greenprof serve`` as a subprocess on a free loopback port; yields host:port."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "greenprof", "serve", "--db", str(db), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for("greenprof serve", lambda: fetch(f"http://127.0.0.1:{port}/metrics"))
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus server is not installed (apt-get install prometheus)"
)
def test_prometheus_scrapes_serve_and_reports_database_values(
    served: str, db: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: greenprof\n"
        f"    static_configs:\n      - targets: ['{served}']\n"
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

    def query(promql: str) -> list[dict[str, object]]:
        body = json.loads(fetch(api + urllib.parse.quote(promql)))
        assert body["status"] == "success"
        return list(body["data"]["result"])

    try:
        wait_for("a successful scrape", lambda: query('up{job="greenprof"} == 1'), timeout_s=60)
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
            (str(item["metric"]["run_id"]), str(item["metric"]["device"])): float(item["value"][1])  # type: ignore[index]
            for item in energy
        }
        assert got == pytest.approx(expected)
        # Aggregations people write in dashboards work on the scraped data.
        (per_host,) = query('sum by (host) (greenprof_steps_total{host="node-b"})')
        assert float(per_host["value"][1]) == runs["2"].steps  # type: ignore[index]
        (co2,) = query('greenprof_emissions_grams_total{run="vit-b16"}')
        assert float(co2["value"][1]) == pytest.approx(runs["3"].co2_g)  # type: ignore[index]
    finally:
        stop(process)
        log.close()


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

"""Prometheus exposition: values, promtool validity, incremental reads, server, textfile, push."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from greenprof.cli import main
from greenprof.errors import ConfigError, RunNotFound
from greenprof.exporters._common import ExportError
from greenprof.exporters.prom_series import SeriesOptions, parse_duration_s, parse_label_tags
from greenprof.exporters.prometheus import (
    StoreCollector,
    exposition,
    push_run,
    start_metrics_server,
)
from greenprof.store.reader import RunStore
from tests.exporters._factory import CARBON, T0, build_run

PROMTOOL = shutil.which("promtool")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition keyed by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    matches = [
        v for (n, lab), v in samples(text).items() if n == name and set(labels.items()) <= lab
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    build_run(path, "resnet18-bs64", rank=0)
    build_run(path, "resnet18-bs64", rank=1, started_at=T0 + 1, host="node-b")
    build_run(path, "no-carbon", carbon=None, started_at=T0 + 60)
    return path


def test_values_match_the_database(db: Path) -> None:
    text = exposition(db)
    run = build_run(db.parent / "reference.db", "x")
    assert value(text, "greenprof_energy_joules_total", run_id="1", device="gpu:0") == (
        pytest.approx(run.device_energy_j["gpu:0"])
    )
    assert value(text, "greenprof_energy_joules_total", run_id="2", method="model") == (
        pytest.approx(run.device_energy_j["cpu:0"])
    )
    assert value(text, "greenprof_emissions_grams_total", run_id="1") == pytest.approx(
        CARBON.co2_g(run.energy_j)
    )
    assert value(text, "greenprof_steps_total", run_id="2", host="node-b", rank="1") == 40
    assert value(text, "greenprof_samples_total", run_id="1") == 40 * 64
    assert value(text, "greenprof_run_status", run_id="1", status="completed") == 1
    assert value(text, "greenprof_run_status", run_id="1", status="running") == 0
    assert value(text, "greenprof_run_start_time_seconds", run_id="1") == T0
    # No grid intensity: no emissions series at all rather than a zero that looks measured.
    assert not [k for k in samples(text) if k[0].startswith("greenprof_emissions") and
                ("run_id", "3") in k[1]]  # fmt: skip
    # Finished runs draw no power.
    assert not [k for k in samples(text) if k[0] == "greenprof_power_watts"]


def test_labels_are_bounded(db: Path) -> None:
    labels = {name for _, lab in samples(exposition(db)) for name, _ in lab}
    assert labels <= {
        "run", "run_id", "host", "rank", "device", "method", "status", "framework", "version",
        "job_id", "kind",
    }  # fmt: skip
    assert "step" not in labels


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_exposition(db: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "metrics"],
        input=exposition(db),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def collect(collector: StoreCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_running_run_shows_power_and_later_scrapes_see_new_data(db: Path) -> None:
    live = build_run(db, "live", started_at=T0 + 120, status="running")
    now = T0 + 120 + live.duration_s + 1
    collector = StoreCollector(db, wall_clock=lambda: now)
    try:
        text = collect(collector)
        assert value(text, "greenprof_run_status", run="live", status="running") == 1
        assert value(text, "greenprof_power_watts", run="live", device="gpu:0") == 250.0
        assert value(text, "greenprof_power_watts", run="live", device="cpu:0") == 40.0
        # The run writes more: energy grows; the collector re-reads only runs that wrote.
        import sqlite3

        conn = sqlite3.connect(db)
        with conn:
            conn.execute(
                "UPDATE devices SET energy_j = energy_j + 1000 WHERE run_id = ? AND device = ?",
                (live.run_id, "gpu:0"),
            )
            conn.execute(
                "UPDATE runs SET heartbeat_at = heartbeat_at + 0.5 WHERE run_id = ?",
                (live.run_id,),
            )
        conn.close()
        text = collect(collector)
        assert value(text, "greenprof_energy_joules_total", run="live", device="gpu:0") == (
            pytest.approx(live.device_energy_j["gpu:0"] + 1000)
        )
    finally:
        collector.close()


def test_a_silent_running_run_is_reported_interrupted(db: Path) -> None:
    build_run(db, "lost", started_at=T0 + 120, status="running")
    collector = StoreCollector(db, wall_clock=lambda: T0 + 10_000)
    try:
        text = collect(collector)
    finally:
        collector.close()
    assert value(text, "greenprof_run_status", run="lost", status="interrupted") == 1
    assert not [k for k in samples(text) if k[0] == "greenprof_power_watts"]


def test_a_local_run_whose_process_is_gone_is_interrupted_as_the_store_says(db: Path) -> None:
    from greenprof.store.reader import RunStore

    build_run(db, "orphan", started_at=T0, status="running", host=socket.gethostname())
    now = T0 + 40 * 0.5 + 5  # heartbeat 5 s old: not silent long enough on its own

    def gone(pid: int) -> bool:
        return False

    collector = StoreCollector(db, wall_clock=lambda: now, alive=gone)
    try:
        text = collect(collector)
    finally:
        collector.close()
    with RunStore(db, wall_clock=lambda: now, alive=gone) as store:
        assert store.run("orphan").status == "interrupted"
    assert value(text, "greenprof_run_status", run="orphan", status="interrupted") == 1
    with RunStore(db, wall_clock=lambda: now, alive=lambda pid: True) as store:
        assert store.run("orphan").status == "running"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_metrics_server_serves_and_refuses_a_busy_port(db: Path) -> None:
    server = start_metrics_server(db, port=0, run_id=2)
    try:
        text = get(server.url)
        assert value(text, "greenprof_steps_total", run_id="2") == 40
        assert ("run_id", "1") not in {pair for _, lab in samples(text) for pair in lab}
        with pytest.raises(ConfigError, match="already in use"):
            start_metrics_server(db, port=server.port)
    finally:
        server.close()
    again = start_metrics_server(db, port=server.port)  # the port was released
    again.close()


def test_server_started_before_the_database_exists(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    server = start_metrics_server(path, port=0)
    try:
        assert "greenprof_energy_joules_total{" not in get(server.url)
        build_run(path, "late")
        assert value(get(server.url), "greenprof_steps_total", run="late") == 40
    finally:
        server.close()


def test_textfile_export_is_valid_and_selects_runs(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "greenprof.prom"
    assert main(["export", "prometheus", "--db", str(db), "--textfile", str(target), "3"]) == 0
    text = target.read_text()
    assert value(text, "greenprof_steps_total", run="no-carbon") == 40
    assert {pair[1] for _, lab in samples(text) for pair in lab if pair[0] == "run_id"} == {"3"}
    if PROMTOOL:
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=text,
            text=True,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


class _Gateway(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    _Gateway.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Gateway.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_push_run_puts_one_runs_group(
    db: Path, gateway: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    url, received = gateway
    push_run(db, 2, url)
    ((method, path, body),) = received
    assert method == "PUT"
    assert path == "/metrics/job/greenprof/instance/node-b/run_id/2"
    text = body.decode()
    assert value(text, "greenprof_steps_total", run_id="2") == 40
    assert 'run_id="1"' not in text


def test_push_failures_are_clear(db: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(ExportError, match="could not push run 1"):
        push_run(db, 1, f"http://127.0.0.1:{closed_port}")
    with pytest.raises(RunNotFound):
        push_run(db, 99, f"http://127.0.0.1:{closed_port}")


def test_job_counters_sum_every_run_and_survive_an_exporter_restart(db: Path) -> None:
    text = exposition(db)
    with RunStore(db) as store:
        stored = sum(sum(store.device_energy_j(run.run_id).values()) for run in store.runs())
    # Lone runs are jobs of one, named by the run's name.
    got = [
        v for (name, _), v in samples(text).items() if name == "greenprof_job_energy_joules_total"
    ]
    assert len(got) == 3 * 2  # (resnet on node-a, on node-b, no-carbon) x (gpu, cpu)
    assert sum(got) == pytest.approx(stored)
    assert value(text, "greenprof_job_runs_total", job_id="resnet18-bs64", host="node-a") == 1
    assert (
        value(
            text,
            "greenprof_job_energy_joules_created",
            job_id="resnet18-bs64",
            kind="gpu",
            host="node-b",
        )
        == T0 + 1
    )
    # A new run of the same job adds to the same series; a new exporter process (a new
    # collector) starts where the old one was, so the counter never goes back.
    before = value(text, "greenprof_job_energy_joules_total", job_id="no-carbon", kind="gpu")
    extra = build_run(db, "no-carbon", carbon=None, started_at=T0 + 500)
    after = value(
        exposition(db), "greenprof_job_energy_joules_total", job_id="no-carbon", kind="gpu"
    )
    assert after == pytest.approx(before + extra.device_energy_j["gpu:0"])
    # Runs without a grid intensity add no emissions rather than a zero that looks measured.
    assert not [
        k for k in samples(exposition(db))
        if k[0] == "greenprof_job_emissions_grams_total" and ("job_id", "no-carbon") in k[1]
    ]  # fmt: skip


def test_tags_become_sanitized_bounded_labels(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    for index in range(4):
        build_run(db, "m", started_at=T0 + index, tags={"model": f"net-{index}", "team-x": "a"})
    build_run(db, "untagged", started_at=T0 + 10)
    options = SeriesOptions(label_tags=("model", "team-x"), max_tag_values=2)
    text = exposition(db, options=options)
    models = {
        dict(lab).get("tag_model") for (name, lab), _ in samples(text).items()
        if name == "greenprof_job_runs_total"
    }  # fmt: skip
    assert models == {"net-0", "net-1", "_other", ""}
    assert value(text, "greenprof_job_runs_total", tag_model="_other", tag_team_x="a") == 2
    assert value(text, "greenprof_steps_total", run_id="1", tag_model="net-0") == 40
    if PROMTOOL:
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text, text=True, capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


def test_label_tag_and_ttl_options_are_checked() -> None:
    assert parse_label_tags(" model, team ,,model") == ("model", "team")
    with pytest.raises(ConfigError, match="same label"):
        parse_label_tags("a-b,a_b")
    assert parse_duration_s("90") == 90
    assert parse_duration_s("15m") == 900
    assert parse_duration_s("2h") == 7200
    assert parse_duration_s("never") is None
    with pytest.raises(ConfigError, match="--run-ttl"):
        parse_duration_s("soon")


def test_finished_runs_series_expire_after_the_ttl_but_stay_in_the_job_counters(
    db: Path,
) -> None:
    live = build_run(db, "live", started_at=T0 + 120, status="running")
    ended = T0 + 60 + 40 * 0.5  # the last finished run's end
    options = SeriesOptions(run_ttl_s=600)

    def scrape(now: float) -> str:
        collector = StoreCollector(db, options=options, wall_clock=lambda: now,
                                   alive=lambda pid: True)  # fmt: skip
        try:
            return collect(collector)
        finally:
            collector.close()

    def run_ids(text: str) -> set[str]:
        return {
            dict(lab)["run_id"] for (name, lab), _ in samples(text).items()
            if name == "greenprof_steps_total"
        }  # fmt: skip

    soon = scrape(T0 + 120 + live.duration_s + 1)
    assert run_ids(soon) == {"1", "2", "3", str(live.run_id)}
    later = scrape(ended + 601)
    # The running run stays (its heartbeat is old, but alive(pid) and ... the status rule
    # decides); the finished ones are gone from the per-run series.
    assert {"1", "2", "3"}.isdisjoint(run_ids(later))
    total = sum(v for (name, _), v in samples(later).items() if name == "greenprof_job_runs_total")
    assert total == 4


def test_the_server_answers_metrics_only(db: Path) -> None:
    server = start_metrics_server(db, port=0)
    try:
        assert "greenprof_job_energy_joules_total" in get(server.url + "?debug=1")
        base = server.url.removesuffix("/metrics")
        for path in ("/", "/metricsx", "/metrics/"):
            with pytest.raises(urllib.error.HTTPError) as error:
                get(base + path)
            assert error.value.code == 404
            error.value.close()
    finally:
        server.close()


def test_the_direct_text_format_matches_prometheus_client(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db, 'odd "name"\\ with\nnewline', tags={"model": 'a"b\\c\nd'})
    options = SeriesOptions(label_tags=("model",))
    ours = exposition(db, options=options)
    collector = StoreCollector(db, options=options)
    try:
        theirs = collect(collector)
    finally:
        collector.close()
    assert samples(ours) == samples(theirs)
    assert value(ours, "greenprof_job_runs_total", tag_model='a"b\\c\nd') == 1
    if PROMTOOL:
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=ours, text=True, capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr

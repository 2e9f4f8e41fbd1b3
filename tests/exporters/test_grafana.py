"""The shipped Grafana dashboard: valid structure, and PromQL that Prometheus accepts and
that runs on the metrics greenprof exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from greenprof.exporters.prometheus import exposition
from tests.exporters._factory import build_run

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "greenprof.json"
PROMTOOL = shutil.which("promtool")


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_dashboard_has_the_structure_grafana_imports() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len(panels) >= 4
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "bargauge", "table", "gauge"}
        assert panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["expr"].strip()
    # Every data source points at the one input the import asks for.
    (source,) = board["__inputs"]
    assert source["pluginId"] == "prometheus"
    assert "${DS_PROMETHEUS}" in {panel["datasource"]["uid"] for panel in panels}


def test_dashboard_sums_the_job_counters_not_per_run_series() -> None:
    exprs = expressions()
    assert any("greenprof_job_energy_joules_total" in expr for expr in exprs)
    assert any("greenprof_job_emissions_grams_total" in expr for expr in exprs)
    # The documented per-job-per-hour query, not increase() over per-run series.
    assert not any("increase(greenprof_energy_joules_total" in expr for expr in exprs)


def test_dashboard_metrics_exist_in_the_exposition(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    build_run(db, "live", started_at=time.time() - 20, status="running")  # power too
    names = set(re.findall(r"^(greenprof_\w+?)(?:\{| )", exposition(db), flags=re.M))
    used = {name for expr in expressions() for name in re.findall(r"greenprof_\w+", expr)}
    assert used <= names


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "greenprof-dashboard",
                "rules": [
                    {"record": f"greenprof:dashboard_expr{index}", "expr": expr}
                    for index, expr in enumerate(expressions())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(expressions())} rules found" in result.stdout

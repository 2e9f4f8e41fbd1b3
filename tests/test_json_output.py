"""`--json` on every read command: one document, every field as docs/json.md documents it.

docs/json.md is the schema: its tables are parsed here and each command's output is
checked against them field by field (names, types, nothing undocumented, nothing
missing). jsonschema is not a dependency, so the check is a small structural one.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from greenprof import jsonout
from greenprof.cli import main
from greenprof.records import CarbonSettings, DeviceInfo
from greenprof.store.reader import RunStore
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CARBON = CarbonSettings(400.0, 1.2, "test grid data, 2023", "DEU")
GPU = DeviceInfo("gpu:0", "gpu", "counter", name="NVIDIA H100", uuid="GPU-1", idle_power_w=60.0)
CPU = DeviceInfo("cpu:0", "cpu", "model", name="Test CPU", node_wide=True)


# docs/json.md as a schema --------------------------------------------------------------------

Schema = dict[str, dict[str, str]]


def load_schema(text: str) -> Schema:
    """Every ``### `name` `` section's table as {field: type}; "Every field of [`x`]" copies
    x's fields, "with `f` as `T`" overrides one."""
    objects: Schema = {}
    for match in re.finditer(r"^### `([^`]+)`\n(.*?)(?=^##|\Z)", text, re.M | re.S):
        name, body = match.groups()
        fields: dict[str, str] = {}
        parent = re.search(r"Every field of \[`([^`]+)`\]", body)
        if parent:
            fields.update(objects[parent.group(1)])
            for field, type_ in re.findall(r"with `(\w+)` as `([^`]+)`", body):
                fields[field] = type_
        for field, type_ in re.findall(r"^\| `(\w+)` \| ([^|]+?(?:\\\|[^|]+?)*) \|", body, re.M):
            fields[field] = type_.replace("\\|", "|").strip()
        objects[name] = fields
    return objects


SCHEMA = load_schema(DOC.read_text(encoding="utf-8"))
SCALARS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "scalar": lambda v: v is None or isinstance(v, (str, int, float, bool)),
}


def check(value: Any, type_: str, where: str = "$") -> None:
    """Raise AssertionError where ``value`` does not have the documented ``type_``."""
    options = [option.strip() for option in type_.split("|")]
    if value is None:
        assert "null" in options or "scalar" in options, f"{where} is null: {type_}"
        return
    options = [option for option in options if option != "null"]
    assert len(options) == 1, f"{where}: one non-null type expected, got {type_}"
    (option,) = options
    if option.startswith("array of "):
        assert isinstance(value, list), f"{where} is not an array"
        for index, item in enumerate(value):
            check(item, option.removeprefix("array of "), f"{where}[{index}]")
    elif option.startswith("map of "):
        assert isinstance(value, dict), f"{where} is not an object"
        for key, item in value.items():
            check(item, option.removeprefix("map of "), f"{where}.{key}")
    elif option in SCALARS:
        assert SCALARS[option](value), f"{where} = {value!r} is not {option}"
        if isinstance(value, float):
            assert math.isfinite(value), f"{where} is not finite"
    else:
        fields = SCHEMA[option]
        assert isinstance(value, dict), f"{where} is not an object ({option})"
        assert set(value) - set(fields) == set(), f"{where}: undocumented fields"
        assert set(fields) - set(value) == set(), f"{where}: documented fields missing"
        for field, field_type in fields.items():
            check(value[field], field_type, f"{where}.{field}")


def test_the_page_documents_every_object_it_names() -> None:
    named = {
        option.strip().removeprefix("array of ").removeprefix("map of ")
        for fields in SCHEMA.values()
        for type_ in fields.values()
        for option in type_.split("|")
    }
    assert named - set(SCALARS) - {"null"} <= set(SCHEMA)
    assert {"run", "run detail", "device", "measured device", "compared run"} <= set(SCHEMA)
    assert SCHEMA["run detail"]["devices"] == "array of measured device"
    assert "run_id" in SCHEMA["run detail"] and "epochs" in SCHEMA["run detail"]


def test_the_checker_catches_what_it_should() -> None:
    zone = {"code": "DEU", "name": "G", "intensity_g_per_kwh": 1.0, "source": "x"}
    zone["kind"] = "country"
    check(zone, "zone")
    for broken in (
        {**zone, "intensity_g_per_kwh": "380"},
        {key: value for key, value in zone.items() if key != "source"},
        {**zone, "extra": 1},
    ):
        with pytest.raises(AssertionError):
            check(broken, "zone")


# A database written by the real writer --------------------------------------------------------


def write_run(
    path: Path,
    name: str,
    *,
    step_j: float,
    batch: int | None = 32,
    started_at: float = T0,
    job_id: str | None = None,
    rank: int | None = None,
    tags: dict[str, str] | None = None,
) -> int:
    writer = StoreWriter(path, flush_interval_s=60, wall_clock=lambda: started_at + 10.0)
    run_id = writer.create_run(
        RunSpec(
            name,
            started_at=started_at,
            interval_s=0.1,
            devices=(CPU, GPU),
            carbon=CARBON,
            framework="torch",
            tags=tags if tags is not None else {"batch_size": str(batch)},
            job_id=job_id,
            rank=rank,
            world_size=None if rank is None else 2,
            host="node-a",
            pid=4242,
            greenprof_version="0.1.0",
        )
    )
    steps = 20
    shares = (("gpu:0", 0.8), ("cpu:0", 0.2))
    writer.add_steps(
        [(s, s // 10, s * 0.5, (s + 1) * 0.5, batch, step_j, 0, 2 / (s + 1)) for s in range(steps)],
        [(s, device, step_j * share) for s in range(steps) for device, share in shares],
    )
    total = steps * step_j
    writer.set_totals(
        RunTotals(
            steps,
            None if batch is None else steps * batch,
            total * 1.1,
            total,
            steps * 0.5,
            {"gpu:0": total * 0.9, "cpu:0": total * 0.2},
        )
    )
    writer.close(status="completed")
    return run_id


@pytest.fixture
def runs_db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    write_run(path, "small", step_j=10.0, started_at=T0)
    write_run(path, "big", step_j=25.0, batch=64, started_at=T0 + 600)
    write_run(path, "ddp", step_j=5.0, job_id="job-7", rank=0, started_at=T0 + 1200)
    write_run(path, "ddp", step_j=5.0, job_id="job-7", rank=1, started_at=T0 + 1200)
    write_run(path, "nosamples", step_j=1.0, batch=None, started_at=T0 + 1800)
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.isascii()
    return json.loads(out)  # one document: json.loads refuses trailing text


# The commands --------------------------------------------------------------------------------


def test_runs_lists_every_run_newest_first_in_si_units(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "runs", "--db", str(runs_db))
    check(document, "runs document")
    assert document["kind"] == "runs" and document["version"] == 1
    runs = document["runs"]
    assert [r["name"] for r in runs] == ["nosamples", "ddp", "ddp", "big", "small"]
    small = runs[-1]
    stored = RunStore(runs_db).run(small["run_id"])
    assert small["energy_j"] == pytest.approx(stored.energy_j)
    assert small["co2_g"] == pytest.approx(stored.energy_j / 3.6e6 * 1.2 * 400.0)
    assert small["started_at"] == "2023-11-14T22:13:20+00:00"
    assert small["started_at_unix_s"] == T0
    assert small["energy_per_sample_j"] == pytest.approx(stored.energy_j / 640)
    assert small["carbon"]["intensity_g_per_kwh"] == 400.0
    assert runs[0]["samples"] is None and runs[0]["energy_per_sample_j"] is None
    assert small["tags"] == {"batch_size": "32"}


def test_runs_filters_and_an_empty_list_is_still_a_document(
    runs_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "runs", "--db", str(runs_db), "--name", "ddp", "--limit", "1")
    assert [r["rank"] for r in document["runs"]] == [1]
    from greenprof.store.schema import connect

    empty = tmp_path / "empty.db"
    connect(empty, create=True).close()
    check(run_json(capsys, "runs", "--db", str(empty)), "runs document")
    assert run_json(capsys, "runs", "--db", str(empty))["runs"] == []


def test_history_json_is_the_run_list(runs_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = run_json(capsys, "history", "--db", str(runs_db))
    check(history, "runs document")
    assert history == run_json(capsys, "runs", "--db", str(runs_db))


def test_show_run_has_devices_with_energy_epochs_and_quality(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "show", "big", "--db", str(runs_db))
    check(document, "run document")
    run = document["run"]
    energies = {d["device"]: d["energy_j"] for d in run["devices"]}
    assert energies == pytest.approx({"gpu:0": 450.0, "cpu:0": 100.0})
    assert [e["epoch"] for e in run["epochs"]] == [0, 1]
    assert sum(e["steps"] for e in run["epochs"]) == 20
    assert run["step_flags"] == {} and run["pending_steps"] == 0
    gpu = next(d for d in run["devices"] if d["device"] == "gpu:0")
    assert gpu["method"] == "counter" and gpu["uuid"] == "GPU-1" and gpu["idle_power_w"] == 60.0


def test_show_job_counts_node_wide_devices_once(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "show", "job-7", "--db", str(runs_db))
    check(document, "job document")
    job = document["job"]
    assert [r["rank"] for r in job["ranks"]] == [0, 1]
    # one host: the node-wide CPU (20 J per rank) counted once, the shared GPU UUID once
    assert job["energy_j"] == pytest.approx(90.0 + 20.0)
    assert job["counted_twice_j"] == pytest.approx(110.0)
    assert job["nodes"] == [{"host": "node-a", "energy_j": pytest.approx(110.0)}]


def test_compare_json_has_figures_deltas_and_the_verdict(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "compare", "small", "big", "--db", str(runs_db))
    check(document, "comparison document")
    small, big = document["runs"]
    assert (small["letter"], big["letter"]) == ("A", "B")
    assert small["vs_first_pct"] is None
    assert big["vs_first_pct"]["energy_j"] == pytest.approx(150.0)
    assert big["energy_per_sample_j"] == pytest.approx(big["energy_j"] / 1280)
    assert big["step_energy_j_median"] == pytest.approx(25.0)
    (verdict,) = document["verdicts"]
    assert "small #1 is" in verdict and "more energy-efficient per sample than big #2" in verdict
    assert document["loss_target"] == pytest.approx(0.1)
    assert big["device_shares"] == pytest.approx({"cpu:0": 2 / 11, "gpu:0": 9 / 11})
    assert document["verdict_metric"] == "energy_per_sample_j"  # a field of each run
    assert document["most_efficient_run_id"] == small["run_id"]
    (caveat,) = document["caveats"]  # batch 32 against 64: per-step figures differ
    assert caveat["kind"] == "batch_size" and caveat["runs"] == ["A", "B"]
    assert caveat["run_ids"] == [small["run_id"], big["run_id"]]
    assert "different batch sizes (A 32, B 64)" in caveat["text"]


def test_compare_json_says_what_the_verdict_fell_back_to_and_why(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "compare", "small", "nosamples", "--db", str(runs_db))
    check(document, "comparison document")
    _, nosamples = document["runs"]
    assert document["verdict_metric"] == "step_energy_j_median"  # B counted no samples
    assert document["most_efficient_run_id"] == nosamples["run_id"]  # 1 J/step against 10
    kinds = {(c["kind"], tuple(c["runs"])) for c in document["caveats"]}
    assert ("no_samples", ("B",)) in kinds


def test_compare_caveats_name_partial_and_unlike_runs() -> None:
    from greenprof.records import RunInfo
    from greenprof.tui.compare_caveats import comparison_caveats
    from greenprof.tui.comparison import RunSummary, compare, summarize
    from greenprof.tui.run_summary import StepColumns, digest_columns

    def summary(run_id: int, **changes: Any) -> RunSummary:
        run = RunInfo(
            run_id=run_id, name="r", status="completed", started_at=T0, ended_at=T0 + 9,
            host="h", pid=1, rank=None, framework="torch", tags={}, devices=(CPU, GPU),
            carbon=CARBON, steps=4, samples=128, energy_j=40.0, step_energy_j=40.0,
            duration_s=9.0,
        )  # fmt: skip
        columns = StepColumns([10.0] * 4, [32] * 4, [None] * 4)
        return summarize(replace(run, **changes), digest_columns(columns), {"gpu:0": 40.0})

    done = summary(1)
    failed = summary(2, status="failed", devices=(GPU,))
    caveats = comparison_caveats([done, failed])
    assert [(c.kind, c.letters, c.run_ids) for c in caveats] == [
        ("failed", ("B",), (2,)),
        ("devices", ("A", "B"), (1, 2)),
    ]
    assert caveats[0].text == "B (r #2) failed: its figures cover only the part that ran"
    assert caveats[1].text.startswith("measured on different devices or by different methods")
    comparison = compare([done, failed])
    assert comparison.caveats == (caveats[0].text,)  # the screen warns of partial runs only
    assert comparison.caveat_details == caveats
    assert (comparison.ranked_by, comparison.best_index) == ("sample", 0)


def test_compare_json_expands_a_job_into_its_ranks(
    runs_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "compare", "job-7", "--db", str(runs_db))
    check(document, "comparison document")
    assert [r["run_id"] for r in document["runs"]] == [3, 4]


def test_doctor_json_describes_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "doctor")
    check(document, "doctor document")
    assert any(d["device"] == "cpu:0" for d in document["devices"])
    assert document["database"].endswith("default-runs.db")


def test_regions_json_and_no_match_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "regions", "germany")
    check(document, "regions document")
    assert document["zones"][0]["code"] == "DEU"
    assert document["zones"][0]["kind"] == "country"
    assert document["zones"][0]["intensity_g_per_kwh"] > 0
    kinds = {z["code"]: z["kind"] for z in run_json(capsys, "regions", "e")["zones"]}
    assert kinds["europe-west1"] == "cloud_region"
    assert kinds["SE3"] == "grid_zone"
    assert main(["regions", "zzz", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no country or region" in captured.err


def test_text_from_the_database_stays_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odd.db"
    write_run(path, "evil\x1b]0;pwned\x07", step_j=1.0, tags={"note": "a\nb"})
    out_run = run_json(capsys, "runs", "--db", str(path))["runs"][0]
    assert out_run["name"] == "evil\x1b]0;pwned\x07"  # exact, and escaped on the wire
    assert out_run["tags"] == {"note": "a\nb"}


def test_tag_values_keep_json_types_and_non_finite_numbers_are_null() -> None:
    assert jsonout.tag_values({"b": 64, "a": "x", "c": True, "d": 0.5, "e": float("nan")}) == {
        "a": "x",
        "b": 64,
        "c": True,
        "d": 0.5,
        "e": None,
    }
    assert jsonout.number(float("inf")) is None
    assert jsonout.iso_time(None) is None
    assert jsonout.dumps({"x": jsonout.number(float("nan"))}) == '{\n  "x": null\n}'


def _bounded_run(path: Path, *, recovered_step: int | None = None) -> None:
    """Two epochs of four contiguous 1 s steps, each bounded 0.25 J at each end and 0.5 J
    inside (``recovered_step``: stored without a bound, as a step recovered after a crash)."""
    gpu = DeviceInfo("gpu:0", "gpu", "counter", power_window_s=1.0)
    writer = StoreWriter(path, flush_interval_s=3600.0, wall_clock=lambda: T0 + 10)
    writer.create_run(RunSpec("bounded", started_at=T0, interval_s=0.1, devices=[gpu]))
    writer.add_steps(
        [
            (s, s // 4, float(s), s + 1.0, 8, 10.0, 0, None, 0)
            + ((None,) * 3 if s == recovered_step else (0.25, 0.25, 0.5))
            for s in range(8)
        ],
        [(s, "gpu:0", 10.0, None if s == recovered_step else 1.0) for s in range(8)],
    )
    writer.set_totals(RunTotals(8, 64, 90.0, 80.0, 8.0, {"gpu:0": 90.0}))
    writer.close(status="completed")


def test_show_states_the_window_bound_of_the_run_and_of_each_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contiguous steps: a window costs its two ends (0.25 J each) and the root-sum-square
    of the interiors, not the sum of the step bounds (8 x 1 J)."""
    db = tmp_path / "bounded.db"
    _bounded_run(db)
    document = run_json(capsys, "show", "bounded", "--db", str(db))
    check(document, "run document")
    run = document["run"]
    assert run["step_energy_uncertainty_j"] == pytest.approx(0.5 + math.sqrt(8 * 0.25))
    assert [e["energy_uncertainty_j"] for e in run["epochs"]] == pytest.approx([1.5, 1.5])
    assert run["devices"][0]["power_window_s"] == 1.0
    assert main(["show", "bounded", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "energy inside steps: 22.2 mWh ± 532 µWh (89 % of the run)" in text
    assert "  0: 4 steps, 11.1 mWh ± 417 µWh, 4.00 s" in text


def test_show_says_n_a_where_a_step_has_no_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "recovered.db"
    _bounded_run(db, recovered_step=5)
    run = run_json(capsys, "show", "bounded", "--db", str(db))["run"]
    assert run["step_energy_uncertainty_j"] is None
    assert [e["energy_uncertainty_j"] for e in run["epochs"]] == [pytest.approx(1.5), None]
    assert main(["show", "bounded", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "± n/a (89 % of the run)" in text and "  1: 4 steps, 11.1 mWh ± n/a" in text

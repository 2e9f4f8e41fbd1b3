"""The read contract (:class:`greenprof.store.api.ReadBackend`) against every backend.

One set of runs is written through the real writer (``open_writer``) into a fresh store of
each backend (``empty_store`` in ``tests/store/conftest.py``, parametrized by
``READ_BACKENDS``); every test reads it back through ``RunStore``, which delegates each
method to the backend unchanged. Which backends run is the one line ``READ_BACKENDS`` in
``tests/store/conftest.py`` (SQLite and PostgreSQL; a third backend is one more entry).

The runs (``T0`` = their reference time; the stores' clock reads ``NOW``):

1. ``resnet``, job ``job-7`` rank 0, node-a: GPU (counter) + CPU (model), carbon, 30
   steps in 3 epochs with flags, a missing loss and a missing sample count, 2 pending
   steps, GPU energy-only samples and CPU power-only samples; completed.
2. ``resnet``, job ``job-7`` rank 1, node-b: GPU, 5 steps, no samples; completed.
3. ``bert``: no devices, 3 steps; failed.
4. ``live``: node-b, heartbeat 1 s before ``NOW``; still open (running).
5. ``local-dead``: this host, a process that is gone, heartbeat 3 s before ``NOW``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from greenprof.errors import RunNotFound
from greenprof.records import (
    STEP_DEVICE_MISSING,
    STEP_READING_REJECTED,
    STEP_RECOVERED,
    Bounds,
    CarbonSettings,
    DeviceInfo,
    TagValue,
)
from greenprof.store.api import DeviceEnergy, ReadBackend, StepAggregate, TimelineCell
from greenprof.store.reader import RunStore
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter, open_writer

T0 = 1_750_000_000.0
NOW = T0 + 320.0
DEAD_PID = 2**31 - 7
GPU = DeviceInfo("gpu:0", "gpu", "counter", name="Test GPU", uuid="GPU-1", power_window_s=1.0)
CPU = DeviceInfo("cpu:0", "cpu", "model", name="Test CPU", node_wide=True, note="estimate")
CARBON = CarbonSettings(400.0, 1.2, "test grid", "DEU")
TAGS: dict[str, TagValue] = {"bs": 64, "lr": 0.5, "amp": True, "opt": "adam", "seed": "42"}
"""Tags keep their JSON types on read: a number, a flag, text (digits as text stay text)."""
FLAGS = {3: STEP_RECOVERED, 4: STEP_DEVICE_MISSING, 5: STEP_DEVICE_MISSING | STEP_READING_REJECTED}


def _energy(step: int) -> float:
    return 2.0 + 0.125 * step


def _samples(step: int) -> int | None:
    return None if step == 7 else 32


def _loss(step: int) -> float | None:
    return None if step == 2 else 3.0 - 0.0625 * step


def _bounds(step: int) -> Bounds | None:
    """The resnet steps' error bounds: step 3 (recovered after a crash) has none."""
    return None if step == 3 else Bounds(0.125, 0.125, 0.0625 * (step % 4))


def _device_bound(step: int, device: str) -> float | None:
    bounds = _bounds(step)
    return None if bounds is None else bounds.total_j * _SHARES[device]


def _step_row(i: int) -> tuple[object, ...]:
    start, interpolated = 0.5 * i, int(i % 5 == 0)
    bounds = _bounds(i)
    parts = (None,) * 3 if bounds is None else (bounds.start_j, bounds.end_j, bounds.interior_j)
    return (
        i,
        i // 10,
        start,
        start + 0.5,
        _samples(i),
        _energy(i),
        interpolated,
        _loss(i),
        FLAGS.get(i, 0),
        *parts,
    )


@dataclass(frozen=True)
class Seeded:
    """The store's ``db`` string and the ids of the five runs, in the order above."""

    db: str
    ids: tuple[int, ...]


def _writer(db: str, clock_s: float) -> StoreWriter:
    return open_writer(db, flush_interval_s=3600.0, wall_clock=lambda: clock_s)


def _spec(name: str, started_at: float, **fields: object) -> RunSpec:
    return RunSpec(name, started_at=started_at, interval_s=0.5, **fields)  # type: ignore[arg-type]


def _write_resnet(db: str) -> int:
    writer = _writer(db, T0 + 20)
    run_id = writer.create_run(
        _spec(
            "resnet",
            T0,
            devices=[GPU, CPU],
            carbon=CARBON,
            framework="torch",
            tags=TAGS,
            rank=0,
            world_size=2,
            job_id="job-7",
            local_rank=0,
            host="node-a",
            pid=100,
            greenprof_version="9.9",
        )
    )
    steps = [_step_row(i) for i in range(30)]
    energies = [
        (i, d, _energy(i) * share, _device_bound(i, d))
        for i in range(30)
        for d, share in _SHARES.items()
    ]
    writer.add_steps(steps, energies)
    writer.add_pending_steps([(29, 2, 14.5, 15.0, 32, None), (30, 3, 15.0, 15.5, 32, None)])
    writer.add_pending_steps([(31, 3, 15.5, 16.0, 32, None)])
    gpu = [("gpu:0", float(t), 100.0 * t, None, 50.0 + t, 1 << 30, 60.0) for t in range(16)]
    cpu = [("cpu:0", t + 0.5, None, 40.0, None, None, None) for t in range(16)]
    writer.add_samples(gpu)
    writer.add_samples(cpu)
    total = sum(_energy(i) for i in range(30))
    writer.set_totals(
        RunTotals(30, 29 * 32, total * 1.5, total, 15.0, {"gpu:0": total, "cpu:0": total / 2})
    )
    writer.close(status="completed")
    return run_id


_SHARES = {"gpu:0": 0.75, "cpu:0": 0.25}


def _write_small(
    db: str, name: str, started_at: float, steps: int, status: str, **fields: object
) -> int:
    writer = _writer(db, started_at + 10)
    run_id = writer.create_run(_spec(name, started_at, **fields))
    devices = fields.get("devices", ())
    writer.add_steps(
        [(i, 0, 1.0 * i, 1.0 * i + 0.5, 8, 1.0 + i, 0, None) for i in range(steps)],
        [(i, d.device, 1.0 + i) for i in range(steps) for d in devices],  # type: ignore[attr-defined]
    )
    writer.set_totals(RunTotals(steps, 8 * steps, 100.0, 50.0, 10.0, {}))
    if status == "failed":
        writer.close(status="failed", error="boom")
    else:
        writer.close(status="completed")
    return run_id


def _open_running(
    db: str, name: str, started_at: float, heartbeat_at: float, **fields: object
) -> StoreWriter:
    writer = _writer(db, heartbeat_at)
    writer.create_run(_spec(name, started_at, **fields))
    writer.add_steps([(0, 0, 0.0, 1.0, 4, 3.0, 0, 0.5)])
    writer.flush()
    return writer


@pytest.fixture(scope="module")
def seeded(empty_store: str) -> Iterator[Seeded]:
    db = empty_store
    ids = [
        _write_resnet(db),
        _write_small(
            db, "resnet", T0 + 1, 5, "completed", devices=[GPU], rank=1, job_id="job-7",
            host="node-b", pid=200,
        ),
        _write_small(db, "bert", T0 + 100, 3, "failed", host="node-b", pid=300),
    ]  # fmt: skip
    live = _open_running(db, "live", T0 + 200, NOW - 1, host="node-b", pid=400)
    dead = _open_running(
        db, "local-dead", T0 + 300, NOW - 3, host=socket.gethostname(), pid=DEAD_PID
    )
    ids += [live.run_id, dead.run_id]
    try:
        yield Seeded(db, tuple(ids))
    finally:
        live.close()
        dead.close()


def _alive(pid: int) -> bool:
    return pid != DEAD_PID


@pytest.fixture
def store(seeded: Seeded) -> Iterator[RunStore]:
    with RunStore(seeded.db, wall_clock=lambda: NOW, alive=_alive) as opened:
        yield opened


def _later_store(seeded: Seeded) -> RunStore:
    """The same store read 100 s later: the live run has gone silent."""
    return RunStore(seeded.db, wall_clock=lambda: NOW + 100, alive=_alive)


# The façade and the contract -----------------------------------------------------------


def test_run_store_offers_every_method_of_the_contract(store: RunStore) -> None:
    methods = [name for name in dir(ReadBackend) if not name.startswith("_")]
    assert {"runs", "step_buckets", "export_batches"} <= set(methods)
    assert all(callable(getattr(store, name)) for name in methods)
    assert all(callable(getattr(store._backend, name)) for name in methods)


# Runs ---------------------------------------------------------------------------------


def test_runs_are_newest_first_with_the_displayed_status(store: RunStore, seeded: Seeded) -> None:
    one, two, three, live, dead = seeded.ids
    runs = store.runs()
    assert [r.run_id for r in runs] == [dead, live, three, two, one]
    assert [r.status for r in runs] == [
        "interrupted",
        "running",
        "failed",
        "completed",
        "completed",
    ]


def test_a_run_reads_back_with_everything_written(store: RunStore, seeded: Seeded) -> None:
    run = store.run(seeded.ids[0])
    total = sum(_energy(i) for i in range(30))
    assert (run.name, run.status, run.host, run.pid, run.rank) == (
        "resnet",
        "completed",
        "node-a",
        100,
        0,
    )
    assert (run.job_id, run.local_rank, run.world_size) == ("job-7", 0, 2)
    assert (run.framework, run.greenprof_version, run.tags) == ("torch", "9.9", TAGS)
    assert {k: type(v) for k, v in run.tags.items()} == {k: type(v) for k, v in TAGS.items()}
    assert run.devices == (CPU, GPU)
    assert run.carbon == CARBON
    assert (run.steps, run.samples, run.duration_s) == (30, 29 * 32, 15.0)
    assert run.energy_j == pytest.approx(total * 1.5)
    assert run.step_energy_j == pytest.approx(total)
    assert run.started_at == T0
    failed = store.run(seeded.ids[2])
    assert (failed.status, failed.devices, failed.carbon) == ("failed", (), None)
    assert failed.error is not None and "boom" in failed.error


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "running"}, [3]),
        ({"status": "interrupted"}, [4]),
        ({"status": "completed"}, [1, 0]),
        ({"status": "failed"}, [2]),
        ({"status": "incomplete"}, []),
        ({"name": "resnet"}, [1, 0]),
        ({"name": "resnet", "limit": 1}, [1]),
        ({"job": "job-7"}, [1, 0]),
        ({"job": "job-7", "status": "completed", "limit": 1}, [1]),
        ({"job": "nope"}, []),
        ({"limit": 2}, [4, 3]),
        ({"limit": 0}, []),
        ({"status": "interrupted", "limit": 1}, [4]),
    ],
)
def test_runs_filter_by_status_name_job_and_limit(
    store: RunStore, seeded: Seeded, filters: dict[str, object], expected: list[int]
) -> None:
    got = store.runs(**filters)  # type: ignore[arg-type]
    assert [r.run_id for r in got] == [seeded.ids[i] for i in expected]


def test_a_silent_run_turns_interrupted_for_every_reader(seeded: Seeded) -> None:
    with _later_store(seeded) as later:
        live = seeded.ids[3]
        assert later.run(live).status == "interrupted"
        assert later.runs(status="running") == []
        assert [r.run_id for r in later.runs(status="interrupted")] == [seeded.ids[4], live]
        assert {m.run_id: m.status for m in later.metric_runs()}[live] == "interrupted"
        assert later.stored_status(live) == "running"


def test_run_by_id_by_digits_or_newest_of_a_name(store: RunStore, seeded: Seeded) -> None:
    one, two = seeded.ids[:2]
    assert store.run(one).run_id == one
    assert store.run(str(one)).run_id == one
    assert store.run("resnet").run_id == two
    for missing in ("nope", 10**9, "99999999999999999999"):
        with pytest.raises(RunNotFound, match="greenprof runs"):
            store.run(missing)


def test_stored_status_ignores_liveness(store: RunStore, seeded: Seeded) -> None:
    statuses = [store.stored_status(run_id) for run_id in seeded.ids]
    assert statuses == ["completed", "completed", "failed", "running", "running"]
    assert store.stored_status(10**9) is None


def test_devices_and_their_energies(store: RunStore, seeded: Seeded) -> None:
    one, two, three = seeded.ids[:3]
    total = sum(_energy(i) for i in range(30))
    assert store.devices([one, two, three]) == {one: (CPU, GPU), two: (GPU,)}
    assert store.devices([]) == {}
    assert store.device_energy_j(one) == pytest.approx({"gpu:0": total, "cpu:0": total / 2})
    assert store.device_energy_j(10**9) == {}
    energies = store.device_energies([one, three])
    assert list(energies) == [one]
    assert [(d.device, d.method) for d in energies[one]] == [
        ("cpu:0", "model"),
        ("gpu:0", "counter"),
    ]
    assert energies[one][1] == DeviceEnergy("gpu:0", "counter", total)


def test_metric_runs_are_cheap_rows_by_id(store: RunStore, seeded: Seeded) -> None:
    rows = store.metric_runs()
    assert [m.run_id for m in rows] == sorted(seeded.ids)
    first = rows[0]
    assert (first.name, first.status, first.host, first.rank) == (
        "resnet",
        "completed",
        "node-a",
        0,
    )
    assert (first.pue, first.intensity_g_per_kwh, first.steps, first.samples) == (
        1.2,
        400.0,
        30,
        928,
    )
    assert first.heartbeat_at == T0 + 20
    assert first.ended_at is not None
    assert first.framework == "torch" and first.greenprof_version == "9.9"
    picked = store.metric_runs([seeded.ids[3], seeded.ids[1]])
    assert [(m.run_id, m.status) for m in picked] == [
        (seeded.ids[1], "completed"),
        (seeded.ids[3], "running"),
    ]
    assert store.metric_runs([]) == []


# Steps --------------------------------------------------------------------------------


def test_step_batches_carry_every_field_and_device_energies(
    store: RunStore, seeded: Seeded
) -> None:
    one = seeded.ids[0]
    batch = store.step_batch(one, after_step=-1, size=10)
    assert [s.step for s in batch] == list(range(10))
    step = batch[5]
    assert (step.epoch, step.start_s, step.end_s, step.samples) == (0, 2.5, 3.0, 32)
    assert (step.energy_j, step.interpolated, step.flags) == (_energy(5), True, FLAGS[5])
    assert step.device_energy_j == pytest.approx({d: _energy(5) * s for d, s in _SHARES.items()})
    assert (batch[2].loss, batch[7].samples) == (None, None)
    assert [s.step for s in store.step_batch(one, after_step=25, size=10)] == [26, 27, 28, 29]
    assert store.step_batch(seeded.ids[2], after_step=-1, size=5)[0].device_energy_j == {}


def test_step_bounds_read_back_as_written_and_none_where_not_known(
    store: RunStore, seeded: Seeded
) -> None:
    """Each step's error bound (its parts, for window sums) and each device's share of it;
    a step written without one (recovered, or a run without bounds) reads None, not 0 J."""
    batch = store.step_batch(seeded.ids[0], after_step=-1, size=10)
    assert batch[6].bounds == Bounds(0.125, 0.125, 0.125)
    assert batch[6].energy_uncertainty_j == 0.375
    assert batch[6].device_uncertainty_j == pytest.approx({"gpu:0": 0.28125, "cpu:0": 0.09375})
    assert (batch[3].bounds, batch[3].energy_uncertainty_j) == (None, None)
    assert batch[3].device_uncertainty_j == {}
    small = store.step_batch(seeded.ids[1], after_step=-1, size=5)
    assert [(s.bounds, s.device_uncertainty_j) for s in small] == [(None, {})] * 5
    rows = store.step_bound_batch(seeded.ids[0], after_step=2, size=4)
    assert rows == [
        (3, 0, 1.5, 2.0, None, None, None),
        (4, 0, 2.0, 2.5, 0.125, 0.125, 0.0),
        (5, 0, 2.5, 3.0, 0.125, 0.125, 0.0625),
        (6, 0, 3.0, 3.5, 0.125, 0.125, 0.125),
    ]
    streamed = list(store.iter_step_bounds(seeded.ids[0], batch_size=7))
    assert [r[0] for r in streamed] == list(range(30))
    assert store.step_bound_batch(10**9, after_step=-1, size=5) == []
    assert store.step_batch(10**9, after_step=-1, size=5) == []


def test_steps_stream_in_batches_through_the_facade(store: RunStore, seeded: Seeded) -> None:
    one = seeded.ids[0]
    assert [s.step for s in store.iter_steps(one, batch_size=7)] == list(range(30))
    assert [s.step for s in store.steps(one, after_step=20, limit=3)] == [21, 22, 23]


def test_flag_counts_and_pending_steps(store: RunStore, seeded: Seeded) -> None:
    one, two = seeded.ids[:2]
    assert store.step_flag_counts(one) == {
        "recovered": 1,
        "device_missing": 2,
        "reading_rejected": 1,
    }
    assert store.step_flag_counts(two) == {}
    assert store.pending_steps(one) == 2  # step 29 has its row: not pending
    assert store.pending_steps(two) == 0


def test_epochs_total_their_steps(store: RunStore, seeded: Seeded) -> None:
    epochs = store.epochs(seeded.ids[0])
    assert [(e.epoch, e.steps, e.start_s, e.end_s) for e in epochs] == [
        (0, 10, 0.0, 5.0),
        (1, 10, 5.0, 10.0),
        (2, 10, 10.0, 15.0),
    ]
    assert [e.samples for e in epochs] == [9 * 32, 320, 320]
    assert epochs[1].energy_j == pytest.approx(sum(_energy(i) for i in range(10, 20)))
    assert store.epochs(10**9) == []


def test_step_aggregate_range_and_columns(store: RunStore, seeded: Seeded) -> None:
    one = seeded.ids[0]
    total = sum(_energy(i) for i in range(30))
    aggregate = store.step_aggregate(one)
    assert (aggregate.steps, aggregate.samples, aggregate.last_step) == (30, 29 * 32, 29)
    assert aggregate.energy_j == pytest.approx(total)
    assert store.step_aggregate(10**9) == StepAggregate(0, 0.0, 0, -1)
    assert store.step_range(one) == (0, 29)
    assert store.step_range(10**9) is None
    columns = store.step_columns(one)
    assert columns.energy_j == tuple(_energy(i) for i in range(30))
    assert columns.samples == tuple(_samples(i) for i in range(30))
    assert columns.loss == tuple(_loss(i) for i in range(30))
    assert store.step_columns(10**9).energy_j == ()


def test_step_buckets_condense_ranges_of_step_numbers(store: RunStore, seeded: Seeded) -> None:
    buckets = store.step_buckets(seeded.ids[0], width=8, head=2)
    assert [(b.first_step, b.end_step) for b in buckets] == [(0, 8), (8, 16), (16, 24), (24, 30)]
    for bucket in buckets:
        steps = range(bucket.first_step, bucket.end_step)
        assert bucket.energy_j == pytest.approx(sum(_energy(i) for i in steps))
        losses = [_loss(i) for i in steps if _loss(i) is not None]
        assert bucket.min_loss == min(losses)  # type: ignore[type-var]  # exactly
        assert bucket.head_energy_j == (_energy(steps[0]), _energy(steps[1]))
        assert bucket.head_samples == (_samples(steps[0]), _samples(steps[1]))
    assert store.step_buckets(10**9, width=8, head=2) == []


# Samples ------------------------------------------------------------------------------


def test_samples_in_time_order_with_filters(store: RunStore, seeded: Seeded) -> None:
    one = seeded.ids[0]
    samples = store.samples(one)
    assert len(samples) == 32
    assert [(s.device, s.time_s) for s in samples[:3]] == [
        ("gpu:0", 0.0),
        ("cpu:0", 0.5),
        ("gpu:0", 1.0),
    ]
    gpu = store.samples(one, device="gpu:0", after_s=13.0)
    assert [(s.time_s, s.energy_j, s.power_w, s.utilization_pct) for s in gpu] == [
        (14.0, 1400.0, None, 64.0),
        (15.0, 1500.0, None, 65.0),
    ]
    assert (gpu[0].memory_used_bytes, gpu[0].temperature_c) == (1 << 30, 60.0)
    assert store.samples(seeded.ids[1]) == []


def test_last_sample_time_and_latest_power(store: RunStore, seeded: Seeded) -> None:
    one, two = seeded.ids[:2]
    assert store.last_sample_time_s(one, "gpu:0") == 15.0
    assert store.last_sample_time_s(one) == 15.5
    assert store.last_sample_time_s(two) is None
    # GPU: no power field, so the rise of its counter; CPU: its power; dram: no samples.
    power = store.latest_power_w(one, ["gpu:0", "cpu:0", "dram:0"])
    assert power == pytest.approx({"gpu:0": 100.0, "cpu:0": 40.0})
    assert store.latest_power_w(two, ["gpu:0"]) == {}


def test_sample_and_step_timelines(store: RunStore, seeded: Seeded) -> None:
    one, two = seeded.ids[:2]
    cells = store.sample_timeline(one, width_s=5.0, points=3)
    assert [(c.bucket, c.device) for c in cells] == [
        (b, d) for b in range(3) for d in ("cpu:0", "gpu:0")
    ]
    gpu = [c for c in cells if c.device == "gpu:0"]
    assert [(c.power_w, c.energy_j) for c in gpu] == [(None, 400.0), (None, 900.0), (None, 1500.0)]
    cpu = [c for c in cells if c.device == "cpu:0"]
    assert [(c.power_w, c.energy_j) for c in cpu] == [(40.0, None)] * 3
    steps = store.step_timeline(two, width_s=2.0, points=2)
    assert steps == [
        TimelineCell("gpu:0", 0, None, 1.0 + 2.0),
        TimelineCell("gpu:0", 1, None, 3.0 + 4.0 + 5.0),
    ]
    assert store.sample_timeline(two, width_s=1.0, points=5) == []


def test_utilization_by_device_kind(store: RunStore, seeded: Seeded) -> None:
    assert store.utilization_by_kind(seeded.ids[0]) == pytest.approx({"gpu": 57.5})
    assert store.utilization_by_kind(seeded.ids[1]) == {}


# Exports ------------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return round((T0 + seconds) * 1000)


def test_export_steps_rows_in_bounded_batches(store: RunStore, seeded: Seeded) -> None:
    one = seeded.ids[0]
    batches = list(store.export_batches("steps", one, started_at=T0, co2_g_per_j=0.5, batch_rows=7))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 2]
    rows = [row for batch in batches for row in batch]
    energy, loss = _energy(5), _loss(5)
    assert tuple(rows[5]) == (
        5,
        0,
        2.5,
        3.0,
        0.5,
        _ms(2.5),
        _ms(3.0),
        32,
        energy,
        energy / 2,
        1,
        loss,
        0.3125,  # the step's error bound
    )
    assert (rows[7][7], rows[2][11], rows[3][12]) == ("", "", "")  # NULL samples, loss, bound
    no_carbon = next(
        store.export_batches("steps", one, started_at=T0, co2_g_per_j=None, batch_rows=50)
    )
    assert {row[9] for row in no_carbon} == {""}


def test_export_step_device_and_sample_rows(store: RunStore, seeded: Seeded) -> None:
    one = seeded.ids[0]
    devices = [
        row
        for batch in store.export_batches(
            "step-devices", one, started_at=T0 + 1, co2_g_per_j=None, batch_rows=1000
        )
        for row in batch
    ]
    assert len(devices) == 60
    assert [tuple(r[:4]) for r in devices[:2]] == [
        (0, 0, "cpu:0", "model"),
        (0, 0, "gpu:0", "counter"),
    ]
    assert tuple(devices[3][4:]) == (
        0.5,
        1.0,
        _ms(1.5),
        pytest.approx(_energy(1) * 0.75),
        "",
        pytest.approx(_device_bound(1, "gpu:0")),
    )
    assert devices[7][9] == ""  # step 3's devices: no bound
    samples = [
        row
        for batch in store.export_batches(
            "samples", one, started_at=T0, co2_g_per_j=None, batch_rows=1000
        )
        for row in batch
    ]
    assert len(samples) == 32
    assert tuple(samples[0]) == ("gpu:0", 0.0, _ms(0.0), 0.0, "", 50.0, 1 << 30, 60.0)
    assert tuple(samples[1]) == ("cpu:0", 0.5, _ms(0.5), "", 40.0, "", "", "")
    assert (
        list(store.export_batches("samples", 10**9, started_at=T0, co2_g_per_j=None, batch_rows=5))
        == []
    )

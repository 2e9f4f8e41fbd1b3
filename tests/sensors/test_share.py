"""Apportioning node-wide energy by CPU-time share: scripted CPU times for exact figures,
real psutil for what a real child process contributes (no speeds, no wall-clock bounds)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import psutil
import pytest

from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, Reading
from greenprof.sensors.base import PowerSensor
from greenprof.sensors.fake import FakeSensor
from greenprof.sensors.share import (
    ApportionedSensor,
    CpuTimes,
    CpuTimeShare,
    CpuWorld,
    RunProcesses,
    ShareEstimator,
    apportion,
    job_id_of,
    node_busy_s,
    psutil_world,
    summaries,
)
from greenprof.sensors.testing import FakeClock


class Gone(Exception):
    """The scripted world's psutil.NoSuchProcess."""


class ProcTimes(NamedTuple):
    user: float
    system: float
    children_user: float = 0.0
    children_system: float = 0.0


class NodeTimes(NamedTuple):
    user: float
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0


class Proc:
    """A scripted psutil.Process: CPU seconds set by the test, children, parent, env."""

    def __init__(self, pid: int, env: Mapping[str, str] | None = None) -> None:
        self.pid = pid
        self.user_s = 0.0
        self.reaped_s = 0.0
        self.kids: list[Proc] = []
        self.up: Proc | None = None
        self.env = dict(env or {})
        self.gone = False

    def adopt(self, child: Proc) -> Proc:
        child.up = self
        self.kids.append(child)
        return child

    def cpu_times(self) -> ProcTimes:
        if self.gone:
            raise Gone(self.pid)
        return ProcTimes(self.user_s, 0.0, self.reaped_s, 0.0)

    def children(self, recursive: bool = False) -> list[Proc]:
        if self.gone:
            raise Gone(self.pid)
        out: list[Proc] = []
        for kid in self.kids:
            out.append(kid)
            if recursive:
                out.extend(kid.children(recursive=True))
        return out

    def parent(self) -> Proc | None:
        return self.up

    def environ(self) -> dict[str, str]:
        if self.gone:
            raise Gone(self.pid)
        return self.env

    def exit_and_be_reaped(self) -> None:
        """Exit; the parent's reaped-children time takes this process's total."""
        assert self.up is not None
        self.gone = True
        self.up.kids.remove(self)
        self.up.reaped_s += self.user_s + self.reaped_s


class Node:
    """The node's busy seconds, set by the test (idle grows with it, to look real)."""

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.idle_s = 0.0

    def cpu_times(self) -> NodeTimes:
        return NodeTimes(user=self.busy_s, idle=self.idle_s)


def world(proc: Proc, node: Node, job_id: str | None = None) -> CpuWorld:
    return CpuWorld(process=proc, node_cpu_times=node.cpu_times, errors=(Gone,), job_id=job_id)


class Counter:
    """A node-wide energy counter the test sets (e.g. RAPL package), in J."""

    def __init__(self, clock: FakeClock, device: str = "cpu:0", energy_j: float = 0.0) -> None:
        self.device = device
        self.clock = clock
        self.energy_j = energy_j
        self.power_w: float | None = None
        self.update_period_s = 0.001
        self.energy_wrap_j: float | None = None
        self.info = DeviceInfo(device, "cpu", "counter", "RAPL package-0", node_wide=True)
        self.closed = False

    def read(self) -> Reading:
        return Reading(self.device, self.clock(), self.energy_j, self.power_w)

    def close(self) -> None:
        self.closed = True


class PowerModel:
    """A node-wide power-only sensor (like the CPU-load model)."""

    def __init__(self, clock: FakeClock, power_w: float) -> None:
        self.device = "cpu:0"
        self.clock = clock
        self.power_w = power_w
        self.update_period_s = None
        self.energy_wrap_j = None
        self.info = DeviceInfo(
            "cpu:0", "cpu", "model", "CPU (estimated)", node_wide=True, note="load × TDP"
        )

    def read(self) -> Reading:
        return Reading(self.device, self.clock(), None, self.power_w)

    def close(self) -> None:
        pass


def cpu_share(proc: Proc, node: Node, clock: FakeClock, **kwargs: Any) -> CpuTimeShare:
    return CpuTimeShare(world(proc, node, **kwargs), clock=clock, period_s=1.0)


# ---------------------------------------------------------------------- the estimator


def test_the_share_is_own_over_busy_and_starts_at_one() -> None:
    estimator = ShareEstimator()
    assert estimator.update(CpuTimes(own_s=10.0, busy_s=100.0)) == 1.0  # the baseline
    assert estimator.update(CpuTimes(own_s=13.0, busy_s=104.0)) == pytest.approx(0.75)
    assert estimator.update(CpuTimes(own_s=13.5, busy_s=106.0)) == pytest.approx(0.25)


def test_a_quiet_interval_keeps_the_previous_share_and_stays_open() -> None:
    estimator = ShareEstimator(min_busy_s=0.02)
    estimator.update(CpuTimes(own_s=0.0, busy_s=0.0))
    assert estimator.update(CpuTimes(own_s=0.0, busy_s=0.01)) == 1.0  # one tick: no share
    assert estimator.update(CpuTimes(own_s=0.01, busy_s=0.01)) == 1.0
    # the window kept its baseline: 0.02 of 0.04 busy seconds since the start
    assert estimator.update(CpuTimes(own_s=0.02, busy_s=0.04)) == pytest.approx(0.5)
    assert estimator.update(CpuTimes(own_s=0.02, busy_s=0.04)) == pytest.approx(0.5)


def test_the_share_is_clipped_and_a_falling_own_time_skips_the_interval() -> None:
    estimator = ShareEstimator()
    estimator.update(CpuTimes(own_s=0.0, busy_s=0.0))
    assert estimator.update(CpuTimes(own_s=3.0, busy_s=2.0)) == 1.0  # tick rounding
    assert estimator.update(CpuTimes(own_s=3.5, busy_s=4.0)) == pytest.approx(0.25)
    assert estimator.update(CpuTimes(own_s=1.0, busy_s=5.0)) == pytest.approx(0.25)  # skipped
    assert estimator.update(CpuTimes(own_s=2.0, busy_s=9.0)) == pytest.approx(0.25)


def test_node_busy_time_leaves_out_idle_iowait_steal_and_counts_guest_once() -> None:
    times = NodeTimes(
        user=10.0, nice=1.0, system=2.0, idle=50.0, iowait=3.0, irq=0.5, softirq=0.5,
        steal=4.0, guest=6.0, guest_nice=1.0,
    )  # fmt: skip
    assert node_busy_s(times) == pytest.approx(14.0)


# ---------------------------------------------------------------------- two runs, one node


def test_two_runs_at_3_to_1_get_75_and_25_percent_and_sum_to_the_node() -> None:
    clock, node = FakeClock(), Node()
    node_counter = Counter(clock, energy_j=5_000.0)
    parent = Proc(1)
    a, b = parent.adopt(Proc(10)), parent.adopt(Proc(20))
    run_a = ApportionedSensor(node_counter, cpu_share(a, node, clock))
    run_b = ApportionedSensor(node_counter, cpu_share(b, node, clock))
    first_a, first_b = run_a.read(), run_b.read()
    for _ in range(5):
        clock.advance(1.0)
        a.user_s += 1.5  # 3:1 of the node's busy time
        b.user_s += 0.5
        node.busy_s += 2.0
        node.idle_s += 0.0
        node_counter.energy_j += 40.0  # 40 W
        last_a, last_b = run_a.read(), run_b.read()
    assert first_a.energy_j == first_b.energy_j == 5_000.0  # the inner origin
    assert last_a.energy_j == pytest.approx(5_000.0 + 150.0)
    assert last_b.energy_j == pytest.approx(5_000.0 + 50.0)
    assert run_a.energy_j == pytest.approx(150.0)
    assert run_b.energy_j == pytest.approx(50.0)
    assert run_a.node_energy_j == run_b.node_energy_j == pytest.approx(200.0)
    assert run_a.energy_j + run_b.energy_j == pytest.approx(run_a.node_energy_j)
    assert run_a.share == pytest.approx(0.75)
    assert run_b.summary().share == pytest.approx(0.25)


def test_a_run_alone_on_a_quiet_node_keeps_all_of_it() -> None:
    clock, node = FakeClock(), Node()
    proc = Proc(10)
    sensor = ApportionedSensor(Counter(clock), cpu_share(proc, node, clock))
    sensor.read()
    for _ in range(3):
        clock.advance(1.0)
        proc.user_s += 0.9
        node.busy_s += 0.9
        assert isinstance(sensor.inner, Counter)
        sensor.inner.energy_j += 10.0
        sensor.read()
    assert sensor.energy_j == pytest.approx(30.0)
    assert not sensor.summary().shared


def test_the_first_share_comes_with_the_first_read_then_once_per_period() -> None:
    clock, node = FakeClock(), Node()
    proc = Proc(10)
    counter = Counter(clock)
    snapshots = 0

    def node_times() -> NodeTimes:
        nonlocal snapshots
        snapshots += 1
        return node.cpu_times()

    source = CpuTimeShare(
        CpuWorld(process=proc, node_cpu_times=node_times, errors=(Gone,)),
        clock=clock,
        period_s=1.0,
    )
    sensor = ApportionedSensor(counter, source)
    sensor.read()  # no busy time yet: 1.0, and asked again at the next read
    for _ in range(20):  # 10 Hz for 2 s, this run 1 of every 4 busy CPU seconds
        clock.advance(0.1)
        proc.user_s += 0.1
        node.busy_s += 0.4
        counter.energy_j += 1.0
        sensor.read()
    assert sensor.share == pytest.approx(0.25)
    assert sensor.energy_j == pytest.approx(20 * 0.25)
    assert snapshots == 1 + 2 + 1  # the baseline, the first two reads, then at 1.1 s


# ---------------------------------------------------------------------- processes


def test_a_child_process_time_counts_while_alive_and_once_reaped() -> None:
    me = Proc(10)
    worker = me.adopt(Proc(11))
    grandchild = worker.adopt(Proc(12))
    processes = RunProcesses(world(me, Node()))
    me.user_s, worker.user_s, grandchild.user_s = 1.0, 2.0, 3.0
    assert processes.cpu_s() == pytest.approx(6.0)
    assert processes.pids() == {10, 11, 12}
    grandchild.exit_and_be_reaped()  # the worker's reaped-children time takes it
    assert processes.cpu_s() == pytest.approx(6.0)
    worker.exit_and_be_reaped()
    assert processes.cpu_s() == pytest.approx(6.0)
    assert processes.pids() == {10}


def test_a_child_that_vanishes_between_listing_and_reading_is_skipped() -> None:
    me = Proc(10)
    kid = me.adopt(Proc(11))
    kid.user_s, me.user_s = 5.0, 1.0
    kid.gone = True  # listed by children(), gone by cpu_times()
    assert RunProcesses(world(me, Node())).cpu_s() == pytest.approx(1.0)


def test_in_a_job_the_other_local_ranks_count_and_other_processes_do_not() -> None:
    job_env = {"LOCAL_RANK": "0", "RANK": "0", "TORCHELASTIC_RUN_ID": "abc"}
    agent = Proc(1)
    rank0 = agent.adopt(Proc(10, job_env))
    rank1 = agent.adopt(Proc(11, {**job_env, "LOCAL_RANK": "1", "RANK": "1"}))
    worker1 = rank1.adopt(Proc(12))
    stranger = agent.adopt(Proc(13, {"LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "other"}))
    for proc, seconds in ((rank0, 1.0), (rank1, 2.0), (worker1, 4.0), (stranger, 8.0)):
        proc.user_s = seconds
    job = job_id_of(job_env)
    assert job == "torchrun-abc"
    assert RunProcesses(world(rank0, Node(), job_id=job)).cpu_s() == pytest.approx(7.0)
    assert RunProcesses(world(rank0, Node())).cpu_s() == pytest.approx(1.0)  # not a job
    assert job_id_of({"TORCHELASTIC_RUN_ID": "abc"}) is None  # no local rank: alone


TICK_S = 0.02
"""Slack of two 100 Hz clock ticks: the kernel rounds each process's times to ticks on
their own (a reaped child's time in its parent is converted again), and floats add."""


def test_a_real_child_process_cpu_time_is_included() -> None:
    processes = RunProcesses(psutil_world({}))
    before_s = processes.cpu_s() - TICK_S
    burn = (
        "import sys, time\n"
        "while time.process_time() < 0.2: pass\n"
        "print('burnt', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        try:
            assert child.stdout.readline().strip() == "burnt"
            times = psutil.Process(child.pid).cpu_times()
            child_s = times.user + times.system
            assert child.pid in processes.pids()
            assert processes.cpu_s() - before_s >= child_s  # alive: counted as a descendant
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=60) == 0
            assert processes.cpu_s() - before_s >= child_s  # reaped: children_user/system
        finally:
            if child.poll() is None:
                child.kill()
    assert child_s >= 0.15


def test_the_real_world_gives_a_share_between_0_and_1() -> None:
    source = CpuTimeShare(period_s=0.0)
    while sum(range(200_000)) < 0:  # some CPU time of our own
        pass
    assert 0.0 <= source.share() <= 1.0
    assert source.method == "CPU-time share"


# ---------------------------------------------------------------------- counters and power


def make_half(clock: FakeClock, counter: PowerSensor) -> ApportionedSensor:
    """A wrapper whose share is exactly 0.5 after the first second."""
    node, proc = Node(), Proc(10)
    sensor = ApportionedSensor(counter, cpu_share(proc, node, clock))
    proc.user_s, node.busy_s = 100.0, 200.0
    return sensor


def test_a_counter_reset_through_the_wrapper_counts_the_energy_since_the_reset() -> None:
    clock = FakeClock()
    counter = Counter(clock, energy_j=1_000.0)
    sensor = make_half(clock, counter)
    sensor.read()
    clock.advance(1.0)
    counter.energy_j = 1_100.0
    assert sensor.read().energy_j == pytest.approx(1_050.0)
    clock.advance(1.0)
    counter.energy_j = 10.0  # the driver reloaded: 10 J since
    with pytest.raises(SensorError, match="held back"):
        sensor.read()
    clock.advance(1.0)
    counter.energy_j = 60.0
    assert sensor.read().energy_j == pytest.approx(1_050.0 + 0.5 * 60.0)
    assert sensor.node_energy_j == pytest.approx(160.0)
    assert sensor.energy_j == pytest.approx(80.0)


def test_a_counter_read_one_joule_low_is_not_a_reset() -> None:
    clock = FakeClock()
    counter = Counter(clock, energy_j=5_000_000.0)
    sensor = make_half(clock, counter)
    sensor.read()
    clock.advance(1.0)
    counter.energy_j = 4_999_999.0
    with pytest.raises(SensorError, match="counter_step_back"):
        sensor.read()
    clock.advance(1.0)
    counter.energy_j = 5_000_100.0
    assert sensor.read().energy_j == pytest.approx(5_000_050.0)
    assert sensor.node_energy_j == pytest.approx(100.0)


def test_a_one_read_dip_to_zero_is_dropped() -> None:
    clock = FakeClock()
    counter = Counter(clock, energy_j=5_000.0)
    sensor = make_half(clock, counter)
    sensor.read()
    clock.advance(1.0)
    counter.energy_j = 0.0
    with pytest.raises(SensorError):
        sensor.read()
    clock.advance(1.0)
    counter.energy_j = 5_100.0
    sensor.read()
    assert sensor.node_energy_j == pytest.approx(100.0)


def test_a_declared_wrap_is_unwrapped_before_the_share() -> None:
    clock = FakeClock()
    counter = Counter(clock, energy_j=990.0)
    counter.energy_wrap_j = 1_000.0
    sensor = make_half(clock, counter)
    sensor.read()
    clock.advance(1.0)
    counter.energy_j = 30.0
    assert sensor.read().energy_j == pytest.approx(990.0 + 20.0)


def test_power_only_sensors_get_their_power_scaled_and_energy_integrated() -> None:
    clock = FakeClock()
    model = PowerModel(clock, power_w=8.0)
    sensor = make_half(clock, model)
    first = sensor.read()
    assert first.energy_j is None
    assert first.power_w == pytest.approx(4.0)
    model.power_w = 6.0
    for _ in range(4):
        clock.advance(1.0)
        reading = sensor.read()
    assert reading.power_w == pytest.approx(3.0)
    assert reading.energy_j is None
    assert sensor.node_energy_j == pytest.approx(0.5 * (8.0 + 6.0) + 3 * 6.0)  # trapezoids
    assert sensor.energy_j == pytest.approx(0.5 * sensor.node_energy_j)


# ---------------------------------------------------------------------- labels and choice


def test_the_wrapper_keeps_device_method_and_period_and_says_it_is_an_estimate() -> None:
    clock = FakeClock()
    sensor = make_half(clock, PowerModel(clock, 8.0))
    assert sensor.device == "cpu:0"
    assert sensor.update_period_s is None
    assert sensor.info.method == "model"
    assert sensor.info.node_wide
    assert sensor.info.note.startswith("load × TDP; apportioned by CPU-time share: an estimate")
    assert "other processes share this node" in sensor.info.note
    assert isinstance(sensor, PowerSensor)
    rapl = make_half(clock, Counter(clock))
    assert rapl.update_period_s == 0.001
    assert rapl.info.method == "counter"


def test_the_summary_says_what_share_of_which_total() -> None:
    clock = FakeClock()
    counter = Counter(clock)
    sensor = make_half(clock, counter)
    sensor.read()
    for _ in range(2):
        clock.advance(1.0)
        counter.energy_j += 100.0
        sensor.read()
    summary = sensor.summary()
    assert summary.energy_j == pytest.approx(100.0)
    assert summary.device_energy_j == pytest.approx(200.0)
    assert summary.shared
    assert summary.method == "CPU-time share"
    assert summary.text == (
        "cpu:0: 50.0% of the device's 200 J attributed to this run (100 J) by CPU-time share,"
        " an estimate (share 0.50–0.50)"
    )
    assert summaries([sensor, counter]) == [summary]


class Share:
    """A share source the test sets."""

    method = "scripted"
    note = "scripted share"

    def __init__(self, value: float) -> None:
        self.value = value

    def share(self) -> float:
        return self.value


def test_apportion_wraps_node_wide_sensors_with_one_source_and_nothing_else() -> None:
    clock = FakeClock()
    cpu, dram = Counter(clock), Counter(clock, device="dram:0")
    gpu = FakeSensor("gpu:0")
    simulated_cpu = FakeSensor("cpu:1")
    made: list[Share] = []

    def factory() -> Share:
        made.append(Share(0.5))
        return made[-1]

    out = apportion([gpu, cpu, dram, simulated_cpu], share_source_factory=factory)
    assert out[0] is gpu and out[3] is simulated_cpu
    assert isinstance(out[1], ApportionedSensor) and isinstance(out[2], ApportionedSensor)
    assert out[1].source is out[2].source is made[0]
    assert len(made) == 1
    assert apportion(out, share_source_factory=factory) == out  # never wrapped twice


def test_apportion_leaves_node_wide_sensors_whole_when_cpu_times_cannot_be_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cpu = Counter(FakeClock())

    def broken() -> Share:
        raise ImportError("No module named 'psutil'")

    assert apportion([cpu], share_source_factory=broken) == [cpu]
    assert "not apportioned" in caplog.text


def test_apportion_defaults_to_the_cpu_time_share_of_this_process_and_its_job() -> None:
    env = {"LOCAL_RANK": "0", "RANK": "0", "TORCHELASTIC_RUN_ID": "xyz"}
    (wrapped,) = apportion([Counter(FakeClock())], env=env)
    assert isinstance(wrapped, ApportionedSensor)
    assert isinstance(wrapped.source, CpuTimeShare)
    assert wrapped.source.world.process.pid == psutil.Process().pid
    assert wrapped.source.world.job_id == "torchrun-xyz"
    assert "its job's other local ranks" in wrapped.info.note


def test_apportion_shares_a_reading_taken_elsewhere_as_read_would() -> None:
    """The sampler's helper process reads the inner counter; the run's wrapper apportions
    each of its readings (``apportion``): the same numbers as reading through the wrapper,
    and the inner sensor here is never read."""
    clock = FakeClock()
    here, elsewhere = Counter(clock, energy_j=1_000.0), Counter(clock, energy_j=1_000.0)
    read_through, fed = make_half(clock, here), make_half(clock, Counter(clock, device="cpu:0"))
    results = []
    for energy_j in (1_000.0, 1_100.0, 1_300.0):
        here.energy_j = elsewhere.energy_j = energy_j
        results.append((read_through.read(), fed.apportion(elsewhere.read())))
        clock.advance(1.0)
    assert [a for a, _ in results] == [b for _, b in results]
    assert fed.energy_j == read_through.energy_j == pytest.approx(150.0)

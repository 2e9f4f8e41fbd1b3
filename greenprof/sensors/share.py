"""Apportion a shared device's energy to this run instead of charging it the whole device.

A CPU package or DRAM counter (RAPL) and the CPU-load model measure the whole node: two
trainings on one node each read the same joules, so summing the two runs counted the
node twice. :class:`ApportionedSensor` wraps such a sensor and reports only this run's
share of each interval's energy; the unapportioned node total stays on the wrapper
(:attr:`ApportionedSensor.node_energy_j`, :meth:`ApportionedSensor.summary`).

How the share is estimated lives with each kind of device: :mod:`greenprof.sensors.cpu_share`
(node-wide devices, by CPU time) and :mod:`greenprof.sensors.nvml_share` (a GPU, by its
compute processes' SM utilization). Both are a :class:`~greenprof.sensors.base.ShareSource`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from greenprof.energy import counter_delta
from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, Reading
from greenprof.sensors.base import Sensor, ShareableSensor, ShareSource
from greenprof.sensors.cpu_share import (
    DEFAULT_PERIOD_S,
    MIN_BUSY_S,
    CpuTimes,
    CpuTimeShare,
    CpuWorld,
    RunProcesses,
    ShareEstimator,
    job_id_of,
    node_busy_s,
    process_cpu_s,
    psutil_world,
)
from greenprof.sensors.guard import GuardEvent, ReadingGuard

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PERIOD_S",
    "MIN_BUSY_S",
    "ApportionSummary",
    "ApportionedSensor",
    "CpuTimeShare",
    "CpuTimes",
    "CpuWorld",
    "RunProcesses",
    "ShareEstimator",
    "ShareSource",
    "apportion",
    "is_apportionable",
    "job_id_of",
    "node_busy_s",
    "process_cpu_s",
    "psutil_world",
    "summaries",
]


# ---------------------------------------------------------------------- the wrapper


@dataclass(frozen=True, slots=True)
class ApportionSummary:
    """What one apportioned device measured, for the run's record at stop."""

    device: str
    method: str
    """How the share was estimated."""
    energy_j: float
    """This run's share of the device's energy since the first read."""
    device_energy_j: float
    """The whole device's energy over the same reads (unapportioned)."""
    shared: bool
    """True when some read's share was below 1 (the device was shared)."""
    min_share: float
    max_share: float

    @property
    def share(self) -> float | None:
        """Average share, energy-weighted (None before any energy was measured)."""
        if self.device_energy_j <= 0.0:
            return None
        return self.energy_j / self.device_energy_j

    @property
    def text(self) -> str:
        """One line for the run's notes."""
        share = self.share
        part = "" if share is None else f"{share:.1%} of "
        return (
            f"{self.device}: {part}the device's {self.device_energy_j:.6g} J attributed to this"
            f" run ({self.energy_j:.6g} J) by {self.method}, an estimate"
            f" (share {self.min_share:.2f}–{self.max_share:.2f})"
        )


class ApportionedSensor:
    """A shared device's sensor that reports only this run's share of its energy.

    Each ``read()`` reads the inner sensor and the share: ``energy_j`` grows by each
    counter step × the share (starting from the inner counter's first value, so with a
    share of 1 the readings are the inner ones); ``power_w`` is the inner power × the
    share; a reading without energy is power only, as the inner one.

    The inner counter goes through its own :class:`ReadingGuard` before its steps are
    scaled: a read 1 J low on a 5 MJ counter must not become a 5 MJ "reset", which the
    sampler's guard could no longer tell apart once scaled. A read that this guard rejects
    or holds back (to tell a reset from a glitch) raises :class:`SensorError` naming the
    reason, and the sampler counts it as a failed read.

    ``node_energy_j`` (alias ``device_energy_j``) is the unapportioned energy since the
    first read, ``energy_j`` this run's part of it, ``share`` the latest share.

    Example::

        cpu = ApportionedSensor(rapl_sensor, CpuTimeShare())
        cpu.read().energy_j  # this run's share;  cpu.node_energy_j: the whole node
    """

    def __init__(self, inner: Sensor, share_source: ShareSource) -> None:
        self.inner = inner
        self.source = share_source
        """Where the share comes from (named apart from :class:`ShareableSensor`'s method)."""
        self.device = inner.device
        self.update_period_s = inner.update_period_s
        self.energy_wrap_j: float | None = None
        """None: the inner counter's wrap is undone by this wrapper's own guard."""
        self.share = 1.0
        self.node_energy_j = 0.0
        self.energy_j = 0.0
        self._guard = ReadingGuard.for_sensor(inner, on_problem=self._problem)
        self._problem_message: str | None = None
        self._last_inner_j: float | None = None
        self._out_j: float | None = None
        self._last_power: tuple[float, float, float] | None = None
        """(time_s, inner power W, share) of the last power reading, for the totals."""
        self._share_range: tuple[float, float] | None = None
        """(lowest, highest) share applied so far."""
        self._counted_counter = False

    @property
    def device_energy_j(self) -> float:
        """The unapportioned energy since the first read (the same as ``node_energy_j``)."""
        return self.node_energy_j

    @property
    def info(self) -> DeviceInfo:
        """The inner sensor's info, its method kept, with the share's caveat in the note."""
        base = self.inner.info
        extra = self.source.note
        if not extra:
            return base
        note = f"{base.note}; {extra}" if base.note else extra
        return dataclasses.replace(base, note=note)

    def _problem(self, event: GuardEvent) -> None:
        self._problem_message = f"{event.reason}: {event.message}"

    def read(self) -> Reading:
        """The inner reading, apportioned. Raises what the inner sensor raises."""
        return self.apportion(self.inner.read())

    def apportion(self, raw: Reading) -> Reading:
        """This process's share of ``raw``, a reading of the inner sensor taken here or
        elsewhere (the sampling helper process reads the inner sensor, the run keeps this
        wrapper: its share source and totals are the run's). Readings in time order.

        Raises :class:`SensorError` when the inner reading is not used (the guard held a
        counter drop back, or rejected it)."""
        share = min(max(float(self.source.share()), 0.0), 1.0)
        self._problem_message = None
        passed = self._guard.check(raw)
        if not passed:
            why = self._problem_message or (
                "counter dropped; held back for one read to tell a reset from a glitch"
            )
            raise SensorError(f"{self.device}: inner reading not used ({why})")
        reading = passed[-1]
        self.share = share
        low, high = self._share_range or (share, share)
        self._share_range = (min(low, share), max(high, share))
        energy_j = self._apportion_counter(reading.energy_j, share)
        self._integrate_power(reading, share)
        return Reading(
            device=self.device,
            time_s=reading.time_s,
            energy_j=energy_j,
            power_w=None if reading.power_w is None else reading.power_w * share,
            utilization_pct=reading.utilization_pct,
            memory_used_bytes=reading.memory_used_bytes,
            temperature_c=reading.temperature_c,
        )

    def _apportion_counter(self, inner_j: float | None, share: float) -> float | None:
        if inner_j is None:
            return None
        if self._last_inner_j is None or self._out_j is None:
            self._out_j = inner_j
        else:
            delta_j = counter_delta(self._last_inner_j, inner_j)
            self._out_j += delta_j * share
            self.node_energy_j += delta_j
            self.energy_j += delta_j * share
            self._counted_counter = True
        self._last_inner_j = inner_j
        return self._out_j

    def _integrate_power(self, reading: Reading, share: float) -> None:
        """Totals for a power-only sensor: the trapezoid the attribution also uses."""
        if reading.power_w is None:
            return
        last, self._last_power = self._last_power, (reading.time_s, reading.power_w, share)
        if last is None or self._counted_counter or reading.energy_j is not None:
            return
        t0_s, p0_w, s0 = last
        dt_s = reading.time_s - t0_s
        self.node_energy_j += 0.5 * (p0_w + reading.power_w) * dt_s
        self.energy_j += 0.5 * (p0_w * s0 + reading.power_w * share) * dt_s

    def summary(self) -> ApportionSummary:
        """The energies so far, for the run's record (see :attr:`ApportionSummary.text`)."""
        low, high = self._share_range or (1.0, 1.0)
        return ApportionSummary(
            device=self.device,
            method=self.source.method,
            energy_j=self.energy_j,
            device_energy_j=self.node_energy_j,
            shared=low < 1.0,
            min_share=low,
            max_share=high,
        )

    def close(self) -> None:
        """Close the inner sensor."""
        self.inner.close()


# ---------------------------------------------------------------------- choosing


def is_apportionable(sensor: Sensor) -> bool:
    """A node-wide sensor that measures or models real hardware (simulated ones are not
    apportioned: their figures are scripted, and already this run's)."""
    info = sensor.info
    return info.node_wide and info.method != "simulated"


def apportion(
    sensors: Sequence[Sensor],
    *,
    env: Mapping[str, str] = os.environ,
    share_source_factory: Callable[[], ShareSource] | None = None,
    gpu_share: bool = True,
) -> list[Sensor]:
    """The sensors to sample, each shared device wrapped in an :class:`ApportionedSensor`.

    Node-wide sensors (CPU, DRAM; see :func:`is_apportionable`) share one source from
    ``share_source_factory`` (default: :class:`CpuTimeShare` over psutil, the job read from
    ``env``). A sensor that
    offers ``share_source()`` (the NVML GPU sensor: its compute processes) is wrapped with
    its own when ``gpu_share``. Everything else, and a sensor already apportioned, is
    returned as is. When the CPU times cannot be read at all (no psutil), node-wide sensors
    stay whole and a warning is logged: a figure too large, never a missing one.
    """
    out: list[Sensor] = []
    cpu_source: ShareSource | None = None
    cpu_failed = False
    for sensor in sensors:
        if isinstance(sensor, ApportionedSensor):
            out.append(sensor)
        elif is_apportionable(sensor):
            if cpu_source is None and not cpu_failed:
                try:
                    factory = share_source_factory or (lambda: CpuTimeShare(psutil_world(env)))
                    cpu_source = factory()
                except Exception as exc:
                    logger.warning("greenprof: node-wide energy not apportioned (%s)", exc)
                    cpu_failed = True
            out.append(sensor if cpu_source is None else ApportionedSensor(sensor, cpu_source))
        elif gpu_share and isinstance(sensor, ShareableSensor):
            out.append(_with_own_share(sensor))
        else:
            out.append(sensor)
    return out


def _with_own_share(sensor: ShareableSensor) -> Sensor:
    """``sensor`` wrapped with the source it offers (None: it cannot be shared, e.g. MIG)."""
    try:
        source = sensor.share_source()
    except Exception as exc:
        logger.warning("greenprof: %s not apportioned (%s)", sensor.device, exc)
        source = None
    return sensor if source is None else ApportionedSensor(sensor, source)


def summaries(sensors: Iterable[Sensor]) -> list[ApportionSummary]:
    """The summaries of the apportioned sensors among ``sensors``."""
    return [s.summary() for s in sensors if isinstance(s, ApportionedSensor)]

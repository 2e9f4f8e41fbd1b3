"""Simulated sensors shipped with the package: for demos, tests and the TUI's demo mode.

Their readings are labelled ``simulated``: they are never a measurement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from greenprof.records import DeviceInfo, DeviceKind, Reading
from greenprof.sensors.base import NODE_WIDE_KINDS, device_kind


class FakeSensor:
    """A device whose power follows ``power_w(t)``, exposed like a hardware counter.

    The cumulative energy counter advances only every ``update_period_s`` (with
    ``phase_s`` offset), as NVIDIA's counter does about every 100 ms; between
    updates a read returns the last updated value. ``power_w`` is reported as the
    instantaneous power when ``report_power`` is set, or, with ``power_window_s``, as
    its mean over the last ``power_window_s`` (a boxcar moving average, as recent
    NVIDIA GPUs report ``nvmlDeviceGetPowerUsage``; declared in ``info``). Energy is
    integrated exactly for piecewise-constant power at ``resolution_s`` granularity.

    Example::

        sensor = FakeSensor("gpu:0", power_w=lambda t: 250.0)
        reading = sensor.read()
    """

    def __init__(
        self,
        device: str = "gpu:0",
        power_w: Callable[[float], float] | float = 100.0,
        *,
        update_period_s: float = 0.1,
        phase_s: float = 0.0,
        report_counter: bool = True,
        report_power: bool = True,
        clock: Callable[[], float] = time.monotonic,
        resolution_s: float = 0.001,
        name: str = "simulated device",
        kind: DeviceKind | None = None,
        power_window_s: float | None = None,
    ) -> None:
        self.device = device
        self._power_window_s = power_window_s
        self._power = power_w if callable(power_w) else (lambda _t, p=float(power_w): p)
        self._constant_w = None if callable(power_w) else float(power_w)
        self.update_period_s = update_period_s
        self._phase_s = phase_s
        self._report_counter = report_counter
        self._report_power = report_power
        self._clock = clock
        self._resolution_s = resolution_s
        self.energy_wrap_j: float | None = None
        resolved_kind = kind or device_kind(device)
        self.info = DeviceInfo(
            device=device,
            kind=resolved_kind,
            method="simulated",
            name=name,
            node_wide=resolved_kind in NODE_WIDE_KINDS,
            note="simulated sensor: not a measurement",
            power_window_s=power_window_s,
        )
        self._origin_s = clock()
        self._integrated_to_s = self._origin_s
        self._energy_j = 0.0
        self._closed = False

    def _integrate_to(self, t_s: float) -> None:
        if self._constant_w is not None:  # closed form: no per-millisecond loop
            self._energy_j += self._constant_w * max(0.0, t_s - self._integrated_to_s)
            self._integrated_to_s = max(self._integrated_to_s, t_s)
            return
        step = self._resolution_s
        t = self._integrated_to_s
        while t < t_s:
            dt = min(step, t_s - t)
            self._energy_j += self._power(t + dt / 2) * dt
            t += dt
        self._integrated_to_s = max(self._integrated_to_s, t_s)

    def _last_update_s(self, t_s: float) -> float:
        period = self.update_period_s
        if period <= 0:
            return t_s
        k = math.floor((t_s - self._origin_s - self._phase_s) / period)
        return max(self._origin_s, self._origin_s + self._phase_s + k * period)

    def read(self) -> Reading:
        if self._closed:
            raise RuntimeError(f"sensor {self.device} is closed")
        now = self._clock()
        self._integrate_to(self._last_update_s(now))
        return Reading(
            device=self.device,
            time_s=now,
            energy_j=self._energy_j if self._report_counter else None,
            power_w=self._reported_power_w(now) if self._report_power else None,
        )

    def _reported_power_w(self, now_s: float) -> float:
        """Instantaneous, or the boxcar mean over the last ``power_window_s``."""
        window_s = self._power_window_s
        if not window_s:
            return self._power(now_s)
        if self._constant_w is not None:
            return self._constant_w
        n = max(1, round(window_s / self._resolution_s))
        dt = window_s / n
        return sum(self._power(now_s - window_s + (k + 0.5) * dt) for k in range(n)) / n

    def close(self) -> None:
        self._closed = True


class ReplaySensor:
    """Replays recorded ``(offset_s, energy_j, power_w)`` rows in real time, looping.

    Offsets are seconds from the first read; the counter keeps increasing across
    loops so a replay can drive a live view for as long as it runs.
    """

    def __init__(
        self,
        device: str,
        rows: Sequence[tuple[float, float | None, float | None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "replayed device",
        power_window_s: float | None = None,
    ) -> None:
        """``power_window_s``: what the recorded power column averages over (declared in
        ``info``; e.g. 1.0 for a trace of NVML's ``nvmlDeviceGetPowerUsage``)."""
        if len(rows) < 2:
            raise ValueError("a replay needs at least two rows")
        self.device = device
        self._rows = list(rows)
        self._clock = clock
        self._start_s: float | None = None
        self.update_period_s: float | None = None
        """Unknown: the trace's rows set it."""
        self.energy_wrap_j: float | None = None
        kind = device_kind(device)
        self.info = DeviceInfo(
            device=device,
            kind=kind,
            method="simulated",
            name=name,
            node_wide=kind in NODE_WIDE_KINDS,
            note="replayed trace: not a live measurement",
            power_window_s=power_window_s,
        )

    def read(self) -> Reading:
        now = self._clock()
        if self._start_s is None:
            self._start_s = now
        span = self._rows[-1][0] - self._rows[0][0]
        loop_energy = (self._rows[-1][1] or 0.0) - (self._rows[0][1] or 0.0)
        elapsed = now - self._start_s
        loops, offset = divmod(elapsed, span) if span > 0 else (0.0, 0.0)
        offset += self._rows[0][0]
        row = self._rows[0]
        for candidate in self._rows:
            if candidate[0] > offset:
                break
            row = candidate
        energy = None if row[1] is None else row[1] + loops * loop_energy
        return Reading(device=self.device, time_s=now, energy_j=energy, power_w=row[2])

    def close(self) -> None:
        self._start_s = None

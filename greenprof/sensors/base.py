"""The sensor protocol: anything that can be polled for one device's energy or power."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from greenprof.records import DeviceInfo, DeviceKind, Method, Reading


@runtime_checkable
class PowerSensor(Protocol):
    """Reads one device.

    Required: ``device`` (e.g. ``gpu:0``), ``read()`` and ``close()``. Optional
    attributes that greenprof uses when present: ``info`` (a
    :class:`~greenprof.records.DeviceInfo`), ``update_period_s`` (how often the
    underlying counter changes, when known).
    """

    device: str

    def read(self) -> Reading:
        """Poll the device now. May raise; the sampler logs and skips the reading."""
        ...

    def close(self) -> None:
        """Release handles; further reads are not allowed."""
        ...


def describe(sensor: PowerSensor) -> DeviceInfo:
    """The sensor's :class:`DeviceInfo`, or one derived from what it offers."""
    info = getattr(sensor, "info", None)
    if isinstance(info, DeviceInfo):
        return info
    device = sensor.device
    prefix = device.split(":", 1)[0]
    kind: DeviceKind = prefix if prefix in ("gpu", "cpu", "dram") else "other"  # type: ignore[assignment]
    method: Method = getattr(sensor, "method", "counter")
    return DeviceInfo(
        device=device,
        kind=kind,
        method=method,
        name=str(getattr(sensor, "name", type(sensor).__name__)),
        node_wide=kind in ("cpu", "dram"),
    )

"""The sensors a run reads: the caller's (``Profiler(sensors=[...])``, checked before
anything opens) or the best detected here (apportioned where shared). Whose they are
decides who closes them: detected sensors are the run's; explicit ones stay the caller's
until sampling has begun (a caller may fix a bad database path and start again)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from greenprof.errors import ConfigError
from greenprof.sampler import close_sensors
from greenprof.sensors.base import PowerSensor

SENSOR_CLOSE_TIMEOUT_S = 1.0
"""Closing waits at most this long for the sensors' ``close()`` (a wedged driver must not
hold the training script at exit)."""


@dataclass(frozen=True, slots=True)
class SensorSet:
    """The sensors of a run, and whether closing them is ours to do (detected ones are;
    explicit ones belong to the caller until sampling has begun)."""

    sensors: tuple[PowerSensor, ...]
    owned: bool
    notes: tuple[str, ...] = ()


def detect(env: Mapping[str, str]) -> SensorSet:
    """The best sensors available here, apportioned to this run where shared."""
    from greenprof.sensors.detect import detect_sensors
    from greenprof.sensors.share import apportion

    detection = detect_sensors(env=env)
    try:
        # Node-wide sensors (and GPUs other processes use too) measure more than this run:
        # its share is attributed, labelled as an estimate (greenprof.sensors.share).
        sensors = apportion(list(detection.sensors), env=env)
    except BaseException:
        close_sensors(detection.sensors, timeout_s=SENSOR_CLOSE_TIMEOUT_S)
        raise
    return SensorSet(tuple(sensors), owned=True, notes=detection.notes)


def explicit_sensors(sensors: object) -> SensorSet:
    """Sensors the caller passed (``Profiler(sensors=[...])``), checked before anything is
    opened: each has a ``device`` string and ``read()``; no device twice."""
    if isinstance(sensors, (str, bytes)) or not isinstance(sensors, Iterable):
        raise ConfigError(f"sensors must be a list of sensors; got {type(sensors).__name__}")
    checked = list(sensors)
    for sensor in checked:
        device = getattr(sensor, "device", None)
        if not (isinstance(device, str) and callable(getattr(sensor, "read", None))):
            raise ConfigError(
                f"{sensor!r} is not a sensor: a sensor has a `device` string, `read()` and "
                "`close()` (see greenprof.sensors.PowerSensor)"
            )
    devices = [sensor.device for sensor in checked]
    duplicates = sorted({d for d in devices if devices.count(d) > 1})
    if duplicates:
        raise ConfigError(f"two sensors read the same device: {', '.join(duplicates)}")
    return SensorSet(tuple(checked), owned=False)

"""Closing sensors with a bound: a wedged driver's ``close()`` must not hold the training
script at exit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from greenprof.sensors.base import Sensor

log = logging.getLogger("greenprof")


def close_sensors(sensors: Iterable[Sensor], *, timeout_s: float = 0.5) -> tuple[str, ...]:
    """Close every sensor, each on its own daemon thread, waiting ``timeout_s`` in all.

    A wedged sensor's ``close()`` may block as its ``read()`` did; this returns anyway.
    Errors are logged (debug) and not raised. Returns the devices whose ``close()`` had
    not returned in time (their threads are left parked).
    """
    threads: list[tuple[str, threading.Thread]] = []
    for sensor in sensors:
        device = sensor.device
        thread = threading.Thread(
            target=_close_one, args=(sensor, device), name=f"greenprof-close-{device}", daemon=True
        )
        thread.start()
        threads.append((device, thread))
    give_up = time.monotonic() + timeout_s
    for _, thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    late = tuple(device for device, thread in threads if thread.is_alive())
    if late:
        log.warning("greenprof: closing %s did not finish within %g s", ", ".join(late), timeout_s)
    return late


def _close_one(sensor: Sensor, device: str) -> None:
    try:
        sensor.close()
    except Exception as exc:
        log.debug("greenprof: closing %s failed: %r", device, exc)

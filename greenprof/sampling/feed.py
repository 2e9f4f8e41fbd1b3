"""Whether a sensor is an apportioned one, without importing the sharing module.

A shared device's :class:`~greenprof.sensors.share.ApportionedSensor` belongs to the run:
its share source looks at this process's tree, and its summary is written on the run at
stop. So it stays in the training process while the helper reads its inner sensor, and
the sampler hands each of the helper's readings to its ``apportion()``.
"""

from __future__ import annotations

import sys

from greenprof.sensors.base import Sensor


def is_apportioned(sensor: Sensor) -> bool:
    """An :class:`~greenprof.sensors.share.ApportionedSensor` (without importing the module
    where nothing was apportioned)."""
    share = sys.modules.get("greenprof.sensors.share")
    return share is not None and isinstance(sensor, share.ApportionedSensor)

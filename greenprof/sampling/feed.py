"""An apportioned sensor whose inner sensor the helper process reads.

A shared device's :class:`~greenprof.sensors.share.ApportionedSensor` belongs to the run:
its share source looks at this process's tree, and its summary is written on the run at
stop. So it stays in the training process, and while the helper reads its inner sensor
a :class:`Feed` stands in for that inner sensor: the sampler puts each of the helper's
readings in the feed and calls the wrapper's ``read()``, which apportions it as usual.
The inner sensor is given back at stop (or when the helper fails and the wrapper is read
here again).
"""

from __future__ import annotations

import sys

from greenprof.records import Reading
from greenprof.sensors.base import Sensor


class Feed:
    """Stands in for an apportioned sensor's inner sensor while the helper reads it: its
    ``read()`` returns the helper's reading being apportioned."""

    def __init__(self, inner: Sensor) -> None:
        self.inner = inner
        self.device = inner.device
        self.info = inner.info
        self.update_period_s = inner.update_period_s
        self.energy_wrap_j = inner.energy_wrap_j
        self.reading: Reading | None = None

    def read(self) -> Reading:
        assert self.reading is not None
        return self.reading

    def close(self) -> None:
        self.inner.close()


def is_apportioned(sensor: Sensor) -> bool:
    """An :class:`~greenprof.sensors.share.ApportionedSensor` (without importing the module
    where nothing was apportioned)."""
    share = sys.modules.get("greenprof.sensors.share")
    return share is not None and isinstance(sensor, share.ApportionedSensor)

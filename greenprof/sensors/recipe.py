"""How to open a sensor again in another process: a picklable recipe.

The sampler reads sensors in a helper process so that a training loop holding the GIL
cannot starve the polls (:mod:`greenprof.sampler`). An open sensor (a driver handle, a
session) cannot cross a process boundary; its recipe can: the name of a factory
(``module:function``) and plain arguments. The helper calls it to open its own sensor
of the same device. Where sensors come from (:func:`greenprof.sensors.detect.sensor_recipe`
for the detected ones, :func:`spawnable` for any other) is where their recipes are known;
a sensor without one is read on a thread of the training process, as before.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from greenprof.records import DeviceInfo, Reading
from greenprof.sensors.base import Sensor, as_sensor


@dataclass(frozen=True, slots=True)
class SensorRecipe:
    """``factory(*args, **kwargs)`` opens a sensor of ``device``; every part picklable.

    ``factory`` is ``"package.module:function"`` (a class is a function here)."""

    device: str
    factory: str
    args: tuple[object, ...] = ()
    kwargs: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, device: str, factory: str, *args: object, **kwargs: object) -> SensorRecipe:
        return cls(device, factory, args, tuple(sorted(kwargs.items())))

    def open(self) -> Sensor:
        """Open the sensor (in the calling process). Raises what the factory raises, and
        ValueError when it opens another device than the recipe says."""
        module_name, _, name = self.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), name)
        sensor = as_sensor(factory(*self.args, **dict(self.kwargs)))
        if sensor.device != self.device:
            sensor.close()
            raise ValueError(f"recipe {self.factory} opened {sensor.device!r}, not {self.device!r}")
        return sensor


class RecipeSensor:
    """A sensor opened here from its recipe, which it carries along (``recipe``).

    The sampler reads the recipe's own sensor in its helper process; this one is read
    only where no helper process can be started (then it is the fallback, read on a
    thread here). Both see the same device; they are never read for the same run.

    Example::

        sensor = spawnable("greenprof.sensors.fake:FakeSensor", "gpu:0", 250.0)
        greenprof.Profiler("run", sensors=[sensor])
    """

    def __init__(self, recipe: SensorRecipe) -> None:
        self.recipe = recipe
        self.inner = recipe.open()
        self.device = self.inner.device

    @property
    def info(self) -> DeviceInfo:
        return self.inner.info

    @property
    def update_period_s(self) -> float | None:
        return self.inner.update_period_s

    @property
    def energy_wrap_j(self) -> float | None:
        return self.inner.energy_wrap_j

    def read(self) -> Reading:
        """The inner sensor's reading (the fallback: read in this process)."""
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def spawnable(factory: str, *args: object, **kwargs: object) -> RecipeSensor:
    """A sensor the sampler can read in its helper process: ``factory(*args, **kwargs)``
    (``"module:function"``, every argument picklable; the first argument or the
    ``device`` keyword is the device id, as for every greenprof sensor)."""
    device = kwargs.get("device", args[0] if args else None)
    if not isinstance(device, str):
        raise TypeError("spawnable() needs the device id as the first argument or device=")
    return RecipeSensor(SensorRecipe.of(device, factory, *args, **kwargs))


def recipe_of(sensor: object) -> SensorRecipe | None:
    """The recipe a sensor carries (a :class:`RecipeSensor`), else None."""
    return sensor.recipe if isinstance(sensor, RecipeSensor) else None

"""A step's own loss from a framework's running mean, without syncing the training loop.

Keras 3 reports ``logs["loss"]`` as the mean of the epoch's batch losses so far, each
batch weighted by its number of samples (its loss tracker is a ``Mean`` updated with
``sample_weight=`` the batch size), not the batch's own loss. After the batches of one
step (one execution of the step function: one batch, or up to ``steps_per_execution``)
the running weighted sum grows by that step's share, so the step's loss — the
sample-weighted mean over the batches it ran — is::

    loss = (W_k·mean_k − W_(k−1)·mean_(k−1)) / (W_k − W_(k−1))

with ``W`` the samples seen in the epoch so far. The means are whatever the framework
returned (often device tensors whose value is not computed yet): :class:`StepLoss` keeps
them as they are and does the arithmetic only when greenprof converts the loss with
``float()``, on its writer thread, so the training thread never waits for the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsFloat

__all__ = ["RunningMeanLoss", "StepLoss", "running_loss_of"]


@dataclass(frozen=True, slots=True)
class StepLoss:
    """One step's loss, computed from two running means when ``float()`` asks for it.

    Example::

        float(StepLoss(mean=2.5, weight=20.0, previous=3.0, previous_weight=10.0))  # 2.0
    """

    mean: SupportsFloat
    weight: float
    previous: SupportsFloat | None
    previous_weight: float

    def __float__(self) -> float:
        mean = float(self.mean)
        if self.previous is None or self.previous_weight <= 0:
            return mean
        step_weight = self.weight - self.previous_weight
        if step_weight <= 0:
            return mean
        return (self.weight * mean - self.previous_weight * float(self.previous)) / step_weight


class RunningMeanLoss:
    """Turns the running mean reported after each step into that step's loss (used by
    one training thread; :meth:`reset` at each epoch start, when the framework resets
    its mean).

    Example::

        losses = RunningMeanLoss()
        losses.step(logs["loss"], samples=32)  # a StepLoss, float() it later
    """

    def __init__(self) -> None:
        self._previous: SupportsFloat | None = None
        self._weight = 0.0

    def reset(self) -> None:
        """A new epoch: the framework's running mean starts again."""
        self._previous = None
        self._weight = 0.0

    def step(self, mean: SupportsFloat, samples: int | None) -> StepLoss:
        """The loss of the step that just ran ``samples`` samples (None: unknown, the
        step weighs as much as any other) and after which the running mean is ``mean``."""
        weight = self._weight + (float(samples) if samples else 1.0)
        loss = StepLoss(mean, weight, self._previous, self._weight)
        self._previous, self._weight = mean, weight
        return loss


def running_loss_of(logs: Any) -> SupportsFloat | None:
    """The ``loss`` a Keras step function returned: its logs dict, or (JAX backend) a
    ``(logs, state)`` pair; None when there is none."""
    if isinstance(logs, tuple) and logs and isinstance(logs[0], dict):
        logs = logs[0]
    if not isinstance(logs, dict):
        return None
    value = logs.get("loss")
    return value if value is not None and hasattr(value, "__float__") else None

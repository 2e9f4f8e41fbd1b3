"""``greenprof demo``: a real, small PyTorch training on this machine, profiled.

It trains a small convolutional network on synthetic image data (no download) on the
CPU, or on the first GPU when CUDA is available, with whichever sensors this machine
has, and stores the run like any other.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from greenprof.errors import ConfigError
from greenprof.profiler import Profiler


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The demo training's knobs."""

    steps: int = 300
    batch_size: int = 64
    epochs: int = 3
    width: int = 32
    seed: int = 0


def run_demo(
    profiler: Profiler,
    config: DemoConfig,
    *,
    progress: TextIO | None = sys.stderr,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Train for ``config.steps`` steps under ``profiler``; returns the final loss."""
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ConfigError(
            "the demo trains a real PyTorch model: install torch "
            "(`pip install 'greenprof[torch]'`, or `make demo`, which sets everything up)"
        ) from exc

    torch.manual_seed(config.seed)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    model = nn.Sequential(
        nn.Conv2d(3, config.width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(config.width, config.width * 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(config.width * 2 * 8 * 8, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    # A learnable synthetic task, fresh data every step (nothing to memorise): noise
    # images with a faint bright band at rows 3×label .. 3×label+2.
    rows = torch.arange(32)

    def batch() -> tuple[Any, Any]:
        y = torch.randint(0, 10, (config.batch_size,))
        band = ((rows[None, :] // 3) == y[:, None]).float()[:, None, :, None]
        return torch.rand(config.batch_size, 3, 32, 32) + 0.2 * band, y

    steps_per_epoch = max(1, config.steps // config.epochs)
    loss_value = float("nan")
    last_report = clock()
    for step in range(config.steps):
        if step % steps_per_epoch == 0:
            profiler.epoch_begin(step // steps_per_epoch)
        x, y = (tensor.to(device) for tensor in batch())
        with profiler.step(samples=config.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        if progress is not None and (clock() - last_report >= 1.0 or step == config.steps - 1):
            loss_value = float(loss.detach())
            last_report = clock()
            progress.write(f"\r  step {step + 1}/{config.steps}  loss {loss_value:.3f}  ")
            progress.flush()
    if progress is not None:
        progress.write("\n")
    return float(loss.detach())

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

from greenprof import formatting as fmt
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
    """Train for ``config.steps`` steps in ``config.epochs`` epochs under ``profiler``,
    reporting progress on ``progress`` (None: silent); returns the final loss."""
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

    report = Progress(config.steps, progress, clock=clock)
    loss: Any = None  # the last step's loss, detached from its graph
    for step in range(config.steps):
        epoch = epoch_of(step, config.steps, config.epochs)
        if step == 0 or epoch != epoch_of(step - 1, config.steps, config.epochs):
            profiler.epoch_begin(epoch)
        x, y = (tensor.to(device) for tensor in batch())
        with profiler.step(samples=config.batch_size) as marked:
            optimizer.zero_grad(set_to_none=True)
            computed = loss_fn(model(x), y)
            computed.backward()
            optimizer.step()
            loss = marked.loss = computed.detach()  # converted off this thread: no GPU sync
        report.step_done(step + 1, loss)
    report.finish()
    return float("nan") if loss is None else float(loss)


def epoch_of(step: int, steps: int, epochs: int) -> int:
    """The epoch of ``step`` (0-based) when ``steps`` are split into ``epochs`` as evenly
    as they go: exactly ``epochs`` epochs (fewer only when there are fewer steps), each
    within one step of the others. (Epochs of ``steps // epochs`` steps once made
    ``--steps 10 --epochs 3`` record 4 epochs: 3+3+3+1.)"""
    return step * min(epochs, steps) // steps


class Progress:
    """The demo's progress line: step, loss and the time left (ETA, from the mean step
    time so far). On a terminal, one line updated in place about once a second; in a log
    (not a terminal), whole lines, one every ``log_every_s``: no ``\r`` joins them.

    Example::

        report = Progress(300, sys.stderr)
        report.step_done(1, loss); ...; report.finish()
    """

    def __init__(
        self,
        steps: int,
        stream: TextIO | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every_s: float = 10.0,
    ) -> None:
        self._steps = steps
        self._stream = stream
        self._clock = clock
        self._tty = stream is not None and _is_terminal(stream)
        self._every_s = 1.0 if self._tty else log_every_s
        self._started_s = clock()
        self._last_s = self._started_s
        self._wrote = False

    def step_done(self, done: int, loss: Any) -> None:
        """Step ``done`` (1-based) has ended with ``loss``; report if it is time."""
        if self._stream is None:
            return
        now_s = self._clock()
        if now_s - self._last_s < self._every_s and done != self._steps:
            return
        self._last_s = now_s
        text = progress_text(done, self._steps, float(loss), now_s - self._started_s)
        if self._tty:
            self._stream.write(f"\r{text}  ")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._wrote = True

    def finish(self) -> None:
        """End the line updated in place (a log's lines are already whole)."""
        if self._stream is not None and self._tty and self._wrote:
            self._stream.write("\n")
            self._stream.flush()


def progress_text(done: int, steps: int, loss: float, elapsed_s: float) -> str:
    """``  step 120/300  loss 1.234  ETA 12.3 s`` (``done`` at the end)."""
    if done >= steps:
        left = f"done in {fmt.duration(elapsed_s)}"
    else:
        left = f"ETA {fmt.duration(elapsed_s / done * (steps - done))}"
    shown = f"{loss:.3f}" if abs(loss) >= 0.01 or loss == 0 else f"{loss:.2e}"  # not 0.000
    return f"  step {done}/{steps}  loss {shown}  {left}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream: not a terminal
        return False

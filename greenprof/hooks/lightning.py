"""PyTorch Lightning: a Callback, one step per optimizer step, epochs, global rank.

Usage (one line)::

    trainer = L.Trainer(callbacks=[greenprof.hooks.lightning.GreenprofCallback()])

It records into the given profiler, else the running one (``@greenprof.profile``), else
runs its own for the duration of ``fit``. A step ends when ``trainer.global_step``
advances (so gradient accumulation makes one step of several batches, whose samples are
summed); on CUDA the end is a completed CUDA event, as in :mod:`greenprof.hooks.torch`.

Multi-process (DDP, torchrun, SLURM): every rank runs its own callback and its own
profiler (its own run, tagged ``global_rank`` / ``world_size``), which measures the
devices of that process; node-wide sensors follow the profiler's sensor detection. The
runs of one job share the run name, so they can be summed per job.
"""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone `pytorch_lightning` distribution
    from pytorch_lightning import Callback  # type: ignore[assignment]

from greenprof.hooks._common import ProfilerLease, batch_size, claim, release_claim
from greenprof.hooks.torch import StepEnder
from greenprof.profiler import Profiler

__all__ = ["GreenprofCallback"]


class GreenprofCallback(Callback):
    """Per-optimizer-step energy for a Lightning ``Trainer``.

    Args:
        profiler: where steps go (default: the running profiler, else its own for the
            duration of ``fit``, configured by ``profiler_options``).
        samples: samples per step, when the batch size cannot be inferred.

    Example::

        trainer = L.Trainer(max_epochs=3, callbacks=[GreenprofCallback(run="resnet")])
    """

    def __init__(
        self, profiler: Profiler | None = None, *, samples: int | None = None, **options: Any
    ) -> None:
        super().__init__()
        self._given = profiler
        self._options = options
        self._samples = samples
        self._lease: ProfilerLease | None = None
        self._ender: StepEnder | None = None
        self._last_step = 0
        self._pending: int | None = None

    @property
    def profiler(self) -> Profiler | None:
        """The profiler of the current ``fit`` (None outside it)."""
        return None if self._ender is None else self._ender.profiler

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        options = dict(self._options)
        tags = dict(options.pop("tags", None) or {})
        tags.setdefault("global_rank", trainer.global_rank)
        tags.setdefault("world_size", trainer.world_size)
        options["tags"] = tags
        self._lease = ProfilerLease(self._given, "lightning", options)
        profiler = self._lease.acquire()
        claim(profiler, "lightning")
        self._ender = StepEnder(profiler)
        self._last_step = trainer.global_step
        self._pending = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._ender is not None:
            self._ender.epoch(trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self._samples if self._samples is not None else batch_size(batch)
        if n is not None:
            self._pending = (self._pending or 0) + n

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self._ender is None or step == self._last_step:
            return
        self._last_step = step
        samples, self._pending = self._pending, None
        self._ender.end(samples)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish("completed", None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self._finish("interrupted", "KeyboardInterrupt")
        else:
            self._finish("failed", f"{type(exception).__name__}: {exception}")

    def _finish(self, status: Any, error: str | None) -> None:
        ender, self._ender = self._ender, None
        lease, self._lease = self._lease, None
        if ender is not None:
            ender.close()
            release_claim(ender.profiler, "lightning")
        if lease is not None:
            lease.release(status, error)

"""Hugging Face Transformers: a ``TrainerCallback``, one step per optimizer step.

Usage (one line)::

    trainer = Trainer(..., callbacks=[greenprof.hooks.transformers.GreenprofCallback()])

It records into the given profiler, else the running one (``@greenprof.profile``), else
runs its own for the duration of ``train()``. Steps are the Trainer's optimizer steps
(``on_step_end``, after gradient accumulation); samples per step are
``per_device_train_batch_size × gradient_accumulation_steps`` of this process (the last,
partial batch of an epoch is counted as full). On CUDA a step's end is a completed CUDA
event, as in :mod:`greenprof.hooks.torch`.

Multi-process: every process (``args.process_index``) runs its own profiler and run,
tagged ``global_rank`` / ``world_size``, measuring its own devices.

The Trainer tells callbacks nothing when training raises: a run this callback started
is then closed as failed when the interpreter exits. Wrap the call in
``@greenprof.profile(...)`` (the callback joins it) to have the failure recorded at once.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from greenprof.hooks._common import ProfilerLease, claim, release_claim
from greenprof.hooks.torch import StepEnder
from greenprof.profiler import Profiler

__all__ = ["GreenprofCallback"]


class GreenprofCallback(TrainerCallback):
    """Per-optimizer-step energy for a ``transformers.Trainer``.

    Args:
        profiler: where steps go (default: the running profiler, else its own for the
            duration of ``train()``, configured by ``profiler_options``).
        samples: samples per step (default: batch size × accumulation steps).

    Example::

        Trainer(model, args, train_dataset=ds, callbacks=[GreenprofCallback(run="bert")])
    """

    def __init__(
        self, profiler: Profiler | None = None, *, samples: int | None = None, **options: Any
    ) -> None:
        self._given = profiler
        self._options = options
        self._samples = samples
        self._lease: ProfilerLease | None = None
        self._ender: StepEnder | None = None
        self._epoch = 0

    @property
    def profiler(self) -> Profiler | None:
        """The profiler of the current ``train()`` (None outside it)."""
        return None if self._ender is None else self._ender.profiler

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        options = dict(self._options)
        tags = dict(options.pop("tags", None) or {})
        tags.setdefault("global_rank", getattr(args, "process_index", 0))
        tags.setdefault("world_size", getattr(args, "world_size", 1))
        options["tags"] = tags
        options.setdefault("expected_steps", state.max_steps or None)
        self._lease = ProfilerLease(self._given, "transformers", options)
        profiler = self._lease.acquire()
        claim(profiler, "transformers")
        self._ender = StepEnder(profiler)
        self._epoch = 0
        if self._samples is None:
            self._samples = args.per_device_train_batch_size * args.gradient_accumulation_steps

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ender is not None:
            self._ender.epoch(self._epoch)
            self._epoch += 1

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ender is not None:
            self._ender.end(self._samples)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ender, self._ender = self._ender, None
        lease, self._lease = self._lease, None
        if ender is not None:
            ender.close()
            release_claim(ender.profiler, "transformers")
        if lease is not None:
            lease.release()

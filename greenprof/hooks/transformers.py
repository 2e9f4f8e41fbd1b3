"""Hugging Face Transformers: a ``TrainerCallback``, one step per optimizer step.

Usage (one line)::

    trainer = Trainer(..., callbacks=[greenprof.hooks.transformers.GreenprofCallback()])

It records into the given profiler, else the running one (``@greenprof.profile``), else
runs its own for the duration of ``train()``. Steps are the Trainer's optimizer steps
(``on_step_end``, after gradient accumulation). Samples per step are exact: the callback
finds its Trainer and counts the training batches the Trainer draws for each optimizer
step (``Trainer.get_batch_samples``; the last, partial batch of an epoch and a short last
accumulation counted as they are). Evaluation and prediction batches are never counted:
they are drawn elsewhere. On a Trainer without ``get_batch_samples`` the count falls back
to ``per_device_train_batch_size × gradient_accumulation_steps``. On CUDA a step's end
is a completed CUDA event, as in :mod:`greenprof.hooks.torch`.

Multi-process: every process (``args.process_index``) runs its own profiler and run,
measuring its own devices, with its rank (``args.process_index``, ``args.world_size``)
recorded on the run.

Zero-code (``greenprof run``): :func:`patch_trainer` adds the callback to every Trainer,
which then marks the steps instead of the global torch optimizer hook (which would have
counted evaluation batches as training samples).

The Trainer tells callbacks nothing when training raises: a run this callback started
is then closed as failed when the interpreter exits. Wrap the call in
``@greenprof.profile(...)`` (the callback joins it) to have the failure recorded at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from greenprof.batches import batch_size
from greenprof.hooks._trainer import TrainerCallbackBase
from greenprof.profiler import Profiler

__all__ = ["GreenprofCallback", "patch_trainer"]


class GreenprofCallback(TrainerCallbackBase, TrainerCallback):
    """Per-optimizer-step energy for a ``transformers.Trainer``.

    Args:
        profiler: where steps go (default: the running profiler, else its own for the
            duration of ``train()``, configured by ``profiler_options``).
        samples: samples per step (default: the training batches of each step, counted).

    Example::

        Trainer(model, args, train_dataset=ds, callbacks=[GreenprofCallback(run="bert")])
    """

    framework = "transformers"

    def __init__(
        self, profiler: Profiler | None = None, *, samples: int | None = None, **options: Any
    ) -> None:
        super().__init__(profiler, samples=samples, **options)
        self._fallback_samples: int | None = None
        self._epoch = 0
        self._counter: _BatchSampleCounter | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start(
            global_rank=getattr(args, "process_index", 0),
            world_size=getattr(args, "world_size", 1),
            env=_rank_environment(args),
            expected_steps=state.max_steps or None,
        )
        self._epoch = 0
        self._fallback_samples = args.per_device_train_batch_size * args.gradient_accumulation_steps
        if self._samples is None:
            self._counter = _BatchSampleCounter.attach(_calling_trainer(self))

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ender is not None:
            self._ender.epoch(self._epoch)
            self._epoch += 1

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ender is not None:
            self._ender.end(self._step_samples())

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.detach()
        self._finish()

    def _step_samples(self) -> int | None:
        if self._samples is not None:
            return self._samples
        if self._counter is not None:
            return self._counter.take()
        return self._fallback_samples


def _rank_environment(args: Any) -> dict[str, str]:
    """The process's environment with the Trainer's rank, for a run this callback starts
    (launchers that set no ``RANK`` still get the rank recorded)."""
    env = dict(os.environ)
    if "RANK" not in env and getattr(args, "world_size", 1) > 1:
        env["RANK"] = str(args.process_index)
        env["WORLD_SIZE"] = str(args.world_size)
        env.setdefault("LOCAL_RANK", str(getattr(args, "local_process_index", 0)))
    return env


def _calling_trainer(callback: GreenprofCallback) -> Any:
    """The Trainer whose ``on_train_begin`` is running ``callback`` (found up the stack:
    callbacks are not given their Trainer)."""
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        handler = getattr(candidate, "callback_handler", None)
        if handler is not None and callback in getattr(handler, "callbacks", ()):
            return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _BatchSampleCounter:
    """Counts the samples of the training batches a Trainer draws for its optimizer steps,
    by wrapping ``trainer.get_batch_samples`` on that one instance."""

    def __init__(self, trainer: Any, original: Callable[..., Any]) -> None:
        self._trainer = trainer
        self._original = original
        self._samples: int | None = None

    @classmethod
    def attach(cls, trainer: Any) -> _BatchSampleCounter | None:
        original = getattr(trainer, "get_batch_samples", None)
        if original is None:
            return None
        counter = cls(trainer, original)
        trainer.get_batch_samples = counter._get_batch_samples
        return counter

    def _get_batch_samples(self, *args: Any, **kwargs: Any) -> Any:
        result = self._original(*args, **kwargs)
        batches = result[0] if isinstance(result, tuple) and result else result
        for batch in batches or ():
            n = batch_size(batch)
            if n is not None:
                self._samples = (self._samples or 0) + n
        return result

    def take(self) -> int | None:
        samples, self._samples = self._samples, None
        return samples

    def detach(self) -> None:
        if self._trainer.__dict__.get("get_batch_samples") == self._get_batch_samples:
            del self._trainer.get_batch_samples


def patch_trainer(profiler: Profiler | None, trainer_class: Any) -> Callable[[], None]:
    """Make every ``trainer_class`` (a ``transformers.Trainer``, subclasses included) get a
    :class:`GreenprofCallback` recording into ``profiler``, unless it has one (zero-code
    mode); returns a function that undoes it.

    Example::

        undo = patch_trainer(profiler, transformers.Trainer)
    """
    original = trainer_class.__init__

    def init_with_callback(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        handler = getattr(self, "callback_handler", None)
        callbacks = getattr(handler, "callbacks", ())
        if not any(isinstance(c, GreenprofCallback) for c in callbacks):
            self.add_callback(GreenprofCallback(profiler))
            if profiler is not None:  # the Trainer marks the steps, not the torch hook
                profiler.set_framework("transformers")

    init_with_callback.__doc__ = original.__doc__
    init_with_callback.__wrapped__ = original  # type: ignore[attr-defined]
    trainer_class.__init__ = init_with_callback

    def undo() -> None:
        trainer_class.__init__ = original

    return undo

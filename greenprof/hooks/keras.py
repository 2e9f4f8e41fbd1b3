"""Keras 3: a callback for ``model.fit``, one step per batch, per-epoch energy in the logs.

Usage (one line)::

    model.fit(x, y, callbacks=[greenprof.hooks.keras.GreenprofCallback()])

It records into the given profiler, else the running one (``@greenprof.profile``), else
runs its own profiler for the duration of ``fit``. At each epoch end it adds
``energy_j`` (J, every measured device, sampled at the profiler's interval) and
``co2_g`` (gCO2e, with the run's grid intensity and PUE) to the epoch logs, so History,
CSVLogger and callbacks after it see them (put it before CSVLogger).

Design — per-batch timing without turning off Keras's asynchronous dispatch: Keras 3
runs ``on_train_batch_end`` of callbacks on a thread pool (so a step's logs are turned
into Python floats — a device sync — off the training thread), but only if no callback
overrides ``on_batch_end`` / ``on_train_batch_end`` (``CallbackList._configure_async_dispatch``;
the JAX, torch and NumPy backends; TensorFlow's is never asynchronous). This callback
overrides no batch hook. Instead, at ``on_train_begin`` it wraps ``model.train_function``
(which ``fit`` calls once per batch, after ``make_train_function``) with two timestamps
and restores it at ``on_train_end``. On the torch backend with CUDA in use, the step's
end is a CUDA event completed on a watcher thread (as in :mod:`greenprof.hooks.torch`);
elsewhere it is the host's return from the step function.

Samples per step: the batch's leading dimension (torch/JAX backends pass the batch to the
step function); on TensorFlow the batch is drawn inside the traced function, so the
batch size comes from ``fit``'s data adapter (last partial batch included), or
``samples=`` when given.

``steps_per_execution=N``: one greenprof step is one execution of the step function,
i.e. up to N batches run as one compiled call (their individual ends are not observable
from Python); its samples are exactly those of the batches it ran, the short last
execution of an epoch included.

Loss per step: the step function returns the epoch's running mean loss (Keras 3 weighs
each batch by its samples); each step's own loss (with ``steps_per_execution=N``, the
sample-weighted mean over the execution's batches) is recovered from two consecutive
means by :mod:`greenprof.hooks._running_loss`, lazily: the tensors go to greenprof as
they are and are turned into a number on greenprof's writer thread, never on the
training thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import keras

from greenprof.batches import batch_size
from greenprof.hooks._common import ProfilerLease, energy_so_far_j
from greenprof.hooks._running_loss import RunningMeanLoss, running_loss_of
from greenprof.profiler import Profiler
from greenprof.status import outcome_of

__all__ = ["GreenprofCallback", "patch_fit"]


class GreenprofCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Per-batch step energy for ``model.fit``; ``energy_j`` and ``co2_g`` in epoch logs.

    Args:
        profiler: where steps go (default: the running profiler, else its own for the
            duration of ``fit``, configured by ``profiler_options``).
        samples: samples per step, when the batch size cannot be inferred.

    Example::

        model.fit(x, y, epochs=3, callbacks=[GreenprofCallback(run="mnist", country="FRA")])
    """

    def __init__(
        self,
        profiler: Profiler | None = None,
        *,
        samples: int | None = None,
        **profiler_options: Any,
    ) -> None:
        super().__init__()
        self._lease = ProfilerLease(profiler, "keras", profiler_options)
        self._samples = samples
        self._original: Callable[..., Any] | None = None
        self._ender: Any = None
        self._epoch_start_j: float | None = None
        self._batches: _AdapterBatches | None = None
        self._losses = RunningMeanLoss()
        self.profiler: Profiler | None = None

    # Keras events ------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        profiler = self._lease.acquire()
        self.profiler = profiler
        self._batches = _AdapterBatches.from_fit(self.model)
        if keras.backend.backend() == "torch":
            import torch

            if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
                from greenprof.hooks.torch import StepEnder

                self._ender = StepEnder(profiler)
        self._wrap_train_function(profiler)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.profiler is None:
            return
        if self._ender is not None:
            self._ender.epoch(epoch)
        else:
            self.profiler.epoch_begin(epoch)
        if self._batches is not None:
            self._batches.index = 0
        self._losses.reset()
        self._epoch_start_j = energy_so_far_j(self.profiler)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        profiler = self.profiler
        if profiler is None or logs is None:
            return
        now_j = energy_so_far_j(profiler)
        if now_j is None or self._epoch_start_j is None:
            return
        energy_j = now_j - self._epoch_start_j
        logs["energy_j"] = energy_j
        logs["co2_g"] = profiler.carbon.co2_g(energy_j)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._finish("completed", None)

    # Internals ---------------------------------------------------------------

    def _finish(self, status: Any, error: str | None) -> None:
        if self._original is not None:
            self.model.train_function = self._original
            self._original = None
        ender, self._ender = self._ender, None
        if ender is not None:
            ender.close()
        self.profiler = None
        self._lease.release(status, error)

    def _wrap_train_function(self, profiler: Profiler) -> None:
        original = self.model.train_function
        if original is None or getattr(original, "_greenprof_wrapped", False):
            return
        self._original = original
        step_begin, step_end = profiler.step_begin, profiler.step_end
        monotonic_ns = time.monotonic_ns
        samples_of = self._samples_of
        losses = self._losses
        callback = self

        def train_function(*args: Any, **kwargs: Any) -> Any:
            begin = monotonic_ns()
            try:
                logs = original(*args, **kwargs)
            except StopIteration:
                raise  # the end of a dataset, not a failure
            except BaseException as exc:
                end = outcome_of(exc)
                callback._finish(end.status, end.error)
                raise
            samples = samples_of(args)
            mean = running_loss_of(logs)
            loss = None if mean is None else losses.step(mean, samples)
            ender = callback._ender
            if ender is not None:
                # StepEnder passes the loss on unconverted (typed float there)
                ender.end(samples, loss=loss)
            else:
                step_begin(time_ns=begin)
                step_end(samples, loss=loss)
            return logs

        train_function._greenprof_wrapped = True  # type: ignore[attr-defined]
        self.model.train_function = train_function

    def _samples_of(self, args: tuple[Any, ...]) -> int | None:
        if self._samples is not None:
            return self._samples
        data = args[0] if args else None
        if isinstance(data, list):  # torch / JAX / NumPy backends: the batches themselves
            sizes = [batch_size(batch) for batch in data]
            if sizes and all(n is not None for n in sizes):
                return sum(n for n in sizes if n is not None)
        if self._batches is not None:
            return self._batches.next()
        return None


class _AdapterBatches:
    """Batch sizes of ``fit``'s data, for the TensorFlow backend (whose step function
    draws the batch inside the traced graph). Found through ``fit``'s data adapter."""

    def __init__(
        self, batch: int, num_batches: int | None, partial: int | None, per_call: int
    ) -> None:
        self.batch = batch
        self.num_batches = num_batches
        self.partial = partial
        self.per_call = per_call
        self.index = 0

    @classmethod
    def from_fit(cls, model: Any) -> _AdapterBatches | None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
                iterator = frame.f_locals.get("epoch_iterator")
                adapter: Any = getattr(iterator, "data_adapter", None)
                try:
                    batch = adapter.batch_size if adapter is not None else None
                    if not batch:
                        return None
                    partial = adapter.partial_batch_size if adapter.has_partial_batch else None
                    per_call = int(getattr(model, "steps_per_execution", 1) or 1)
                    return cls(int(batch), adapter.num_batches, partial, per_call)
                except Exception:
                    return None
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def next(self) -> int:
        """Samples of the next execution: up to ``per_call`` batches, never past the
        epoch's last batch (the last execution of an epoch may run fewer)."""
        total = 0
        for _ in range(self.per_call):
            if self.num_batches is not None and self.index >= self.num_batches:
                break
            last = self.num_batches is not None and self.index == self.num_batches - 1
            total += self.partial if (last and self.partial) else self.batch
            self.index += 1
        return total


def patch_fit(profiler: Profiler | None = None) -> Callable[[], None]:
    """Make every ``keras.Model.fit`` add a :class:`GreenprofCallback` (zero-code mode)
    unless its callbacks already hold one; returns a function that undoes it.

    Example::

        undo = patch_fit(profiler)
    """
    original = keras.Model.fit

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        callbacks = list(kwargs.get("callbacks") or [])
        if not any(isinstance(c, GreenprofCallback) for c in callbacks):
            callbacks.insert(0, GreenprofCallback(profiler))
        kwargs["callbacks"] = callbacks
        return original(self, *args, **kwargs)

    fit.__doc__ = original.__doc__
    keras.Model.fit = fit

    def undo() -> None:
        keras.Model.fit = original

    return undo

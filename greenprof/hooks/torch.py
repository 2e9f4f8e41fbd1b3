"""PyTorch: one step per optimizer step, through the optimizer's own step hooks.

Usage (one line)::

    handle = greenprof.hooks.torch.attach(optimizer)   # ... train ...; handle.remove()

The hook records into the given profiler, else the running one
(``@greenprof.profile``, ``with greenprof.Profiler(...)``), else starts its own, which
``handle.remove()`` stops. ``prof.step()`` and ``prof.steps(loader)`` from the Profiler
work too; this adapter is for code you would rather not touch.

GPU steps: CUDA runs asynchronously, so the host's return from ``optimizer.step()`` is
not the end of the step's kernels, and ``torch.cuda.synchronize()`` per step would cost
the CPU/GPU overlap (1–25 % on short steps). Instead the hook records a CUDA event (from
a small pool) on the current stream and a watcher thread waits for it
(``Event.synchronize`` releases the GIL) and stamps its completion time; steps are
contiguous between completions. With ``Profiler(exact=True)`` the training thread also
calls ``torch.cuda.synchronize()`` at most about once a second, so window totals are
exact even for work on other streams. On CPU tensors the end is stamped directly.

Counting rules (the same for :func:`attach` and the zero-code :func:`install_global_hook`):

* **One step per optimizer step, never two.** Your own marks win: once code opens a
  step on the profiler (``prof.step()``, ``prof.steps(...)``, ``prof.step_begin()``),
  the hooks stop ending steps on it and your steps (with your ``samples=``) are the
  run's. A framework callback that claims the profiler (Lightning, Transformers) wins
  the same way, and an optimizer with its own :func:`attach` is skipped by the global
  hook. See :func:`greenprof.hooks._common.watch_user_marks`.
* **Samples per step**: ``samples=`` (an int or a callable), else the batches drawn with
  gradients enabled from any ``DataLoader`` since the previous optimizer step (gradient
  accumulation sums its micro-batches), else unknown. Batches that no optimizer step
  takes are dropped: those of a pass over a loader that ends without an optimizer step
  in it (evaluation, even with gradients enabled), and those of an unfinished pass when
  a new pass over the same dataset starts (a ``next(iter(loader))`` peek, a ``break``).
* **Setup and evaluation are not steps**: a step's start is where the previous one
  ended, except after a boundary: the first optimizer step of the run, and the first
  after a DataLoader pass ended (an epoch's last batch, a validation pass), start when
  their first batch was requested with gradients enabled. So interpreter start, imports,
  model building and evaluation between epochs fall between steps: before the first step
  they are the run's setup phase, later they are run energy outside any step (``show``
  reports both), instead of being charged to the next training step.
* **Epochs**: a pass over a ``DataLoader`` that ends (``StopIteration``) with at least
  one optimizer step during it is a training epoch; the next optimizer step starts the
  next epoch (numbered from 0). A pass without an optimizer step in it (validation,
  test) is no boundary, and nothing is marked after the last step. Once code marks an
  epoch on the profiler itself (``prof.epoch_begin(n)``, or a Keras/TensorFlow hook),
  its marks decide and this rule is off for that profiler.

The DataLoader is observed by wrapping ``_BaseDataLoaderIter.__next__`` while at least
one hook is installed (about 0.3 µs a batch; removed with the last hook).
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, SupportsFloat

import torch
import torch.utils.data.dataloader as _dataloader
from torch.optim.optimizer import Optimizer, register_optimizer_step_post_hook

from greenprof.batches import batch_size
from greenprof.hooks._common import (
    CompletionWatcher,
    ProfilerLease,
    claimed_by,
    epochs_claimed_by,
    unwatch_user_marks,
    watch_user_marks,
)
from greenprof.profiler import Profiler
from greenprof.records import RunStatus
from greenprof.status import outcome_of_type

__all__ = ["Handle", "StepEnder", "attach", "install_global_hook"]

SamplesArg = int | Callable[[], "int | None"] | None

EXACT_SYNC_INTERVAL_NS = 1_000_000_000
"""Exact mode synchronizes the device at most this often (1 s)."""


class StepEnder:
    """Ends steps on a profiler, GPU-aware: what every torch-based adapter calls.

    Without CUDA in use, ``end()`` stamps the time directly. Once CUDA is initialized,
    it records an event and a :class:`~greenprof.hooks._common.CompletionWatcher`
    stamps the step when the event completes. ``event_factory`` replaces
    ``torch.cuda.Event`` (tests use a fake one on machines without a GPU).

    Example::

        ender = StepEnder(profiler)
        ender.end(samples=64)      # after each optimizer step
        ender.close()
    """

    def __init__(
        self,
        profiler: Profiler,
        *,
        event_factory: Callable[[], Any] | None = None,
        use_events: bool | None = None,
        synchronize: Callable[[], None] | None = None,
    ) -> None:
        self.profiler = profiler
        self._event_factory = event_factory or _new_cuda_event
        self._use_events = use_events
        self._synchronize = synchronize or torch.cuda.synchronize
        self._pool: list[Any] = []
        self._watcher: CompletionWatcher | None = None
        self._exact = profiler.exact
        self._last_sync_ns = time.monotonic_ns()

    def _events(self) -> bool:
        if self._use_events is None:
            return bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]
        return self._use_events

    def end(
        self,
        samples: int | None = None,
        *,
        loss: SupportsFloat | None = None,
        begin_ns: int | None = None,
    ) -> None:
        """Mark the end of a step: contiguous with the previous one, or from ``begin_ns``
        (``time.monotonic_ns``) when given and later than the previous end."""
        if self._watcher is None and not self._events():
            profiler = self.profiler
            if begin_ns is not None:
                profiler.step_begin(time_ns=begin_ns)
            profiler.step_end(samples, loss=loss)
            return
        if self._exact:
            now = time.monotonic_ns()
            if now - self._last_sync_ns >= EXACT_SYNC_INTERVAL_NS:
                self._synchronize()
                self._last_sync_ns = now
        pool = self._pool
        event = pool.pop() if pool else self._event_factory()
        event.record()
        self._watcher_or_start().step(
            event, samples, loss=loss, begin_ns=begin_ns, done=pool.append
        )

    def epoch(self, epoch: int | None = None) -> None:
        """Mark an epoch boundary, in order with the steps."""
        if self._watcher is None:
            profiler = self.profiler
            type(profiler).epoch_begin(profiler, epoch)  # a hook's mark, not the user's
        else:
            self._watcher.epoch(epoch)

    def flush(self, timeout_s: float | None = 30.0) -> None:
        """Wait until every recorded step reached the profiler."""
        if self._watcher is not None:
            self._watcher.flush(timeout_s)

    def close(self) -> None:
        """Forward the last steps and stop the watcher thread."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def _watcher_or_start(self) -> CompletionWatcher:
        if self._watcher is None:
            self._watcher = CompletionWatcher(self.profiler, name="greenprof-cuda-events")
        return self._watcher


def _new_cuda_event() -> Any:
    # blocking=True: the watcher sleeps in cudaEventSynchronize instead of spinning.
    return torch.cuda.Event(blocking=True)  # type: ignore[no-untyped-call]


class _Pass:
    """One pass over a DataLoader: from its first ``next()`` to ``StopIteration``."""

    __slots__ = ("dataset", "finished", "samples", "steps_at_start")

    def __init__(self, dataset: object, steps: int) -> None:
        self.dataset = dataset
        self.steps_at_start = steps
        self.samples = 0  # drawn with gradients enabled since the last optimizer step
        self.finished = False


class _BatchCounter:
    """Watches DataLoader passes while at least one hook needs it: the samples drawn
    since the last optimizer step (:meth:`take`) and the training passes that ended
    (:attr:`epochs`). The rules are in the module docstring."""

    def __init__(self) -> None:
        self.steps = 0
        """Optimizer steps seen by the torch hooks."""
        self.epochs = 0
        """Passes ended with an optimizer step during them."""
        self._boundary = True  # no optimizer step since the start or since a pass ended
        self._begin_ns: int | None = None
        self._pending: list[_Pass] = []
        self._users = 0
        self._lock = threading.Lock()
        self._original: Callable[[Any], Any] | None = None

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            original = _dataloader._BaseDataLoaderIter.__next__
            pending = self._pending
            start = self._start
            is_grad_enabled = torch.is_grad_enabled
            monotonic_ns = time.monotonic_ns

            def counting_next(iterator: Any) -> Any:
                current = iterator.__dict__.get(_PASS)
                if current is None or iterator._num_yielded == 0:
                    current = start(iterator)
                    if self._boundary and is_grad_enabled():
                        # The next step starts here: what came before is setup or
                        # evaluation, not training (module docstring).
                        self._begin_ns = monotonic_ns()
                try:
                    batch = original(iterator)
                except StopIteration:
                    if not current.finished:
                        self._finish(current)
                    raise
                if is_grad_enabled():
                    n = batch_size(batch)
                    if n:
                        if not current.samples:
                            pending.append(current)
                        current.samples += n
                return batch

            self._original = original
            _dataloader._BaseDataLoaderIter.__next__ = counting_next  # type: ignore[method-assign,assignment]

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._original is not None:
                _dataloader._BaseDataLoaderIter.__next__ = self._original  # type: ignore[method-assign,assignment]
                self._original = None
                self._drop(lambda _pass: True)

    def _start(self, iterator: Any) -> _Pass:
        dataset = getattr(iterator, "_dataset", iterator)
        # An unfinished pass over the same data is abandoned: a peek, or a `break`.
        self._drop(lambda p: p.dataset is dataset and not p.finished)
        current = _Pass(dataset, self.steps)
        iterator.__dict__[_PASS] = current
        return current

    def _finish(self, current: _Pass) -> None:
        current.finished = True
        self._boundary = True
        if self.steps == current.steps_at_start:  # no optimizer step in it: evaluation
            self._drop(lambda p: p is current)
        else:
            self.epochs += 1

    def _drop(self, which: Callable[[_Pass], bool]) -> None:
        pending = self._pending
        if pending:
            kept = [p for p in pending if not which(p)]
            for p in pending:
                if which(p):
                    p.samples = 0
            pending[:] = kept

    def take_begin(self) -> int | None:
        """At an optimizer step: when it began (``time.monotonic_ns``), if it is the first
        after a boundary and its first batch came from a DataLoader; else None (the step
        starts where the previous one ended)."""
        begin_ns, self._begin_ns = self._begin_ns, None
        self._boundary = False
        return begin_ns

    def take(self) -> int | None:
        """At an optimizer step: the samples drawn for it (None if no batch was)."""
        self.steps += 1
        pending = self._pending
        if not pending:
            return None
        total = 0
        for p in pending:
            total += p.samples
            p.samples = 0
        pending.clear()
        return total


_PASS = "_greenprof_pass"
"""The attribute of a DataLoader iterator that holds its current :class:`_Pass`."""
_batches = _BatchCounter()
_attached: weakref.WeakSet[Optimizer] = weakref.WeakSet()


class Handle:
    """What :func:`attach` returns: ``remove()`` detaches the hook (and stops a profiler
    the hook started itself). Also a context manager.

    Example::

        with greenprof.hooks.torch.attach(optimizer):
            train()
    """

    def __init__(
        self, lease: ProfilerLease, ender: StepEnder, removers: list[Callable[[], None]]
    ) -> None:
        self._lease = lease
        self.ender = ender
        self._removers = removers
        self._removed = False
        atexit.register(self.remove)

    @property
    def profiler(self) -> Profiler:
        """The profiler the steps go to."""
        return self.ender.profiler

    def remove(self) -> None:
        """Detach; idempotent."""
        self._close("completed", None)

    def _close(self, status: RunStatus, error: str | None) -> None:
        if self._removed:
            return
        self._removed = True
        atexit.unregister(self.remove)
        for remove in self._removers:
            remove()
        _batches.release()
        unwatch_user_marks(self.ender.profiler)
        self.ender.close()
        self._lease.release(status, error)

    def __enter__(self) -> Handle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        end = outcome_of_type(exc_type, exc)
        self._close(end.status, end.error)


def _step_marker(prof: Profiler, ender: StepEnder, samples: SamplesArg) -> Callable[[], None]:
    """What a hook does at each optimizer step it counts (training thread): take the
    step's samples, start the next epoch after a training pass ended, end the step —
    each only where nothing else marks them (module docstring)."""
    if samples is None:
        count: Callable[[], int | None] | None = None
    elif callable(samples):
        count = samples
    else:
        fixed = int(samples)

        def count() -> int:
            return fixed

    take = _batches.take
    take_begin = _batches.take_begin
    end = ender.end
    epochs_seen = _batches.epochs

    def mark() -> None:
        nonlocal epochs_seen
        drawn = take()
        begin_ns = take_begin()
        if _batches.epochs != epochs_seen:
            epochs_seen = _batches.epochs
            if epochs_claimed_by(prof) is None:
                ender.epoch()
        if claimed_by(prof) is None:
            end(drawn if count is None else count(), begin_ns=begin_ns)

    return mark


def _hook_up(profiler: Profiler | None, options: dict[str, Any]) -> tuple[ProfilerLease, StepEnder]:
    lease = ProfilerLease(profiler, "torch", options)
    prof = lease.acquire()
    watch_user_marks(prof)
    _batches.acquire()
    return lease, StepEnder(prof)


def attach(
    optimizer: Optimizer,
    profiler: Profiler | None = None,
    *,
    samples: SamplesArg = None,
    **profiler_options: Any,
) -> Handle:
    """Mark one step per ``optimizer.step()`` (``register_step_post_hook``), and epochs
    from DataLoader passes (the rules are in the module docstring).

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        profiler: where steps go (default: the running profiler, else a new one that
            ``handle.remove()`` stops; ``profiler_options`` configure it).
        samples: samples per step: an int, a callable returning one, or None to count
            the batches drawn from DataLoaders since the previous step.

    Example::

        handle = greenprof.hooks.torch.attach(optimizer, prof)
    """
    lease, ender = _hook_up(profiler, profiler_options)
    mark = _step_marker(ender.profiler, ender, samples)

    def hook(_optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        mark()

    removable = optimizer.register_step_post_hook(hook)
    _attached.add(optimizer)

    def detach() -> None:
        removable.remove()
        _attached.discard(optimizer)

    return Handle(lease, ender, [detach])


def install_global_hook(profiler: Profiler, *, samples: SamplesArg = None) -> Handle:
    """Mark one step per ``step()`` of every optimizer in the process (zero-code mode),
    and epochs from DataLoader passes (the rules are in the module docstring).

    Optimizers with their own :func:`attach` are skipped, and so are the steps of
    profilers that something else marks (Lightning, your own ``prof.step()``), so no
    step is counted twice.

    Example::

        handle = install_global_hook(profiler)
    """
    lease, ender = _hook_up(profiler, {})
    mark = _step_marker(ender.profiler, ender, samples)
    attached = _attached

    def hook(optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        if optimizer not in attached:
            mark()

    removable = register_optimizer_step_post_hook(hook)
    return Handle(lease, ender, [removable.remove])

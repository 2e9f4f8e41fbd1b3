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

Samples per step: ``samples=`` (an int or a callable), else the batches drawn from any
``DataLoader`` while gradients are enabled since the previous step (so gradient
accumulation sums its micro-batches), else unknown.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.utils.data.dataloader as _dataloader
from torch.optim.optimizer import Optimizer, register_optimizer_step_post_hook

from greenprof.hooks._common import (
    CompletionWatcher,
    ProfilerLease,
    batch_size,
    claimed_by,
)
from greenprof.profiler import Profiler
from greenprof.records import RunStatus

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

    def end(self, samples: int | None = None, *, loss: float | None = None) -> None:
        """Mark the end of a step (contiguous with the previous one)."""
        if self._watcher is None and not self._events():
            self.profiler.step_end(samples, loss=loss)
            return
        if self._exact:
            now = time.monotonic_ns()
            if now - self._last_sync_ns >= EXACT_SYNC_INTERVAL_NS:
                self._synchronize()
                self._last_sync_ns = now
        pool = self._pool
        event = pool.pop() if pool else self._event_factory()
        event.record()
        self._watcher_or_start().step(event, samples, loss=loss, done=pool.append)

    def epoch(self, epoch: int | None = None) -> None:
        """Mark an epoch boundary, in order with the steps."""
        if self._watcher is None:
            self.profiler.epoch_begin(epoch)
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


class _BatchCounter:
    """Counts samples of batches drawn from DataLoaders (with gradients enabled) since
    the last ``take()``. Installed while at least one hook needs it."""

    def __init__(self) -> None:
        self.samples: int | None = None
        self._users = 0
        self._lock = threading.Lock()
        self._original: Callable[[Any], Any] | None = None

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            original = _dataloader._BaseDataLoaderIter.__next__
            counter = self
            is_grad_enabled = torch.is_grad_enabled

            def counting_next(iterator: Any) -> Any:
                batch = original(iterator)
                if is_grad_enabled():
                    n = batch_size(batch)
                    if n is not None:
                        counter.samples = (counter.samples or 0) + n
                return batch

            self._original = original
            _dataloader._BaseDataLoaderIter.__next__ = counting_next  # type: ignore[method-assign,assignment]

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._original is not None:
                _dataloader._BaseDataLoaderIter.__next__ = self._original  # type: ignore[method-assign,assignment]
                self._original = None

    def take(self) -> int | None:
        samples, self.samples = self.samples, None
        return samples


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
        self,
        lease: ProfilerLease,
        ender: StepEnder,
        removers: list[Callable[[], None]],
        counts_batches: bool,
    ) -> None:
        self._lease = lease
        self.ender = ender
        self._removers = removers
        self._counts_batches = counts_batches
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
        if self._counts_batches:
            _batches.release()
        self.ender.close()
        self._lease.release(status, error)

    def __enter__(self) -> Handle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is None:
            self._close("completed", None)
        elif issubclass(exc_type, KeyboardInterrupt):
            self._close("interrupted", "KeyboardInterrupt")
        else:
            self._close("failed", f"{exc_type.__name__}: {exc}")


def _samples_source(samples: SamplesArg) -> tuple[Callable[[], int | None], bool]:
    if samples is None:
        _batches.acquire()
        return _batches.take, True
    if callable(samples):
        return samples, False
    fixed = int(samples)
    return (lambda: fixed), False


def attach(
    optimizer: Optimizer,
    profiler: Profiler | None = None,
    *,
    samples: SamplesArg = None,
    **profiler_options: Any,
) -> Handle:
    """Mark one step per ``optimizer.step()`` (``register_step_post_hook``).

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        profiler: where steps go (default: the running profiler, else a new one that
            ``handle.remove()`` stops; ``profiler_options`` configure it).
        samples: samples per step: an int, a callable returning one, or None to count
            the batches drawn from DataLoaders since the previous step.

    Example::

        handle = greenprof.hooks.torch.attach(optimizer, prof)
    """
    lease = ProfilerLease(profiler, "torch", profiler_options)
    prof = lease.acquire()
    ender = StepEnder(prof)
    take, counts = _samples_source(samples)
    end = ender.end

    def hook(_optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        end(take())

    removable = optimizer.register_step_post_hook(hook)
    _attached.add(optimizer)

    def detach() -> None:
        removable.remove()
        _attached.discard(optimizer)

    return Handle(lease, ender, [detach], counts)


def install_global_hook(profiler: Profiler, *, samples: SamplesArg = None) -> Handle:
    """Mark one step per ``step()`` of every optimizer in the process (zero-code mode).

    Optimizers with their own :func:`attach` and profilers whose steps a framework
    callback marks (Lightning) are skipped, so no step is counted twice.

    Example::

        handle = install_global_hook(profiler)
    """
    lease = ProfilerLease(profiler, "torch", {})
    prof = lease.acquire()
    ender = StepEnder(prof)
    take, counts = _samples_source(samples)
    end = ender.end
    attached = _attached

    def hook(optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        if optimizer in attached or claimed_by(prof) is not None:
            return
        end(take())

    removable = register_optimizer_step_post_hook(hook)
    return Handle(lease, ender, [removable.remove], counts)

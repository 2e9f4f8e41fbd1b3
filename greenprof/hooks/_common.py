"""What every adapter shares: which profiler to record into, and the completion watcher.

No framework is imported here. Adapters hold no energy logic: they only turn framework
events into ``step_begin`` / ``step_end`` / ``epoch_begin`` marks of a
:class:`~greenprof.profiler.Profiler`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from queue import SimpleQueue
from typing import Any, Protocol

from greenprof.profiler import Profiler, current_profiler
from greenprof.records import RunStatus

log = logging.getLogger("greenprof")

_claims: weakref.WeakKeyDictionary[Profiler, str] = weakref.WeakKeyDictionary()
"""Profilers whose steps a framework callback marks: the zero-code global torch hook
leaves them alone, so an optimizer step is never counted twice."""


def claim(profiler: Profiler, hook: str) -> None:
    """Declare that ``hook`` marks the steps of ``profiler``."""
    _claims[profiler] = hook


def release_claim(profiler: Profiler, hook: str) -> None:
    """Undo :func:`claim`."""
    if _claims.get(profiler) == hook:
        del _claims[profiler]


def claimed_by(profiler: Profiler) -> str | None:
    """The hook that marks this profiler's steps, if any."""
    return _claims.get(profiler)


class ProfilerLease:
    """The profiler a hook records into: the one given, else the running one
    (``greenprof.current_profiler()``, e.g. from ``@greenprof.profile``), else its own.

    ``acquire()`` starts it (``Profiler.start`` is re-entrant, so a profiler that is
    already running is only joined) and ``release()`` stops it again: a joined run goes
    on, an own run ends with the given status. One run, never two.

    Example::

        lease = ProfilerLease(None, "keras", {"run": "mnist"})
        profiler = lease.acquire(); ...; lease.release("completed")
    """

    def __init__(
        self, profiler: Profiler | None, framework: str, options: Mapping[str, Any]
    ) -> None:
        self._given = profiler
        self._framework = framework
        self._options = dict(options)
        self.profiler: Profiler | None = None
        self._exit_hook: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return self.profiler is not None

    def acquire(self) -> Profiler:
        if self.profiler is not None:
            return self.profiler
        profiler = self._given or current_profiler()
        if profiler is None:
            options = dict(self._options)
            options.setdefault("framework", self._framework)
            profiler = Profiler(**options)
        elif not profiler.framework or profiler.framework == "auto":
            profiler.set_framework(self._framework)
        profiler.start()
        self.profiler = profiler
        # A framework that reports no exception to its callbacks (Keras, Transformers)
        # leaves a run open when training raises: close it at exit rather than never.
        self._exit_hook = self._at_exit
        atexit.register(self._exit_hook)
        return profiler

    def release(self, status: RunStatus = "completed", error: str | None = None) -> None:
        profiler, self.profiler = self.profiler, None
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        if profiler is not None:
            profiler.stop(status=status, error=error)

    def _at_exit(self) -> None:
        self._exit_hook = None
        if self.profiler is not None:
            self.release("failed", "training ended without its end-of-training event")


class Waitable(Protocol):
    """Anything whose completion can be waited for: a CUDA event, a tensor wrapper."""

    def synchronize(self) -> None: ...


_STOP = object()
_EPOCH = 0
_STEP = 1


class CompletionWatcher:
    """Forwards a hook's marks to a profiler in order, each step's end stamped when its
    device work has completed (``waitable.synchronize()`` on this thread, never on the
    training thread).

    The training thread only puts a tuple on a queue. Steps are contiguous: step *k*
    owns ``(done[k-1], done[k]]`` (a ``begin`` stamp, when given, only moves the start
    later), so waiting for input is charged to the step that waited and the run's time
    is partitioned.

    Example::

        watcher = CompletionWatcher(profiler)
        watcher.step(event, samples=64)      # event: e.g. a recorded torch.cuda.Event
        watcher.close()
    """

    def __init__(self, profiler: Profiler, *, name: str = "greenprof-completion") -> None:
        self._profiler = profiler
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def step(
        self,
        waitable: Waitable | None,
        samples: int | None = None,
        *,
        loss: float | None = None,
        begin_ns: int | None = None,
        done: Callable[[Any], None] | None = None,
    ) -> None:
        """Queue one step end; ``done(waitable)`` is called after it completed (recycling)."""
        with self._idle:
            self._pending += 1
        self._queue.put((_STEP, waitable, samples, loss, begin_ns, done))

    def epoch(self, epoch: int | None) -> None:
        """Queue an epoch boundary, in order with the steps."""
        with self._idle:
            self._pending += 1
        self._queue.put((_EPOCH, epoch))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued mark reached the profiler; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Forward what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        profiler = self._profiler
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if item[0] == _EPOCH:
                    profiler.epoch_begin(item[1])
                else:
                    _, waitable, samples, loss, begin_ns, done = item
                    if waitable is not None:
                        self._wait(waitable)
                    stamp = time.monotonic_ns()
                    if begin_ns is not None:
                        profiler.step_begin(time_ns=begin_ns)
                    profiler.step_end(samples, loss=loss, time_ns=stamp)
                    if done is not None:
                        done(waitable)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _wait(self, waitable: Waitable) -> None:
        try:
            waitable.synchronize()
        except Exception as exc:  # a failed device must not stop the accounting
            if not self._warned:
                self._warned = True
                log.warning("greenprof: waiting for a step's completion failed: %r", exc)


def batch_size(batch: object) -> int | None:
    """Samples in a batch: the leading dimension of its first tensor (``(x, y)``,
    ``{"input_ids": x}``, ``x``), else ``len()``, else None.

    Example::

        batch_size((torch.zeros(32, 10), torch.zeros(32)))  # 32
    """
    first = batch
    for _ in range(4):  # unwrap (x, y), [x], {"x": x}, ([x1, x2], y)
        if isinstance(first, (tuple, list)) and first:
            first = first[0]
        elif isinstance(first, Mapping) and first:
            first = next(iter(first.values()))
        else:
            break
    shape = getattr(first, "shape", None)
    if shape is not None:
        try:
            if len(shape) > 0 and shape[0] is not None:
                return int(shape[0])
        except (TypeError, ValueError):
            return None
        return None
    try:
        return len(first)  # type: ignore[arg-type]
    except TypeError:
        return None


def energy_so_far_j(profiler: Profiler) -> float | None:
    """The run's energy so far (J, all devices, up to the sampler's last reading).

    Example::

        before = energy_so_far_j(prof); train_epoch(); used = energy_so_far_j(prof) - before
    """
    return profiler.energy_j if profiler.running else None

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
from typing import Any, Protocol, SupportsFloat

from greenprof.batches import batch_size as batch_size  # noqa: PLC0414 (shim: hooks/torch.py imports it here)
from greenprof.profiler import Profiler, current_profiler
from greenprof.records import RunStatus

log = logging.getLogger("greenprof")

_claims: weakref.WeakKeyDictionary[Profiler, str] = weakref.WeakKeyDictionary()
"""Profilers whose steps something else marks: a framework callback (Lightning,
Transformers) or the user's own code (:data:`USER`). Torch optimizer hooks leave their
steps alone, so a step is never counted twice."""
_epoch_claims: weakref.WeakKeyDictionary[Profiler, str] = weakref.WeakKeyDictionary()
"""Profilers whose epochs something else marks: torch hooks then leave epochs alone."""

USER = "user"
"""The claim of code that marks steps or epochs on a profiler itself (see
:func:`watch_user_marks`)."""


def claim(profiler: Profiler, hook: str, *, epochs: bool = True) -> None:
    """Declare that ``hook`` marks the steps (and, by default, the epochs) of ``profiler``."""
    _claims[profiler] = hook
    if epochs:
        _epoch_claims[profiler] = hook


def release_claim(profiler: Profiler, hook: str) -> None:
    """Undo :func:`claim`."""
    for claims in (_claims, _epoch_claims):
        if claims.get(profiler) == hook:
            del claims[profiler]


def claimed_by(profiler: Profiler) -> str | None:
    """What marks this profiler's steps, if not the torch hooks: a hook's name, or
    :data:`USER`."""
    return _claims.get(profiler)


def epochs_claimed_by(profiler: Profiler) -> str | None:
    """What marks this profiler's epochs, if not the torch hooks."""
    return _epoch_claims.get(profiler)


_watched: weakref.WeakKeyDictionary[Profiler, int] = weakref.WeakKeyDictionary()
_WATCHED_METHODS = ("step", "steps", "step_begin", "epoch_begin")


def watch_user_marks(profiler: Profiler) -> None:
    """Notice when code other than the hooks marks steps or epochs on ``profiler``.

    Your own marks win over the torch hooks': a step you open (``prof.step()``,
    ``prof.steps(...)``, ``prof.step_begin()`` without ``time_ns``) claims the profiler's
    steps for :data:`USER`, an epoch you mark (``prof.epoch_begin(...)``, also from a
    Keras or TensorFlow hook) claims its epochs. Adapters mark steps with ``time_ns=`` and
    the torch hooks mark epochs through the class (``type(p).epoch_begin(p, n)``), so
    they claim nothing. Observed with thin wrappers on the instance (about 0.1 µs a
    call), from the first hook that records into the profiler until the last one is
    removed (:func:`unwatch_user_marks`); a claim, once made, stays.

    Example::

        watch_user_marks(prof); prof.epoch_begin(3); epochs_claimed_by(prof)  # "user"
    """
    users = _watched.get(profiler, 0)
    _watched[profiler] = users + 1
    if users:
        return
    cls = type(profiler)
    steps_seen = epochs_seen = False

    def user_steps() -> None:
        nonlocal steps_seen
        steps_seen = True
        _claims.setdefault(profiler, USER)

    def step(samples: int | None = None, *, loss: float | None = None) -> Any:
        if not steps_seen:
            user_steps()
        return cls.step(profiler, samples, loss=loss)

    def steps(iterable: Any, samples: int | None = None) -> Any:
        if not steps_seen:
            user_steps()
        return cls.steps(profiler, iterable, samples)

    def step_begin(*, time_ns: int | None = None) -> None:
        if time_ns is None and not steps_seen:
            user_steps()
        cls.step_begin(profiler, time_ns=time_ns)

    def epoch_begin(epoch: int | None = None) -> None:
        nonlocal epochs_seen
        if not epochs_seen:
            epochs_seen = True
            _epoch_claims.setdefault(profiler, USER)
        cls.epoch_begin(profiler, epoch)

    vars(profiler).update(step=step, steps=steps, step_begin=step_begin, epoch_begin=epoch_begin)


def unwatch_user_marks(profiler: Profiler) -> None:
    """Undo one :func:`watch_user_marks` (the wrappers go with the last)."""
    users = _watched.get(profiler, 0) - 1
    if users > 0:
        _watched[profiler] = users
        return
    _watched.pop(profiler, None)
    for name in _WATCHED_METHODS:
        vars(profiler).pop(name, None)


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
        loss: SupportsFloat | None = None,
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
                    type(profiler).epoch_begin(profiler, item[1])  # a hook's mark, not the user's
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


def energy_so_far_j(profiler: Profiler) -> float | None:
    """The run's energy so far (J, all devices, up to the sampler's last reading).

    Example::

        before = energy_so_far_j(prof); train_epoch(); used = energy_so_far_j(prof) - before
    """
    return profiler.energy_j if profiler.running else None

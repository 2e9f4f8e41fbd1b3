"""The step API's hot path: one timestamped mark appended to a deque per step boundary.

This is all the training thread ever does for greenprof: no lock (``deque.append`` is
atomic), no I/O, no sensor read, no conversion of what the caller passes (a CUDA tensor
converted here would synchronise the GPU). The sampler thread drains the marks
(:meth:`StepMarks.drain`) and numbers the steps in the ledger.

A :class:`~greenprof.Profiler` binds these methods onto itself, so ``prof.step_end()``
costs one call, not two.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import SupportsFloat, TypeVar

from greenprof.ledger import BEGIN, END, EPOCH, Mark

T = TypeVar("T")

NS_CLOCKS: dict[Callable[[], float], Callable[[], int]] = {
    time.monotonic: time.monotonic_ns,
    time.perf_counter: time.perf_counter_ns,
}
"""Integer twins of the usual clocks (the marks are stamped in nanoseconds)."""


def ns_clock(clock: Callable[[], float]) -> Callable[[], int]:
    """``clock`` (seconds) in integer nanoseconds: its ``*_ns`` twin where there is one
    (no float on the hot path), else a conversion (an injected test clock)."""
    twin = NS_CLOCKS.get(clock)
    if twin is not None:
        return twin
    return lambda: round(clock() * 1e9)


class StepContext:
    """``with prof.step(samples=n) as step:`` — reused, so a step allocates nothing but its
    marks.

    What is stored is what ``samples`` and ``loss`` hold when the block ends, so a loss
    computed inside the step can be given there::

        with prof.step(samples=len(x)) as step:
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            step.loss = loss          # a tensor is fine: converted off the training thread

    ``loss`` may be a 0-d tensor: the training thread only keeps a reference, and the
    profiler's writer thread converts it (``float()``) a few hundred milliseconds later,
    so a CUDA loss does not synchronise the training loop. Pass ``loss.detach()`` to let
    the step's autograd graph go at once rather than at that conversion.
    """

    __slots__ = ("_queue", "loss", "samples")

    def __init__(self, queue: deque[Mark]) -> None:
        self._queue = queue
        self.samples: int | None = None
        """Samples in the step (set here or by ``prof.step(samples=...)``)."""
        self.loss: SupportsFloat | None = None
        """The step's loss: the value held when the block ends is stored."""

    def __call__(self, samples: int | None, loss: SupportsFloat | None) -> StepContext:
        self.samples = samples
        self.loss = loss
        return self

    def __enter__(self) -> StepContext:
        self._queue.append((BEGIN, time.monotonic_ns()))
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.append((END, time.monotonic_ns(), self.samples, self.loss))


class StepMarks:
    """The queue of step marks and the methods that fill it (any thread), stamped with
    ``time.monotonic_ns()`` (the sensors' clock; looked up as a module attribute, which
    CPython calls faster than a clock stored on the instance).

    Args:
        maxlen: bound the queue (a forked child's marks go nowhere: ``maxlen=1``).
    """

    __slots__ = ("_context", "_now_ns", "_queue")

    def __init__(self, *, maxlen: int | None = None) -> None:
        self._queue: deque[Mark] = deque(maxlen=maxlen)
        self._now_ns: Callable[[], int] = time.monotonic_ns
        self._context = self._new_context()

    @staticmethod
    def on_clock(clock: Callable[[], float]) -> StepMarks:
        """Marks stamped by ``clock`` (seconds): the fast default for ``time.monotonic``."""
        return StepMarks() if clock is time.monotonic else ClockedStepMarks(ns_clock(clock))

    def _new_context(self) -> StepContext:
        return StepContext(self._queue)

    def __len__(self) -> int:
        """Marks queued and not yet drained."""
        return len(self._queue)

    def drain(self) -> list[Mark]:
        """Take the marks queued so far, oldest first (the sampler thread)."""
        queue = self._queue
        return [queue.popleft() for _ in range(len(queue))]

    def discard(self) -> None:
        """From now on keep at most one mark (a forked child: nobody drains its queue).
        In place, so that methods a hook holds on to are bounded too."""
        self._queue = deque(maxlen=1)
        self._context = self._new_context()

    def step(self, samples: int | None = None, *, loss: SupportsFloat | None = None) -> StepContext:
        """Context manager around one training step: ``with prof.step(samples=64): ...``;
        ``with prof.step() as step: ...; step.loss = loss`` (see :class:`StepContext`)."""
        return self._context(samples, loss)

    def step_begin(self, *, time_ns: int | None = None) -> None:
        """Mark the start of a step (``time_ns``: a stamp on the profiler's clock, default now)."""
        self._queue.append((BEGIN, time.monotonic_ns() if time_ns is None else time_ns))

    def step_end(
        self,
        samples: int | None = None,
        *,
        loss: SupportsFloat | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Mark the end of a step. Without a matching begin, the step starts where the
        previous one ended (contiguous steps)."""
        self._queue.append(
            (END, time.monotonic_ns() if time_ns is None else time_ns, samples, loss)
        )

    def steps(self, iterable: Iterable[T], samples: int | None = None) -> Iterator[T]:
        """Loop wrapper: each iteration of the loop body is one step.

        Samples per step: ``samples`` if given, else ``len()`` of the item's first
        element when it has one (a ``(inputs, targets)`` batch).
        """
        append, now_ns = self._queue.append, self._now_ns
        for item in iterable:
            append((BEGIN, now_ns()))
            yield item
            append((END, now_ns(), samples if samples is not None else batch_size(item), None))

    def epoch_begin(self, epoch: int | None = None) -> None:
        """Following steps belong to ``epoch`` (default: the next epoch number)."""
        self._queue.append((EPOCH, -1 if epoch is None else epoch))


class ClockedStepContext(StepContext):
    """A :class:`StepContext` stamped by an injected clock."""

    __slots__ = ("_now_ns",)

    def __init__(self, queue: deque[Mark], now_ns: Callable[[], int]) -> None:
        super().__init__(queue)
        self._now_ns = now_ns

    def __enter__(self) -> StepContext:
        self._queue.append((BEGIN, self._now_ns()))
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.append((END, self._now_ns(), self.samples, self.loss))


class ClockedStepMarks(StepMarks):
    """:class:`StepMarks` stamped by an injected clock (tests, simulations): the sensors
    and the profiler must then share that clock."""

    __slots__ = ()

    def __init__(self, clock_ns: Callable[[], int], *, maxlen: int | None = None) -> None:
        super().__init__(maxlen=maxlen)
        self._now_ns = clock_ns
        self._context = self._new_context()

    def _new_context(self) -> StepContext:
        return ClockedStepContext(self._queue, self._now_ns)

    def step_begin(self, *, time_ns: int | None = None) -> None:
        self._queue.append((BEGIN, self._now_ns() if time_ns is None else time_ns))

    def step_end(
        self,
        samples: int | None = None,
        *,
        loss: SupportsFloat | None = None,
        time_ns: int | None = None,
    ) -> None:
        self._queue.append((END, self._now_ns() if time_ns is None else time_ns, samples, loss))


class StepAPI:
    """The step API of :class:`~greenprof.Profiler`: the documented signatures.

    A Profiler binds its :class:`StepMarks`' own methods over these per instance (one
    call per mark), or a joined run's. These run when called through the class (hooks
    that watch a profiler's marks wrap them so); they append directly, not through the
    bound methods, so a watched profiler's marks cost one call more than a plain one's,
    not two."""

    _marks: StepMarks

    def step(self, samples: int | None = None, *, loss: SupportsFloat | None = None) -> StepContext:
        """Context manager around one training step: ``with prof.step(samples=64): ...``.

        The loss is usually known only inside the step: set it there, ``with
        prof.step(samples=len(x)) as step: ...; step.loss = loss`` (the value held when
        the block ends is stored; a tensor is converted off the training thread)."""
        return self._marks._context(samples, loss)

    def step_begin(self, *, time_ns: int | None = None) -> None:
        """Mark the start of a step (``time_ns``: a stamp on the profiler's clock in
        nanoseconds, ``time.monotonic_ns()`` by default; default now)."""
        marks = self._marks
        marks._queue.append((BEGIN, marks._now_ns() if time_ns is None else time_ns))

    def step_end(
        self,
        samples: int | None = None,
        *,
        loss: SupportsFloat | None = None,
        time_ns: int | None = None,
    ) -> None:
        """Mark the end of a step. Without a matching begin, the step starts where the
        previous one ended (contiguous steps)."""
        marks = self._marks
        marks._queue.append((END, marks._now_ns() if time_ns is None else time_ns, samples, loss))

    def steps(self, iterable: Iterable[T], samples: int | None = None) -> Iterator[T]:
        """Loop wrapper: each iteration of the loop body is one step.

        Samples per step: ``samples`` if given, else ``len()`` of the item's first
        element when it has one (a ``(inputs, targets)`` batch).
        """
        return self._marks.steps(iterable, samples)

    def epoch_begin(self, epoch: int | None = None) -> None:
        """Following steps belong to ``epoch`` (default: the next epoch number)."""
        self._marks._queue.append((EPOCH, -1 if epoch is None else epoch))


MARK_METHODS = ("step", "steps", "step_begin", "step_end", "epoch_begin")
"""The step API a Profiler takes from its :class:`StepMarks` (or from the run it joined)."""


def batch_size(item: object) -> int | None:
    """Samples in a loop item: the first dimension (or ``len()``) of its first element
    (``(inputs, targets)``), or of a dict batch's first value (``{"input_ids": ...}``)."""
    first = item[0] if isinstance(item, (tuple, list)) and item else item
    if isinstance(first, Mapping) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return len(first) if isinstance(first, Sized) else None

"""The shared base of trainer callbacks (Lightning, Transformers): start, tag, finish.

A trainer callback joins the given or running profiler (else starts its own for the
duration of training), tags the run with the trainer's rank, claims the profiler's steps
so no torch hook counts them twice, ends steps through a GPU-aware
:class:`~greenprof.hooks.torch.StepEnder`, and on the way out closes the ender, drops
its claim and releases the profiler with the run's outcome. The framework-specific
callbacks only translate their framework's events into these calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from greenprof.hooks._common import ProfilerLease, claim, release_claim
from greenprof.hooks.torch import StepEnder
from greenprof.observers import RunObserver
from greenprof.profiler import Profiler
from greenprof.records import RunStatus
from greenprof.status import outcome_of


class TrainerCallbackBase:
    """Mixed in before a framework's callback class: ``class C(TrainerCallbackBase, Callback)``.

    Args:
        profiler: where steps go (default: the running profiler, else an own one for the
            duration of training, configured by ``options``).
        samples: samples per step, when the callback cannot count them.
        **options: ``Profiler`` keywords for an own profiler (``run=``, ``db=``, ``tags=``...).
    """

    framework: ClassVar[str]
    """The hook's name: the run's framework and the steps' claim."""

    def __init__(
        self, profiler: Profiler | None = None, *, samples: int | None = None, **options: Any
    ) -> None:
        super().__init__()
        self._given = profiler
        self._options = options
        self._samples = samples
        self._lease: ProfilerLease | None = None
        self._ender: StepEnder | None = None

    @property
    def profiler(self) -> Profiler | None:
        """The profiler of the current training (None outside it)."""
        return None if self._ender is None else self._ender.profiler

    def _start(
        self,
        *,
        global_rank: int,
        world_size: int,
        env: dict[str, str],
        observers: Sequence[RunObserver] = (),
        **defaults: Any,
    ) -> StepEnder:
        """Acquire the profiler for one training, its run tagged with the trainer's rank;
        ``observers`` join the user's (an own profiler's only: a given or running one's
        run has started already); ``defaults`` are ``Profiler`` keywords the user's
        options win over."""
        options = dict(self._options)
        if observers:
            options["observers"] = (*(options.get("observers") or ()), *observers)
        tags = dict(options.pop("tags", None) or {})
        tags.setdefault("global_rank", global_rank)
        tags.setdefault("world_size", world_size)
        options["tags"] = tags
        options.setdefault("env", env)
        for name, value in defaults.items():
            options.setdefault(name, value)
        self._lease = ProfilerLease(self._given, self.framework, options)
        profiler = self._lease.acquire()
        claim(profiler, self.framework)
        self._ender = StepEnder(profiler)
        return self._ender

    def _finish(self, status: RunStatus = "completed", error: str | None = None) -> None:
        """Close the step ender and release the profiler with the run's outcome (a
        second call does nothing)."""
        ender, self._ender = self._ender, None
        lease, self._lease = self._lease, None
        if ender is not None:
            ender.close()
            release_claim(ender.profiler, self.framework)
        if lease is not None:
            lease.release(status, error)

    def _finish_after(self, exc: BaseException | None) -> None:
        """:meth:`_finish` with the status training that raised ``exc`` ends with."""
        outcome = outcome_of(exc)
        self._finish(outcome.status, outcome.error)

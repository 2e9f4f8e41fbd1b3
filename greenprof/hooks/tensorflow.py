"""TensorFlow: custom training loops and TF1-style graphs.

Usage (one line each)::

    train_step = greenprof.hooks.tensorflow.wrap_step(train_step)    # a tf.function step
    sess = greenprof.hooks.tensorflow.ProfiledSession(sess, train_op)  # tf.compat.v1.Session
    hooks=[greenprof.hooks.tensorflow.GreenprofSessionHook()]          # MonitoredTrainingSession

Python side effects inside a ``tf.function`` run only while it is traced, so step
boundaries are taken *around* the call of the traced step, never inside it. For Keras
``fit`` use :mod:`greenprof.hooks.keras`.

Each records into the given profiler, else the running one (``@greenprof.profile``),
else starts its own, which ``close()`` (or the end of the session / the interpreter)
stops.

GPU note: TensorFlow has no host-visible completion event in its Python API, so a step's
end is the host's return from the step (``Session.run`` returns fetched values, so TF1
steps are complete on return). Eager custom loops that read a value each step
(``loss.numpy()``) are complete on return as well; loops that never read a value let the
host run ahead by at most TF's queue depth, and energy shifts between neighbouring
steps accordingly (window totals stay right).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

import tensorflow as tf

from greenprof.hooks._common import ProfilerLease, batch_size
from greenprof.profiler import Profiler
from greenprof.records import RunStatus

__all__ = ["GreenprofSessionHook", "ProfiledSession", "ProfiledStep", "wrap_step"]

P = ParamSpec("P")
R = TypeVar("R")


class ProfiledStep(Generic[P, R]):
    """A training-step function whose every call is one step. See :func:`wrap_step`.

    Example::

        with wrap_step(train_step, run="tf-loop") as step:
            for x, y in dataset:
                step(x, y)
    """

    def __init__(
        self,
        function: Callable[P, R],
        profiler: Profiler | None,
        samples: int | None,
        options: dict[str, Any],
    ) -> None:
        self.function = function
        self._lease = ProfilerLease(profiler, "tensorflow", options)
        self._samples = samples
        self._profiler: Profiler | None = None

    @property
    def profiler(self) -> Profiler:
        """The profiler the steps go to (acquired on first use)."""
        if self._profiler is None:
            self._profiler = self._lease.acquire()
        return self._profiler

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        profiler = self._profiler or self.profiler
        begin = time.monotonic_ns()
        result = self.function(*args, **kwargs)
        samples = self._samples
        if samples is None and args:
            samples = batch_size(args[0])
        profiler.step_begin(time_ns=begin)
        profiler.step_end(samples)
        return result

    def epoch(self, epoch: int | None = None) -> None:
        """Following steps belong to ``epoch`` (default: the next one)."""
        self.profiler.epoch_begin(epoch)

    def close(self, status: RunStatus = "completed", error: str | None = None) -> None:
        """Stop the profiler if this wrapper started it (a joined run goes on)."""
        if self._profiler is not None:
            self._profiler = None
            self._lease.release(status, error)

    def __enter__(self) -> ProfiledStep[P, R]:
        _ = self.profiler
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted", "KeyboardInterrupt")
        else:
            self.close("failed", f"{exc_type.__name__}: {exc}")


def wrap_step(
    function: Callable[P, R],
    profiler: Profiler | None = None,
    *,
    samples: int | None = None,
    **profiler_options: Any,
) -> ProfiledStep[P, R]:
    """Wrap a (``tf.function``) train step: each call is one step.

    Samples per step: ``samples``, else the leading dimension of the first argument.

    Example::

        train_step = wrap_step(tf.function(train_step))
    """
    return ProfiledStep(function, profiler, samples, profiler_options)


def _fetch_keys(fetches: Any) -> set[Any]:
    keys: set[Any] = set()
    for fetch in tf.nest.flatten(fetches):
        keys.add(id(fetch))
        name = fetch if isinstance(fetch, str) else getattr(fetch, "name", None)
        if isinstance(name, str):
            keys.add(name)
    return keys


def _feed_samples(feed_dict: Any) -> int | None:
    if not feed_dict:
        return None
    return batch_size(next(iter(feed_dict.values())))


class ProfiledSession:
    """A ``tf.compat.v1.Session`` whose ``run()`` calls that fetch ``train_op`` are steps.

    Everything else is delegated to the wrapped session. Samples per step: ``samples``,
    else the leading dimension of the first fed value.

    Example::

        with ProfiledSession(tf.compat.v1.Session(), train_op, run="tf1") as sess:
            sess.run(train_op, feed_dict={x: batch})
    """

    def __init__(
        self,
        session: Any,
        train_op: Any,
        profiler: Profiler | None = None,
        *,
        samples: int | None = None,
        **profiler_options: Any,
    ) -> None:
        self.session = session
        self._train_keys = _fetch_keys(train_op)
        self._lease = ProfilerLease(profiler, "tensorflow", profiler_options)
        self._samples = samples
        self.profiler = self._lease.acquire()

    def run(self, fetches: Any, feed_dict: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``Session.run``; a step when ``fetches`` include the train op."""
        if self._train_keys.isdisjoint(_fetch_keys(fetches)):
            return self.session.run(fetches, feed_dict, *args, **kwargs)
        begin = time.monotonic_ns()
        result = self.session.run(fetches, feed_dict, *args, **kwargs)
        samples = self._samples if self._samples is not None else _feed_samples(feed_dict)
        self.profiler.step_begin(time_ns=begin)
        self.profiler.step_end(samples)
        return result

    def epoch(self, epoch: int | None = None) -> None:
        """Following steps belong to ``epoch`` (default: the next one)."""
        self.profiler.epoch_begin(epoch)

    def close(self, status: RunStatus = "completed", error: str | None = None) -> None:
        """Close the session and stop the profiler if this wrapper started it."""
        try:
            self.session.close()
        finally:
            self._lease.release(status, error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def __enter__(self) -> ProfiledSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close("failed", f"{exc_type.__name__}: {exc}")


class GreenprofSessionHook(tf.compat.v1.train.SessionRunHook):  # type: ignore[misc]
    """A ``SessionRunHook`` for ``tf.compat.v1.train.MonitoredTrainingSession``: each
    ``run()`` (or each that fetches ``train_op``, when given) is one step.

    Example::

        with tf.compat.v1.train.MonitoredTrainingSession(
                hooks=[GreenprofSessionHook(run="tf1-monitored")]) as sess:
            while not sess.should_stop():
                sess.run(train_op)
    """

    def __init__(
        self,
        profiler: Profiler | None = None,
        *,
        train_op: Any = None,
        samples: int | None = None,
        **profiler_options: Any,
    ) -> None:
        self._lease = ProfilerLease(profiler, "tensorflow", profiler_options)
        self._train_keys = None if train_op is None else _fetch_keys(train_op)
        self._samples = samples
        self._begin_ns: int | None = None
        self.profiler: Profiler | None = None

    def begin(self) -> None:
        self.profiler = self._lease.acquire()

    def before_run(self, run_context: Any) -> None:
        args = run_context.original_args
        if self._train_keys is None or not self._train_keys.isdisjoint(_fetch_keys(args.fetches)):
            self._begin_ns = time.monotonic_ns()

    def after_run(self, run_context: Any, run_values: Any) -> None:
        if self._begin_ns is None or self.profiler is None:
            return
        samples = self._samples
        if samples is None:
            samples = _feed_samples(run_context.original_args.feed_dict)
        self.profiler.step_begin(time_ns=self._begin_ns)
        self.profiler.step_end(samples)
        self._begin_ns = None

    def end(self, session: Any) -> None:
        self.profiler = None
        self._lease.release()

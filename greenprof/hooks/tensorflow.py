"""TensorFlow: custom training loops and TF1-style graphs.

Usage (one line each)::

    train_step = greenprof.hooks.tensorflow.wrap_step(train_step)    # a tf.function step
    sess = greenprof.hooks.tensorflow.ProfiledSession(sess, train_op)  # tf.compat.v1.Session
    hooks=[greenprof.hooks.tensorflow.GreenprofSessionHook()]          # MonitoredTrainingSession

Python side effects inside a ``tf.function`` run only while it is traced, so step
boundaries are taken *around* the call of the traced step, never inside it. For Keras
``fit`` use :mod:`greenprof.hooks.keras`.

Each records into the given profiler, else the running one (``@greenprof.profile``),
else starts its own, which ``close()`` (or the end of the session) stops. A script that
never calls ``close()`` (the one-line form) has its run ended when the interpreter
exits: ``completed`` after a clean exit, ``failed`` (``interrupted`` after Ctrl-C) only
when an uncaught exception ends the script.

Samples per step: the leading dimension of the first argument (or fed value), summed over
replicas for ``tf.distribute`` values (``MirroredStrategy`` and friends hand the step a
``PerReplica`` batch).

GPU note: TensorFlow has no host-visible completion event in its Python API, so a step's
end is the host's return from the step (``Session.run`` returns fetched values, so TF1
steps are complete on return). Eager custom loops that read a value each step
(``loss.numpy()``) are complete on return as well; loops that never read a value let the
host run ahead by at most TF's queue depth, and energy shifts between neighbouring
steps accordingly (window totals stay right).
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

import tensorflow as tf

from greenprof.batches import batch_size as _plain_batch_size
from greenprof.hooks._common import ProfilerLease
from greenprof.profiler import Profiler
from greenprof.records import RunStatus
from greenprof.status import Outcome, outcome_of, outcome_of_type

__all__ = ["GreenprofSessionHook", "ProfiledSession", "ProfiledStep", "wrap_step"]

P = ParamSpec("P")
R = TypeVar("R")


def batch_size(batch: object) -> int | None:
    """Samples in a batch, as :func:`greenprof.batches.batch_size`, and summed over
    the replicas of a ``tf.distribute`` value (a ``PerReplica`` has no shape of its own).

    Example::

        batch_size(next(iter(strategy.experimental_distribute_dataset(ds))))
    """
    first = batch
    for _ in range(4):  # unwrap (x, y), [x], {"x": x} down to a distributed value
        if isinstance(first, tf.distribute.DistributedValues):
            sizes = [_plain_batch_size(value) for value in first.values]
            if sizes and all(n is not None for n in sizes):
                return sum(n for n in sizes if n is not None)
            return None
        if isinstance(first, (tuple, list)) and first:
            first = first[0]
        elif isinstance(first, dict) and first:
            first = next(iter(first.values()))
        else:
            break
    return _plain_batch_size(batch)


def _exit_outcome() -> Outcome:
    """How the interpreter is ending, as seen from an ``atexit`` handler: Python leaves an
    uncaught exception that ended the script in ``sys.last_value`` before exit handlers
    run; a clean end (or ``sys.exit``) leaves none."""
    exc = getattr(sys, "last_value", None)
    return outcome_of(exc if isinstance(exc, BaseException) else None)


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
            atexit.register(self._close_at_exit)
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
            atexit.unregister(self._close_at_exit)
            self._lease.release(status, error)

    def _close_at_exit(self) -> None:
        end = _exit_outcome()
        self.close(end.status, end.error)

    def __enter__(self) -> ProfiledStep[P, R]:
        _ = self.profiler
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        end = outcome_of_type(exc_type, exc)
        self.close(end.status, end.error)


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
        self._closed = False
        atexit.register(self._close_at_exit)

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
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        try:
            self.session.close()
        finally:
            self._lease.release(status, error)

    def _close_at_exit(self) -> None:
        """End the run at exit; the session itself is left to TensorFlow."""
        self._closed = True
        end = _exit_outcome()
        self._lease.release(end.status, end.error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def __enter__(self) -> ProfiledSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        end = outcome_of_type(exc_type, exc)  # Ctrl-C is "interrupted" here too
        self.close(end.status, end.error)


class GreenprofSessionHook(tf.compat.v1.train.SessionRunHook):  # type: ignore[misc]
    """A ``SessionRunHook`` for ``tf.compat.v1.train.MonitoredTrainingSession``: each
    ``run()`` that trains is one step; runs that only log or evaluate are not.

    Which runs train: those that fetch ``train_op`` when given; else those that fetch an
    op of the graph's ``train_op`` collection (``tf.compat.v1.GraphKeys.TRAIN_OP``, which
    Estimator-style code fills); else those that advance the global step (the hook then
    fetches the global step with each run, as ``StepCounterHook`` does); else every run.

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
        self._given_keys = None if train_op is None else _fetch_keys(train_op)
        self._train_keys: set[Any] | None = None
        self._global_step: Any = None
        self._last_global_step: Any = None
        self._samples = samples
        self._begin_ns: int | None = None
        self.profiler: Profiler | None = None

    def begin(self) -> None:
        """Find what a training run fetches (the graph is complete but not yet final)."""
        self.profiler = self._lease.acquire()
        self._train_keys = self._given_keys
        self._global_step = None
        if self._train_keys is None:
            collection = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAIN_OP)
            if collection:
                self._train_keys = _fetch_keys(collection)
            else:
                self._global_step = tf.compat.v1.train.get_global_step()

    def after_create_session(self, session: Any, coord: Any) -> None:
        if self._global_step is not None:
            self._last_global_step = session.run(self._global_step)

    def before_run(self, run_context: Any) -> Any:
        args = run_context.original_args
        if self._global_step is not None:
            self._begin_ns = time.monotonic_ns()
            return tf.compat.v1.train.SessionRunArgs(self._global_step)
        if self._train_keys is None or not self._train_keys.isdisjoint(_fetch_keys(args.fetches)):
            self._begin_ns = time.monotonic_ns()
        return None

    def after_run(self, run_context: Any, run_values: Any) -> None:
        begin_ns, self._begin_ns = self._begin_ns, None
        if begin_ns is None or self.profiler is None:
            return
        if self._global_step is not None:
            step = run_values.results
            advanced = step != self._last_global_step
            self._last_global_step = step
            if not advanced:  # a run that only logged or evaluated
                return
        samples = self._samples
        if samples is None:
            samples = _feed_samples(run_context.original_args.feed_dict)
        self.profiler.step_begin(time_ns=begin_ns)
        self.profiler.step_end(samples)

    def end(self, session: Any) -> None:
        self.profiler = None
        self._lease.release()

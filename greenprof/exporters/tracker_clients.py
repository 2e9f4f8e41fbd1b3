"""The experiment trackers greenprof logs to: MLflow and Weights & Biases.

Each client is found on the thread that starts the Profiler (MLflow's active run is
per thread), then used only from the observer's own thread. Neither library is imported
unless the user already did (``sys.modules``) or named it (``trackers=["mlflow"]``):
``import mlflow`` takes seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from greenprof.exporters.tracker_feed import (
    EPOCH_AXIS,
    EPOCH_PREFIX,
    STEP_AXIS,
    STEP_PREFIX,
    MetricPoint,
)

log = logging.getLogger("greenprof")

MLFLOW_BATCH = 1000
"""The most metrics one MLflow ``log_batch`` call takes."""

ImportModule = Callable[[str], ModuleType]


class TrackerClient(Protocol):
    """One tracker's run, as the observer uses it (from its own thread)."""

    tracker: str
    """``mlflow`` or ``wandb``."""
    run_label: str
    """The tracker's run, for messages."""

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log(self, points: Sequence[MetricPoint], timestamp_ms: int) -> None: ...

    def finish(self, totals: Mapping[str, float]) -> None: ...


def tracker_module(
    name: str, *, forced: bool, modules: Mapping[str, ModuleType], import_module: ImportModule
) -> ModuleType | None:
    """The tracker's module: already imported by the user, or imported because the user
    asked for it by name (None when neither)."""
    module = modules.get(name)
    if module is not None or not forced:
        return module
    return import_module(name)


class MlflowRun:
    """An MLflow run — the one active on the Profiler's starting thread (:meth:`active`),
    or one named by its id (Lightning's ``MLFlowLogger`` creates its run through an
    ``MlflowClient`` and leaves none active) — logged to through an ``MlflowClient``
    (thread-safe; no fluent, per-thread state)."""

    tracker = "mlflow"

    def __init__(self, mlflow: Any, run_id: str, tracking_uri: str) -> None:
        self._entities = mlflow.entities
        self._client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id
        self.run_label = f"MLflow run {run_id}"

    @classmethod
    def active(cls, mlflow: ModuleType) -> MlflowRun | None:
        """The active run of this thread, or None."""
        active: Any = mlflow.active_run()
        if active is None:
            return None
        uri: str = mlflow.get_tracking_uri()
        return cls(mlflow, active.info.run_id, uri)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        run_tags = [self._entities.RunTag(key, value) for key, value in tags.items()]
        self._client.log_batch(self.run_id, tags=run_tags)

    def log(self, points: Sequence[MetricPoint], timestamp_ms: int) -> None:
        metrics = [self._entities.Metric(p.key, p.value, timestamp_ms, p.step) for p in points]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[start : start + MLFLOW_BATCH])

    def finish(self, totals: Mapping[str, float]) -> None:
        """Nothing more: the last points carry the totals."""


class WandbRun:
    """The W&B run of the process (``wandb.run``).

    Points are logged with ``commit=False`` and their own x-axes (``greenprof/step``,
    ``greenprof_epoch/epoch``, declared with ``define_metric``): they join the user's
    next history row and never move W&B's own step, which the user's ``log(step=...)``
    owns. Between two of the user's rows only the latest greenprof point is kept; the
    totals also go to the run summary.
    """

    tracker = "wandb"

    def __init__(self, run: Any) -> None:
        self._run = run
        self.run_label = f"W&B run {run.id}"
        self._axes_defined = False

    @classmethod
    def active(cls, wandb: ModuleType) -> WandbRun | None:
        run = getattr(wandb, "run", None)
        return None if run is None else cls(run)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._define_axes()
        self._run.config.update(dict(tags), allow_val_change=True)

    def log(self, points: Sequence[MetricPoint], timestamp_ms: int) -> None:
        self._define_axes()
        rows: dict[tuple[str, int], dict[str, float]] = {}
        for point in points:
            axis = EPOCH_AXIS if point.key.startswith(EPOCH_PREFIX) else STEP_AXIS
            rows.setdefault((axis, point.step), {axis: point.step})[point.key] = point.value
        for row in rows.values():
            self._run.log(row, commit=False)

    def finish(self, totals: Mapping[str, float]) -> None:
        self._run.summary.update(dict(totals))

    def _define_axes(self) -> None:
        if self._axes_defined:
            return
        self._run.define_metric(STEP_AXIS)
        self._run.define_metric(STEP_PREFIX + "*", step_metric=STEP_AXIS)
        self._run.define_metric(EPOCH_AXIS)
        self._run.define_metric(EPOCH_PREFIX + "*", step_metric=EPOCH_AXIS)
        self._axes_defined = True


FINDERS: Mapping[str, Callable[[ModuleType], TrackerClient | None]] = {
    "mlflow": MlflowRun.active,
    "wandb": WandbRun.active,
}
"""How each known tracker's active run is found, given its module."""

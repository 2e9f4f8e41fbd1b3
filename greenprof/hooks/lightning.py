"""PyTorch Lightning: a Callback, one step per optimizer step, epochs, global rank.

Usage (one line)::

    trainer = L.Trainer(callbacks=[greenprof.hooks.lightning.GreenprofCallback()])

It records into the given profiler, else the running one (``@greenprof.profile``), else
runs its own for the duration of ``fit``. A step ends when ``trainer.global_step``
advances (so gradient accumulation makes one step of several batches, whose samples are
summed); on CUDA the end is a completed CUDA event, as in :mod:`greenprof.hooks.torch`.

Multi-process (DDP, torchrun, SLURM): every rank runs its own callback and its own
profiler (its own run, tagged ``global_rank`` / ``world_size``), which measures the
devices of that process; node-wide sensors follow the profiler's sensor detection. The
run records the trainer's global rank, local rank and world size even where the launcher
set no ``RANK`` (Lightning's own subprocess launcher sets only ``LOCAL_RANK``), so the
runs of one job are grouped by their job and rank.

MLflow: Lightning's ``MLFlowLogger`` creates its run with an ``MlflowClient`` and
leaves no active run, so the tracker setting's ``auto`` would not find it. When the
trainer has one (``trainer.loggers``), the callback's own profiler on global rank 0
logs its energy and carbon (per-step and per-epoch, see
:mod:`greenprof.exporters.tracker_feed`) to that logger's run, unless the ``trackers``
setting leaves MLflow out. A profiler given to the callback, or already running, keeps
the observers its run started with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone `pytorch_lightning` distribution
    from pytorch_lightning import Callback  # type: ignore[assignment]

from greenprof.batches import batch_size
from greenprof.hooks._trainer import TrainerCallbackBase
from greenprof.observers import RunObserver
from greenprof.profiler import Profiler
from greenprof.tracker_setting import AUTO, parse_trackers

__all__ = ["GreenprofCallback"]

log = logging.getLogger("greenprof")


class GreenprofCallback(TrainerCallbackBase, Callback):
    """Per-optimizer-step energy for a Lightning ``Trainer``.

    Args:
        profiler: where steps go (default: the running profiler, else its own for the
            duration of ``fit``, configured by ``profiler_options``).
        samples: samples per step, when the batch size cannot be inferred.

    Example::

        trainer = L.Trainer(max_epochs=3, callbacks=[GreenprofCallback(run="resnet")])
    """

    framework = "lightning"

    def __init__(
        self, profiler: Profiler | None = None, *, samples: int | None = None, **options: Any
    ) -> None:
        super().__init__(profiler, samples=samples, **options)
        self._last_step = 0
        self._pending: int | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._start(
            global_rank=trainer.global_rank,
            world_size=trainer.world_size,
            env=_rank_environment(trainer),
            observers=_mlflow_logger_observers(trainer, self._options.get("trackers")),
        )
        self._last_step = trainer.global_step
        self._pending = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._ender is not None:
            self._ender.epoch(trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self._samples if self._samples is not None else batch_size(batch)
        if n is not None:
            self._pending = (self._pending or 0) + n

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self._ender is None or step == self._last_step:
            return
        self._last_step = step
        samples, self._pending = self._pending, None
        self._ender.end(samples)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish_after(exception)


def _mlflow_logger_observers(trainer: Any, trackers: Any) -> Sequence[RunObserver]:
    """An observer logging to the run of the trainer's ``MLFlowLogger`` (rank 0 only:
    the logger creates no run elsewhere), if it has one and the ``trackers`` setting
    (the callback's option, else ``$GREENPROF_TRACKERS``) lets MLflow have the numbers."""
    if trainer.global_rank != 0:
        return ()
    names = parse_trackers(trackers)
    if AUTO not in names and "mlflow" not in names:
        return ()
    for logger in getattr(trainer, "loggers", None) or ():
        if type(logger).__name__ != "MLFlowLogger":
            continue
        try:
            run_id = logger.run_id  # creates the logger's run if it has none yet
            tracking_uri = logger.experiment.tracking_uri
            if not run_id:
                return ()
            from greenprof.exporters.trackers import mlflow_run_observer

            return (mlflow_run_observer(str(run_id), str(tracking_uri)),)
        except Exception as exc:
            log.warning("greenprof: the MLFlowLogger's run gets no numbers: %r", exc)
            return ()
    return ()


def _rank_environment(trainer: Any) -> dict[str, str]:
    """The process's environment with the trainer's ranks filled in where the launcher
    left them out, for the run this callback starts (the Profiler reads a run's rank from
    its environment; Lightning's subprocess launcher sets no ``RANK``)."""
    env = dict(os.environ)
    if trainer.world_size <= 1:
        return env
    if env.get("RANK", "") == "":
        env["RANK"] = str(trainer.global_rank)
        env["LOCAL_RANK"] = str(trainer.local_rank)
        env["WORLD_SIZE"] = str(trainer.world_size)
    if not any(env.get(name) for name in _JOB_VARIABLES) and env.get("MASTER_PORT"):
        # every rank of one launch shares the rendezvous address, and no other launch does
        env["GREENPROF_JOB"] = (
            f"lightning-{env.get('MASTER_ADDR', 'localhost')}-{env['MASTER_PORT']}"
        )
    return env


_JOB_VARIABLES = (
    "GREENPROF_JOB",
    "TORCHELASTIC_RUN_ID",
    "SLURM_JOB_ID",
    "OMPI_MCA_ess_base_jobid",
    "PMIX_NAMESPACE",
    "PMI_JOBID",
)
"""Variables from which the Profiler reads a job id (``greenprof.jobs``)."""

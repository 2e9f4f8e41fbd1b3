"""Which job, rank and node a process belongs to, from its launcher's environment (pure).

A job is several processes (ranks) on one or more nodes training one model: torchrun,
SLURM, Open MPI, MPICH/PMI. Each rank is one greenprof run; the runs of a job share a
``job_id``, and ``greenprof show JOB`` totals them with every device counted once.

Sources, first match wins:

- job id: ``Profiler(job=)`` / ``greenprof run --job``, ``$GREENPROF_JOB``,
  ``$TORCHELASTIC_RUN_ID`` (torchrun; its default ``none`` is replaced by the rendezvous
  address, which is unique per launch), ``$SLURM_JOB_ID`` (with ``$SLURM_STEP_ID``),
  Open MPI's ``$OMPI_MCA_ess_base_jobid``, PMIx's ``$PMIX_NAMESPACE``, ``$PMI_JOBID``.
- rank / local rank / world size: ``$RANK`` / ``$LOCAL_RANK`` / ``$WORLD_SIZE`` (torchrun,
  accelerate, DeepSpeed), then SLURM's ``$SLURM_PROCID`` / ``$SLURM_LOCALID`` /
  ``$SLURM_NTASKS``, Open MPI's ``$OMPI_COMM_WORLD_RANK`` / ``_LOCAL_RANK`` / ``_SIZE``,
  and PMI's ``$PMI_RANK`` / ``$MPI_LOCALRANKID`` / ``$PMI_SIZE``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from greenprof.errors import ConfigError
from greenprof.records import RunInfo

JOB_ENV = "GREENPROF_JOB"

_RANKS = (
    ("RANK", "LOCAL_RANK", "WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "MPI_LOCALRANKID", "PMI_SIZE"),
)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """Where one process stands in its job (all None for a single-process run)."""

    job_id: str | None
    rank: int | None
    local_rank: int | None
    world_size: int | None
    host: str


def detect_job(
    env: Mapping[str, str], *, job: str | None = None, host: str | None = None
) -> JobInfo:
    """The job of the process whose environment is ``env`` (see the module docstring)."""
    rank = local_rank = world_size = None
    for rank_var, local_var, size_var in _RANKS:
        if env.get(rank_var, "") != "":
            rank = _int(env, rank_var)
            local_rank = _int(env, local_var)
            world_size = _int(env, size_var)
            break
    return JobInfo(
        job_id=job if job is not None else _job_id(env),
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        host=host if host is not None else socket.gethostname(),
    )


def _job_id(env: Mapping[str, str]) -> str | None:
    if env.get(JOB_ENV):
        return env[JOB_ENV]
    elastic = env.get("TORCHELASTIC_RUN_ID", "")
    if elastic and elastic != "none":
        return f"torchrun-{elastic}"
    if elastic == "none" and env.get("MASTER_PORT"):
        return f"torchrun-{env.get('MASTER_ADDR', 'localhost')}-{env['MASTER_PORT']}"
    if env.get("SLURM_JOB_ID"):
        step = env.get("SLURM_STEP_ID", "")
        return f"slurm-{env['SLURM_JOB_ID']}" + (f".{step}" if step else "")
    for name, prefix in (
        ("OMPI_MCA_ess_base_jobid", "ompi"),
        ("PMIX_NAMESPACE", "pmix"),
        ("PMI_JOBID", "pmi"),
    ):
        if env.get(name):
            return f"{prefix}-{env[name]}"
    return None


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "")
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be an integer; got {value!r}") from None


@dataclass(frozen=True, slots=True)
class RankTotals:
    """One rank's run within a job."""

    run_id: int
    rank: int | None
    host: str
    status: str
    steps: int
    samples: int | None
    energy_j: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class JobTotals:
    """A job's totals with every device counted once (see :func:`job_totals`)."""

    job_id: str
    ranks: tuple[RankTotals, ...]
    node_energy_j: dict[str, float]
    """Energy per host, each device counted once."""
    energy_j: float
    """All devices of all nodes, each counted once."""
    counted_twice_j: float
    """Energy that summing the ranks' runs would have counted a second time."""
    steps: int
    """Training steps of the job: the most any rank took (ranks step together)."""
    samples: int | None
    """Samples over all ranks (each rank trains on its own share of the batch)."""
    duration_s: float
    """First rank's start to last rank's end."""
    co2_g: float | None


def job_totals(
    job_id: str,
    runs: Sequence[RunInfo],
    device_energy_j: Mapping[int, Mapping[str, float]],
) -> JobTotals:
    """Total a job's runs, counting each physical device once: a GPU by its UUID, a
    node-wide sensor (CPU package, DRAM) once per host, anything else per run. A device
    two runs both measured contributes the larger of their figures (they overlap)."""
    best: dict[tuple[str, ...], tuple[str, float]] = {}
    summed = 0.0
    for run in runs:
        energies = device_energy_j.get(run.run_id, {})
        for info in run.devices:
            energy = float(energies.get(info.device, 0.0))
            summed += energy
            if info.uuid:
                key: tuple[str, ...] = ("uuid", info.uuid)
            elif info.node_wide:
                key = ("node", run.host, info.device)
            else:
                key = ("run", str(run.run_id), info.device)
            host, previous = best.get(key, (run.host, 0.0))
            best[key] = (host, max(previous, energy))
    nodes: dict[str, float] = {}
    for host, energy in best.values():
        nodes[host] = nodes.get(host, 0.0) + energy
    total = sum(nodes.values())
    starts = [r.started_at for r in runs]
    ends = [r.started_at + r.duration_s for r in runs]
    samples = [r.samples for r in runs if r.samples is not None]
    carbon = next((r.carbon for r in runs if r.carbon is not None), None)
    return JobTotals(
        job_id=job_id,
        ranks=tuple(
            RankTotals(
                r.run_id, r.rank, r.host, r.status, r.steps, r.samples, r.energy_j, r.duration_s
            )
            for r in sorted(runs, key=lambda r: (r.rank is None, r.rank or 0, r.run_id))
        ),
        node_energy_j=dict(sorted(nodes.items())),
        energy_j=total,
        counted_twice_j=max(0.0, summed - total),
        steps=max((r.steps for r in runs), default=0),
        samples=sum(samples) if samples else None,
        duration_s=(max(ends) - min(starts)) if runs else 0.0,
        co2_g=None if carbon is None else carbon.co2_g(total),
    )

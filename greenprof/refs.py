"""Run references on the command line: a run id, a run name, or a job id.

``greenprof show``, ``compare``, ``export`` and ``report`` take RUN arguments. A job (the
ranks of one distributed training, see :mod:`greenprof.jobs`) is named by its job id;
where a command works on runs, a job id stands for every run of the job, its ranks in
rank order. A run id (digits) means that run when one exists; otherwise a reference that
is a job id names the job, and anything else is a run name for the store to resolve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore


def expand_jobs(store: RunStore, refs: Sequence[str]) -> list[str]:
    """``refs`` with each job id replaced by its runs' ids (rank order), duplicates removed.

    Example::

        expand_jobs(store, ["7", "tr-4f2a"])   # ["7", "12", "13", "14", "15"]
    """
    expanded: dict[str, None] = {}
    for ref in refs:
        for one in _expand(store, ref):
            expanded.setdefault(one, None)
    return list(expanded)


def _expand(store: RunStore, ref: str) -> list[str]:
    if ref.isdigit() and _is_run(store, int(ref)):
        return [ref]
    ranks = store.runs(job=ref)
    if not ranks:
        return [ref]
    ranks.sort(key=lambda run: (run.rank if run.rank is not None else -1, run.run_id))
    return [str(run.run_id) for run in ranks]


def _is_run(store: RunStore, run_id: int) -> bool:
    from greenprof.errors import RunNotFound

    try:
        store.run(run_id)
    except RunNotFound:
        return False
    return True

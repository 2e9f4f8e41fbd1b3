"""One batching writer thread per process, whatever the store.

Callers on any thread enqueue rows (a list append under a lock, no I/O); the writer
thread hands them to a sink (``sink.py``: SQLite or PostgreSQL) in one transaction per
flush, at least every ``flush_interval_s`` and at :meth:`StoreWriter.close`.

Nothing accepted is dropped silently, and a store that fails never reaches the caller:

- A commit that fails (locked, disk full, read-only, the server gone) keeps its rows
  queued and is retried at the next flush; the real error is logged once per outage, and
  again when writing works again.
- The queue is bounded: past ``max_backlog_samples`` queued samples, every other queued
  sample is dropped (the sample curve gets coarser, counted); past ``max_backlog_steps``
  queued steps, new steps are counted as lost and not kept. Lost steps are recorded on the
  run (``lost_steps``), which then ends ``incomplete`` rather than ``completed``.
- A row whose values cannot be stored (a NaN where a number is required) is repaired
  where a rule exists (NaN/inf loss → NULL) and otherwise dropped and counted as lost: it
  never blocks the rows behind it.
- :meth:`StoreWriter.close` retries for at most ``close_timeout_s``; what is still not
  stored then is reported on stderr and, if the store can be written at all, on the run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from greenprof.records import RunStatus, TagValue
from greenprof.store.location import StoreLocation, parse_location
from greenprof.store.rows import (
    MAX_ERROR_CHARS,
    Batch,
    PendingStepRow,
    RunSpec,
    RunTotals,
    SampleRow,
    StepEnergyRow,
    StepRow,
    Update,
    WriterHealth,
    prepare,
    tags_json,
)
from greenprof.store.sink import Sink, is_url, open_sink
from greenprof.store.sqlite_sink import insert_rows

__all__ = [
    "CLOSE_TIMEOUT_S",
    "MAX_BACKLOG_SAMPLES",
    "MAX_BACKLOG_STEPS",
    "MAX_ERROR_CHARS",
    "PendingStepRow",
    "RunSpec",
    "RunTotals",
    "SampleRow",
    "StepEnergyRow",
    "StepRow",
    "StoreWriter",
    "WriterHealth",
    "insert_rows",
    "mark_run_ended",
    "open_writer",
]

log = logging.getLogger("greenprof")

MAX_BACKLOG_STEPS = 1_000_000
"""Queued step rows kept while the database cannot be written (~150 MB)."""
MAX_BACKLOG_SAMPLES = 200_000
"""Queued sample rows past which every other one is dropped (thinned, counted)."""
CLOSE_TIMEOUT_S = 15.0
"""How long :meth:`StoreWriter.close` keeps retrying a database that cannot be written."""


class StoreWriter:
    """Writes one run's rows from a background thread.

    Example::

        writer = StoreWriter(Path("runs.db"))
        run_id = writer.create_run(RunSpec("resnet", started_at=time.time(), interval_s=0.1))
        writer.add_steps([(0, 0, 0.0, 0.5, 64, 12.5, 0, None)], [(0, "gpu:0", 12.5)])
        writer.close(status="completed")

    ``sink`` replaces the SQLite file at ``path`` (:func:`open_writer` picks it from a URL).
    """

    def __init__(
        self,
        path: Path | str | StoreLocation,
        *,
        flush_interval_s: float = 0.3,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        max_backlog_steps: int = MAX_BACKLOG_STEPS,
        max_backlog_samples: int = MAX_BACKLOG_SAMPLES,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        sink: Sink | None = None,
    ) -> None:
        self._sink = sink if sink is not None else open_sink(path)
        self.path = self._sink.name if is_url(path) else path
        """The SQLite file, or the store's URL without its password."""
        self._flush_interval_s = flush_interval_s
        self._wall_clock = wall_clock
        self._clock = clock
        self._max_backlog_steps = max_backlog_steps
        self._max_backlog_samples = max_backlog_samples
        self._close_timeout_s = close_timeout_s
        self._lock = threading.Lock()  # guards _pending swaps and the counters
        self._db_lock = threading.Lock()  # guards the sink
        self._pending = Batch()
        self._wake = threading.Event()
        self._stopping = False
        self._run_id: int | None = None
        self._thread: threading.Thread | None = None
        self._stored_through = -1  # highest step stored: its pending row is obsolete
        self._lost_steps = 0
        self._lost_reasons: dict[str, int] = {}
        self._thinned_samples = 0
        self._failing_since_s: float | None = None
        self.error: BaseException | None = None
        self.rows_written = 0

    @property
    def sink(self) -> Sink:
        return self._sink

    @property
    def run_id(self) -> int:
        if self._run_id is None:
            raise RuntimeError("create_run() first")
        return self._run_id

    def health(self) -> WriterHealth:
        with self._lock:
            return WriterHealth(
                lost_steps=self._lost_steps,
                thinned_samples=self._thinned_samples,
                pending_rows=self._pending.rows(),
                failing_since_s=self._failing_since_s,
                last_error=None if self.error is None else str(self.error),
            )

    def create_run(self, spec: RunSpec) -> int:
        """Insert the run and its devices synchronously, then start the writer thread."""
        with self._db_lock:
            run_id = self._sink.create_run(spec, new_uid())
        self._run_id = run_id
        self._thread = threading.Thread(target=self._loop, name="greenprof-writer", daemon=True)
        self._thread.start()
        return run_id

    def add_steps(
        self, steps: Iterable[StepRow], step_energy: Iterable[StepEnergyRow] = ()
    ) -> None:
        """Queue step rows and their per-device energies."""
        with self._lock:
            pending = self._pending
            room = self._max_backlog_steps - len(pending.steps)
            steps = list(steps)
            if len(steps) > room:
                self._lose(len(steps) - max(room, 0), "the database could not be written")
                kept = {row[0] for row in steps[: max(room, 0)]}
                steps = steps[: max(room, 0)]
                step_energy = [row for row in step_energy if row[0] in kept]
            pending.steps.extend(steps)
            pending.step_energy.extend(step_energy)

    def add_pending_steps(self, rows: Iterable[PendingStepRow]) -> None:
        """Queue step boundaries whose energy is not known yet (crash insurance)."""
        with self._lock:
            if len(self._pending.closed) < self._max_backlog_steps:
                self._pending.closed.extend(rows)

    def add_samples(self, samples: Iterable[SampleRow]) -> None:
        """Queue raw sensor samples."""
        with self._lock:
            queued = self._pending.samples
            queued.extend(samples)
            if len(queued) > self._max_backlog_samples:
                self._thinned_samples += len(queued) - len(queued[::2])
                self._pending.samples = queued[::2]

    def set_totals(self, totals: RunTotals) -> None:
        """Replace the run's running totals at the next flush."""
        with self._lock:
            self._pending.totals = totals

    def update_device(
        self,
        device: str,
        *,
        idle_power_w: float | None = None,
        note: str | None = None,
        rejected_readings: int | None = None,
    ) -> None:
        """Record what was learnt about a device during the run."""
        with self._lock:
            updates = self._pending.updates
            if idle_power_w is not None:
                updates.append(Update("idle_power_w", (device, idle_power_w)))
            if note is not None:
                updates.append(Update("device_note", (device, note)))
            if rejected_readings is not None:
                updates.append(Update("rejected_readings", (device, rejected_readings)))

    def rename(self, name: str, tags: Mapping[str, TagValue]) -> None:
        """Give the run another name and more tags (an explicit Profiler joined it)."""
        with self._lock:
            self._pending.updates.append(Update("rename", (name, tags_json(tags))))

    def set_framework(self, framework: str) -> None:
        """Record the framework that drives the run (known only once a hook joins)."""
        with self._lock:
            self._pending.updates.append(Update("framework", (framework,)))

    def record_error(self, message: str) -> None:
        """Record a problem on the run without ending it (shown by `greenprof show`); each
        problem is added to the ones before (up to MAX_ERROR_CHARS)."""
        with self._lock:
            self._pending.updates.append(Update("error", (message,)))

    def flush(self) -> None:
        """Commit everything queued so far (any thread). Raises the store's error on failure;
        the rows stay queued for the next attempt."""
        if self._run_id is None:
            return
        with self._lock:
            pending, self._pending = self._pending, Batch()
        with self._db_lock:
            prepared, bad, through = prepare(
                self._run_id,
                pending,
                stored_through=self._stored_through,
                heartbeat_at=self._wall_clock(),
                lost_steps=self._lost_steps,
            )
            try:
                self._sink.write(self._run_id, prepared)
            except self._sink.errors as exc:
                with self._lock:
                    self._pending.put_back(pending)
                self._outage(exc)
                raise
            self._stored_through = through
            self._lose(bad, "a value could not be stored (not a finite number)")
            self.rows_written += len(prepared.steps) + len(prepared.step_energy)
            self.rows_written += len(prepared.samples)
        if self._failing_since_s is not None:
            log.warning(
                "greenprof: writing to %s again after %.1f s; nothing queued was lost",
                self._sink.name,
                self._clock() - self._failing_since_s,
            )
            self._failing_since_s = None

    def close(self, *, status: RunStatus = "completed", error: str | None = None) -> None:
        """Flush, mark the run ended with ``status``, stop the thread and close the store.

        A run whose accepted steps could not all be stored ends ``incomplete`` (if it would
        have been ``completed``), with the count and the cause in ``error``."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._close_timeout_s)
        deadline_s = self._clock() + self._close_timeout_s
        flushed = self._retry_until(deadline_s, self.flush)
        if not flushed:
            with self._lock:
                unstored = len(self._pending.steps)
                self._pending = Batch()
            self._lose(unstored, "the database could not be written at the end of the run")
        if self._run_id is not None:
            status, error = self._final_status(status, error)
            now = self._wall_clock()
            run_id = self._run_id

            def end_run() -> None:
                with self._db_lock:
                    self._sink.end_run(
                        run_id, status=status, error=error, lost_steps=self._lost_steps, now=now
                    )

            if not self._retry_until(deadline_s, end_run):
                log.error(
                    "greenprof: could not record the end of run %s in %s (%s); "
                    "`greenprof repair` will close it later",
                    run_id,
                    self._sink.name,
                    self._describe_error(),
                )
        if self._lost_steps:
            log.error(
                "greenprof: %d step(s) of run %s could not be stored in %s: %s",
                self._lost_steps,
                self._run_id,
                self._sink.name,
                self._lost_summary(),
            )
        with self._db_lock:
            self._sink.close()

    # Writer thread -------------------------------------------------------------

    def _loop(self) -> None:
        self._repair_dead_runs()
        while not self._stopping:
            self._wake.wait(self._flush_interval_s)
            if self._stopping:
                break
            try:
                self.flush()
            except self._sink.errors:
                pass  # logged by _outage; the rows stay queued
            except Exception as exc:  # never let the writer die silently
                log.warning("greenprof: writer error on %s: %r", self._sink.name, exc)
                self.error = exc

    def _repair_dead_runs(self) -> None:
        """Attribute and close this host's runs whose process died (``greenprof repair``
        for them), on this thread so that starting a run stays fast."""
        try:
            with self._db_lock:
                self._sink.repair_dead_runs(exclude=self.run_id, now=self._wall_clock())
        except self._sink.errors as exc:
            log.debug("greenprof: repairing dead runs failed: %s", self._sink.describe(exc))

    def _retry_until(self, deadline_s: float, action: Callable[[], None]) -> bool:
        while True:
            try:
                action()
                return True
            except self._sink.errors as exc:
                self.error = exc
                if self._clock() >= deadline_s:
                    return False
                time.sleep(min(0.2, max(0.0, deadline_s - self._clock())))

    def _outage(self, exc: BaseException) -> None:
        self.error = exc
        if self._failing_since_s is None:
            self._failing_since_s = self._clock()
            with self._lock:
                queued = self._pending.rows()
            log.warning(
                "greenprof: %s; keeping %d row(s) queued and retrying every %.1f s",
                self._sink.describe(exc),
                queued,
                self._flush_interval_s,
            )

    def _lose(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        self._lost_steps += count
        self._lost_reasons[reason] = self._lost_reasons.get(reason, 0) + count

    def _describe_error(self) -> str | None:
        return None if self.error is None else self._sink.describe(self.error)

    def _lost_summary(self) -> str:
        cause = f" (last error: {self._describe_error()})" if self.error is not None else ""
        reasons = "; ".join(f"{n} because {why}" for why, n in self._lost_reasons.items())
        return reasons + cause

    def _final_status(self, status: RunStatus, error: str | None) -> tuple[RunStatus, str | None]:
        if not self._lost_steps:
            return status, error
        lost = f"{self._lost_steps} step(s) not stored: {self._lost_summary()}"
        if status == "completed":
            status = "incomplete"
        return status, lost if error is None else f"{error}; {lost}"


def new_uid() -> str:
    """A run's uid: 128 random bits, unique across every store it is ever copied to."""
    return os.urandom(16).hex()


def open_writer(
    db: str | os.PathLike[str] | StoreLocation | None,
    *,
    flush_interval_s: float = 0.3,
    **options: Any,
) -> StoreWriter:
    """A writer for ``db``: a SQLite path, a ``postgresql://`` URL, or None for the default
    store (``$GREENPROF_DB``, else the user data directory). Raises a one-line StoreError
    when the store cannot be opened (a down server, bad credentials, a foreign database).
    ``options``: the other keywords of :class:`StoreWriter`."""
    location = parse_location(db)
    target: Path | str = location.target if location.kind == "postgresql" else location.path
    return StoreWriter(target, flush_interval_s=flush_interval_s, **options)


def mark_run_ended(
    path: Path | str | StoreLocation,
    run_id: int,
    status: RunStatus,
    error: str,
    *,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Record from outside a run's process how it ended (``greenprof run`` does this when
    the child exits non-zero). A run already marked failed or interrupted keeps its status;
    the cause goes first in ``error``, before what the run had recorded. ``path``: a SQLite
    file or a ``postgresql://`` URL."""
    from greenprof.store.ended import mark_ended

    mark_ended(path, run_id, status, error, now=wall_clock())

"""Whether a run marked ``running`` is still being written: the one rule readers, repair
and exporters share."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from greenprof.records import RunStatus

STALE_AFTER_S = 30.0
"""A run still marked running whose process has not written for this long is taken for
dead (killed, or its node lost); the writer commits about every 0.3 s."""
QUIET_S = 2.0
"""A run on this host whose process no longer exists is taken for dead once its heartbeat
is this old (its final flush may still be landing)."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def run_is_dead(
    *,
    host: str,
    pid: int,
    age_s: float,
    this_host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
    stale_after_s: float | None = STALE_AFTER_S,
) -> bool:
    """A running run is dead when silent for ``stale_after_s`` (any host), or when it was
    written on this host by a process that is gone (``stale_after_s=None``: only that)."""
    if stale_after_s is not None and age_s > stale_after_s:
        return True
    local = host == (this_host if this_host is not None else socket.gethostname())
    return local and age_s > QUIET_S and not alive(pid)


@dataclass(frozen=True)
class RunLiveness:
    """The displayed status of a stored run: ``running`` turns ``interrupted`` when
    :func:`run_is_dead` says so. Every reader (each backend's run listing, the
    Prometheus rows) asks this one object; its world (clock, process table, host name)
    is injected so tests can age a run without sleeping."""

    wall_clock: Callable[[], float] = time.time
    alive: Callable[[int], bool] = pid_alive
    this_host: str | None = None
    stale_after_s: float = STALE_AFTER_S

    def status(self, stored: str, *, host: str, pid: int, heartbeat_at: float) -> RunStatus:
        """The status to show for a run stored as ``stored``."""
        if stored != "running":
            return cast(RunStatus, stored)
        dead = run_is_dead(
            host=host,
            pid=pid,
            age_s=self.wall_clock() - heartbeat_at,
            this_host=self.this_host,
            alive=self.alive,
            stale_after_s=self.stale_after_s,
        )
        return "interrupted" if dead else "running"

    def silent_since(self) -> float:
        """Unix time before which a ``running`` run's heartbeat means it is dead on any
        host: a backend may drop those rows in SQL when listing running runs."""
        return self.wall_clock() - self.stale_after_s

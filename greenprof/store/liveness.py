"""Whether a run marked ``running`` is still being written: the one rule readers, repair
and exporters share."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

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

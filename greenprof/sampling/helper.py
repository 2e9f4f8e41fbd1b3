"""The sampling helper process: ``python -m greenprof.sampling`` runs :func:`main`.

It opens its own sensors from their recipes, polls them with a
:class:`~greenprof.sampling.threads.ThreadSampler` (reader threads, wedge timeouts and the
reading guard, as in the training process), and sends each poll's valid readings, the
guard's events and the devices' states to the training process (its parent) as frames
on its stdout. Its clock is ``time.monotonic``, which on Linux is one system-wide clock
(``CLOCK_MONOTONIC``): the readings' times are on the parent's clock.

It never outlives its parent: it ends at end of file on its stdin (the parent closed it,
or died), and checks every :data:`WATCH_S` that its parent is still the process that
started it (a parent killed while a forked child of it keeps the pipe open). It ignores
SIGINT: a Ctrl-C in the terminal is the training process's to handle (it then stops the
helper itself, with the settle the last step needs).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from typing import Final

from greenprof.records import Reading
from greenprof.sampling.frames import FrameReader, write_frame
from greenprof.sampling.health import DeviceState, state_of
from greenprof.sampling.threads import ThreadSampler, close_sensors
from greenprof.sensors.base import Sensor
from greenprof.sensors.recipe import SensorRecipe

WATCH_S: Final = 0.1
"""How often the helper checks that its parent is alive (it ends within about this)."""
STATE_EVERY: Final = 10
"""Polls between two sendings of the devices' states when nothing went wrong (so the
parent's ``DeviceHealth.stats.passed`` lags by up to this many polls)."""


@dataclass(frozen=True, slots=True)
class HelperSetup:
    """What the parent sends first: the sensors' recipes and the sampler's settings."""

    recipes: tuple[SensorRecipe, ...]
    interval_s: float
    dither: float
    seed: int
    read_timeout_s: float
    parent_pid: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The helper has opened what it could and polls: ``failed`` are (device, why)."""

    opened: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll in the helper: problems first (in the order the sampler met them), then
    the valid readings; ``states`` only when some device's health changed."""

    readings: list[Reading]
    rejected: list[tuple[str, float, str]]
    errors: list[str]
    states: dict[str, DeviceState] | None
    cpu_s: float
    """CPU time of the helper process so far (s)."""


@dataclass(frozen=True, slots=True)
class Done:
    """The helper stopped as asked, after its settle polls: nothing follows."""


@dataclass(frozen=True, slots=True)
class Stop:
    """From the parent: stop after reading for ``settle_s`` more."""

    settle_s: float


class _Channel:
    """The helper's end of the pipe: the sampler's callbacks become one frame per poll."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._rejected: list[tuple[str, float, str]] = []
        self._errors: list[str] = []
        self._states: dict[str, DeviceState] = {}
        self._polls = 0
        self._problem_pending = False
        """A device was wedged or failing at the last look: look again each poll."""
        self.sampler: ThreadSampler | None = None

    def error(self, message: str) -> None:
        self._errors.append(message)

    def rejected(self, device: str, time_s: float, reason: str) -> None:
        self._rejected.append((device, time_s, reason))

    def poll(self, readings: list[Reading]) -> None:
        states = None
        self._polls += 1
        # the states are sent when a problem changed them (the guard or a read said so),
        # and every STATE_EVERY polls for the passed counts
        changed = bool(self._rejected or self._errors) or self._polls % STATE_EVERY == 1
        if self.sampler is not None and (changed or self._problem_pending):
            now = {d: state_of(h) for d, h in self.sampler.health().items()}
            self._problem_pending = any(state[0] or state[1] for state in now.values())
            if now != self._states:
                self._states = states = now
        message = Poll(readings, self._rejected, self._errors, states, time.process_time())
        self._rejected, self._errors = [], []
        self.send(message)

    def send(self, message: object) -> None:
        with self._lock:
            write_frame(self._fd, message)


def _wait_for_stop(reader: FrameReader, parent_pid: int) -> float | None:
    """The settle the parent asks for when it stops us; None when it is gone."""
    while True:
        if os.getppid() != parent_pid:
            return None
        ready, _, _ = select.select([reader.fd], [], [], WATCH_S)
        if ready:
            message = reader.read_one()
            if message is None:
                return None
            if isinstance(message, Stop):
                return message.settle_s


def run(in_fd: int, out_fd: int) -> int:
    """Serve one parent: set up, poll until told to stop or orphaned, stop, exit."""
    reader = FrameReader(in_fd, blocking=True)
    setup = reader.read_one()
    if not isinstance(setup, HelperSetup):
        return 2
    channel = _Channel(out_fd)
    sensors: list[Sensor] = []
    failed: list[tuple[str, str]] = []
    for recipe in setup.recipes:
        try:
            sensors.append(recipe.open())
        except Exception as exc:
            failed.append((recipe.device, f"{type(exc).__name__}: {exc}"))
    channel.send(Ready(tuple(s.device for s in sensors), tuple(failed)))
    sampler = ThreadSampler(
        sensors,
        interval_s=setup.interval_s,
        consumer=channel.poll,
        on_error=channel.error,
        on_rejected=channel.rejected,
        dither=setup.dither,
        seed=setup.seed,
        read_timeout_s=setup.read_timeout_s,
    )
    channel.sampler = sampler
    try:
        sampler.start()
        settle_s = _wait_for_stop(reader, setup.parent_pid)
        sampler.stop(settle_s=settle_s or 0.0)
        if settle_s is not None:
            channel.send(Done())
    finally:
        close_sensors(sensors)
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # every problem goes to the parent (on_error), which logs it: none here on the
    # terminal, twice or after the parent is gone
    quiet = logging.getLogger("greenprof")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print (a sensor's, a library's) must not corrupt the frames
    try:
        return run(0, out_fd)
    except (BrokenPipeError, EOFError):
        return 0  # the parent is gone: nothing to tell anyone

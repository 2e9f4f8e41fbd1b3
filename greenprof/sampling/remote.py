"""The training process's end of the sampling helper: start it, take what it sent, stop it.

The helper is a plain ``python`` child running :data:`BOOT` (``subprocess``, which
execs at once: nothing of this process, CUDA or TensorFlow state included, is forked
into it, and unlike multiprocessing's ``spawn`` it never re-imports the training
script's ``__main__``). Starting it does not wait for it: its first readings arrive
a few tens of milliseconds later, and :meth:`HelperProcess.take` never blocks.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from greenprof.records import Reading
from greenprof.sampling.frames import FrameReader, enlarge_pipe, write_frame
from greenprof.sampling.health import DeviceState
from greenprof.sampling.helper import Done, HelperSetup, Poll, Ready, Stop
from greenprof.sensors.recipe import SensorRecipe

EXIT_WAIT_S: Final = 0.5
"""How long :meth:`HelperProcess.close` waits for the helper to exit before killing it."""
PACKAGE_DIR: Final = str(Path(__file__).resolve().parents[1])
"""This ``greenprof`` package's directory: the helper runs the same greenprof as the
training process (a checkout as well as an install)."""
BOOT: Final = (
    "import sys, types; package = types.ModuleType('greenprof');"
    " package.__path__ = [sys.argv[1]]; sys.modules['greenprof'] = package;"
    " from greenprof.sampling.helper import main; sys.exit(main())"
)
"""The helper's program: ``greenprof.sampling.helper.main`` under a bare ``greenprof``
package. ``python -m greenprof.sampling`` does the same but first runs
``greenprof/__init__`` (the profiler, the store: about as long again as the helper's own
imports); nothing the helper imports needs it."""


@dataclass(slots=True)
class HelperNews:
    """What arrived from the helper since the last look, in order of arrival."""

    polls: list[Poll] = field(default_factory=list)
    ready: Ready | None = None
    done: bool = False
    ended: bool = False
    """The helper closed its end (it exited, or died)."""

    @property
    def readings(self) -> list[Reading]:
        return [reading for poll in self.polls for reading in poll.readings]

    @property
    def states(self) -> dict[str, DeviceState] | None:
        """The latest device states sent (None: no change)."""
        for poll in reversed(self.polls):
            if poll.states is not None:
                return poll.states
        return None


class HelperProcess:
    """One running helper (see the module docstring). Not thread-safe: one owner."""

    def __init__(self, process: subprocess.Popen[bytes], stdin: IO[bytes], stdout_fd: int) -> None:
        self.process = process
        self.pid = process.pid
        self._stdin: IO[bytes] | None = stdin
        self._reader = FrameReader(stdout_fd, blocking=False)
        self.done = False
        self.cpu_s = 0.0

    @classmethod
    def start(
        cls,
        recipes: Sequence[SensorRecipe],
        *,
        interval_s: float,
        dither: float,
        seed: int,
        read_timeout_s: float,
        executable: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> HelperProcess:
        """Start a helper reading ``recipes``. Raises OSError (or ValueError) when the
        process cannot be started; the caller then reads the sensors itself."""
        if not executable:
            raise OSError("no Python executable to start the sampling helper with")
        process = subprocess.Popen(
            [executable, "-c", BOOT, PACKAGE_DIR],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=None if env is None else dict(env),
            close_fds=True,
            # its own session: a Ctrl-C or a SIGTERM to the training's process group is
            # the training process's to handle (it then stops the helper with the settle
            # the last step needs); the helper still ends with its parent (see helper)
            start_new_session=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        stdout_fd = process.stdout.fileno()
        enlarge_pipe(stdout_fd)
        helper = cls(process, process.stdin, stdout_fd)
        setup = HelperSetup(
            recipes=tuple(recipes),
            interval_s=interval_s,
            dither=dither,
            seed=seed,
            read_timeout_s=read_timeout_s,
            parent_pid=os.getpid(),
        )
        try:
            helper._send(setup)
        except OSError:
            helper.close()
            raise
        return helper

    def _send(self, message: object) -> None:
        if self._stdin is None:
            raise BrokenPipeError("the helper's stdin is closed")
        write_frame(self._stdin.fileno(), message)

    def take(self) -> HelperNews:
        """Everything that has arrived, without waiting."""
        return self._sort(self._reader.read_available())

    def request_stop(self, settle_s: float) -> bool:
        """Ask the helper to read for ``settle_s`` more and stop (False: it is gone)."""
        try:
            self._send(Stop(settle_s))
        except OSError:
            return False
        return True

    def wait_done(self, until_s: float) -> HelperNews:
        """What arrives until the helper says it is done (or ends), at most until
        ``until_s`` (``time.monotonic``)."""
        news = HelperNews()
        while not (news.done or news.ended):
            remaining = until_s - time.monotonic()
            if remaining <= 0:
                break
            readable, _, _ = select.select([self._reader.fd], [], [], remaining)
            if readable:
                more = self.take()
                news.polls.extend(more.polls)
                news.ready = news.ready or more.ready
                news.done, news.ended = more.done, more.ended
        return news

    def close(self, *, timeout_s: float = EXIT_WAIT_S) -> None:
        """Close its stdin (it exits at end of file) and reap it: now if it has exited,
        else on a daemon thread that kills it after ``timeout_s`` (stop does not wait for
        an interpreter's shutdown; no zombie is left while this process lives)."""
        stdin, self._stdin = self._stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.poll() is None:
            threading.Thread(
                target=_reap, args=(self.process, timeout_s), name="greenprof-reap", daemon=True
            ).start()

    def kill(self) -> None:
        """End it now (it has not answered yet: not worth waiting for) and reap it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.close()

    def _sort(self, messages: list[object]) -> HelperNews:
        news = HelperNews(ended=self._reader.eof)
        for message in messages:
            if isinstance(message, Poll):
                news.polls.append(message)
                self.cpu_s = message.cpu_s
            elif isinstance(message, Ready):
                news.ready = message
            elif isinstance(message, Done):
                news.done = self.done = True
        return news


def _reap(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

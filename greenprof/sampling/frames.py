"""Messages between the training process and its sampling helper: pickled frames on a pipe.

A frame is a 4-byte big-endian length and a pickle. Both ends are greenprof of the same
checkout (the helper is started from ``sys.executable`` with the parent's own package
path), so pickle is safe here: nothing else writes to these pipes.

The reading end is non-blocking (:class:`FrameReader`): the training process's sampler
thread takes what has arrived and never waits on the helper.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
from typing import Final

_LENGTH: Final = struct.Struct(">I")
PIPE_SIZE_BYTES: Final = 1 << 20
"""What the pipe from the helper is asked to hold (Linux ``F_SETPIPE_SZ``; the default is
64 KiB): about 3,000 polls of two devices, minutes of a training process too busy to
drain it before the helper's sends would wait."""


def encode(message: object) -> bytes:
    """One frame."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


def write_frame(fd: int, message: object) -> None:
    """Write one frame completely (blocking)."""
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def enlarge_pipe(fd: int, size_bytes: int = PIPE_SIZE_BYTES) -> None:
    """Ask the kernel for a larger pipe buffer where it can (Linux); ignore a refusal."""
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, set_size, size_bytes)


class FrameReader:
    """Reads whole frames from a pipe, blocking or not.

    ``eof`` becomes True once the writer has closed its end (the helper exited) and every
    complete frame before it has been returned.
    """

    def __init__(self, fd: int, *, blocking: bool) -> None:
        self.fd = fd
        self.eof = False
        self._buffer = bytearray()
        os.set_blocking(fd, blocking)

    def read_available(self) -> list[object]:
        """Every complete frame that can be read without waiting (non-blocking fd)."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self._buffer += chunk
        return self._frames()

    def read_one(self) -> object | None:
        """The next frame, waiting for it (blocking fd); None at end of file."""
        while True:
            frames = self._frames(limit=1)
            if frames:
                return frames[0]
            if self.eof:
                return None
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            self._buffer += chunk

    def _frames(self, limit: int | None = None) -> list[object]:
        frames: list[object] = []
        buffer = self._buffer
        offset = 0
        while limit is None or len(frames) < limit:
            if len(buffer) - offset < _LENGTH.size:
                break
            (length,) = _LENGTH.unpack_from(buffer, offset)
            end = offset + _LENGTH.size + length
            if len(buffer) < end:
                break
            frames.append(pickle.loads(buffer[offset + _LENGTH.size : end]))
            offset = end
        del buffer[:offset]
        return frames

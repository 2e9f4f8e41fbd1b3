"""What every exporter shares: run selection, atomic output files, ISO-8601 times.

Run selection (the same for every export format and for ``greenprof report``):

- ``RUN`` references: a run id (digits) selects that run; a name selects every run with
  that name (all ranks, all repetitions). An unknown reference is an error.
- ``--tag key=value`` (repeatable): runs whose tags contain every given pair.
- ``--since`` / ``--until``: ISO-8601 dates or times on the run's start; a bare date in
  ``--until`` includes that whole day; times without a zone are UTC.
- No reference and no filter: every run in the database. An empty result is an error.

Output: ``-o PATH`` writes a temporary file in PATH's directory and renames it over PATH
only once everything is written, so a failed export never leaves a partial file behind;
without ``-o`` (or with ``-o -``) the export goes to standard output (terminal-safe when
that is a terminal). ``-o`` writes regular files only: see :func:`output_target`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from greenprof.cliargs import run_ref
from greenprof.errors import ConfigError, GreenprofError, RunNotFound
from greenprof.records import RunInfo, tag_text
from greenprof.textsafe import terminal_text

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore


class ExportError(GreenprofError):
    """An export could not be written (unwritable path, empty selection, push failed)."""


def iso_utc(unix_s: float | None) -> str:
    """``2025-03-01T12:00:00.250Z``: ISO-8601 UTC with milliseconds, '' for None."""
    if unix_s is None:
        return ""
    try:
        whole_ms = round(unix_s * 1000)  # rounded like SQLite's strftime('%f')
        moment = datetime.fromtimestamp(whole_ms // 1000, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):  # NaN, or beyond the years 1-9999
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{whole_ms % 1000:03d}Z"


ISO_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', {expr}, 'unixepoch')"
"""The same format as :func:`iso_utc`, computed by SQLite (for streaming exports)."""


def parse_time(text: str, *, end_of_day: bool = False) -> float:
    """Unix seconds for an ISO-8601 date or date-time (UTC unless a zone is given),
    within the years 1 to 9999 in UTC (so that it can be shown again)."""
    seconds = _parse_time(text, end_of_day=end_of_day)
    if not iso_utc(seconds):
        raise ConfigError(f"{text!r} is out of range: use a date between 0001-01-01 and 9999-12-31")
    return seconds


def _parse_time(text: str, *, end_of_day: bool) -> float:
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            if end_of_day:
                moment += timedelta(days=1)
            return moment.timestamp()
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):  # not ISO-8601, or beyond datetime's years 1-9999
        raise ConfigError(
            f"cannot read {text!r} as a date or time: use ISO-8601, e.g. 2025-03-01 "
            "or 2025-03-01T14:30:00Z"
        ) from None


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` into a dict; a pair without ``=`` is an error."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag wants KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def _as_run_id(ref: str) -> int | None:
    """``ref`` as a run id when it is one (digits that ``int`` reads), else None."""
    if not ref.isdigit():
        return None
    try:
        return int(ref)
    except ValueError:  # digits int() does not take, such as '²'
        return None


@dataclass(frozen=True)
class Selection:
    """Which runs an export covers (see the module docstring)."""

    refs: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    since: float | None = None
    until: float | None = None

    @classmethod
    def from_args(
        cls,
        refs: Sequence[str] | None,
        tags: Sequence[str] | None,
        since: str | None,
        until: str | None,
    ) -> Selection:
        """Build a selection from command-line values, validating them."""
        return cls(
            refs=tuple(refs or ()),
            tags=parse_tags(tags or ()),
            since=None if since is None else parse_time(since),
            until=None if until is None else parse_time(until, end_of_day=True),
        )

    def describe(self) -> str:
        """The selection in words, for error messages."""
        parts = [f"runs {', '.join(self.refs)}"] if self.refs else ["all runs"]
        parts += [f"tag {k}={v}" for k, v in self.tags.items()]
        if self.since is not None:
            parts.append(f"since {iso_utc(self.since)}")
        if self.until is not None:
            parts.append(f"until {iso_utc(self.until)}")
        return ", ".join(parts)

    def resolve(self, store: RunStore) -> list[RunInfo]:
        """The selected runs, oldest first. Raises if a reference is unknown or none match."""
        every = store.runs()
        if self.refs:
            chosen: dict[int, RunInfo] = {}
            for ref in self.refs:
                matched = [run for run in every if run.name == ref]
                run_id = _as_run_id(ref)
                if run_id is not None:
                    matched += [run for run in every if run.run_id == run_id]
                if not matched:
                    raise RunNotFound(
                        f"no run {ref!r} in {store.location.display}: "
                        "`greenprof runs` lists run ids and names"
                    )
                chosen.update((run.run_id, run) for run in matched)
            runs = list(chosen.values())
        else:
            runs = every
        runs = [run for run in runs if self._matches(run)]
        if not runs:
            raise ExportError(
                f"no runs in {store.location.display} match the selection ({self.describe()})"
            )
        runs.sort(key=lambda run: (run.started_at, run.run_id))
        return runs

    def _matches(self, run: RunInfo) -> bool:
        tags = run.tags
        if any(key not in tags or tag_text(tags[key]) != value for key, value in self.tags.items()):
            return False
        if self.since is not None and run.started_at < self.since:
            return False
        return self.until is None or run.started_at < self.until


def output_target(output: str | os.PathLike[str], *, follow_symlinks: bool = False) -> Path:
    """The regular file that ``-o output`` may replace, or :class:`ExportError` saying why not.

    The rule: ``-o`` writes regular files only. A path that exists and is anything else
    (a directory, a FIFO, a character or block device such as ``/dev/null`` or
    ``/dev/full``, a socket) is refused: replacing it by rename would swap a device node
    or a pipe for a file (as root, ``-o /dev/full`` used to replace ``/dev/full``). A
    symbolic link is refused unless ``follow_symlinks``; then the export goes to the
    link's final target, which must itself be a regular file or not exist yet (its
    directory must exist), and the link is kept.
    """
    path = Path(output)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ExportError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        if not follow_symlinks:
            raise ExportError(
                f"refusing to write {path}: it is a symbolic link (to {os.readlink(path)}); "
                "pass --follow-symlinks to write to its target"
            )
        target = Path(os.path.realpath(path))
        try:
            info = target.lstat()
        except FileNotFoundError:
            return target
        except OSError as exc:
            raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
        path = target
    if not stat.S_ISREG(info.st_mode):
        raise ExportError(
            f"refusing to write {path}: it is {_kind(info.st_mode)}, and -o only writes "
            "regular files"
        )
    return path


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, empty file next to ``target`` (same directory: ``os.replace`` stays a rename).

    Opened with mode 0666 so that the umask applies, as for any file a user's command
    writes (``tempfile.mkstemp`` would make it 0600).
    """
    directory = target.parent if str(target.parent) else Path(".")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = directory / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    raise ExportError(f"cannot write {target}: no free temporary name in {directory}")


class _TerminalStream:
    """Standard output that is a terminal: what is written is made terminal-safe.

    Exports are data; on a terminal, an escape sequence in a run name must be shown, not
    run. Newlines and tabs (the layout of CSV and Prometheus text) pass; a pipe or a
    file gets the bytes unchanged.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_text(text, keep="\n\t"))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _stdout() -> TextIO:
    stream = sys.stdout
    isatty = getattr(stream, "isatty", None)
    return cast(TextIO, _TerminalStream(stream)) if isatty and isatty() else stream


@contextlib.contextmanager
def open_output(
    output: str | os.PathLike[str] | None, *, follow_symlinks: bool = False
) -> Iterator[TextIO]:
    """A text stream to ``output`` (stdout for None or '-'), written atomically.

    ``output`` must pass :func:`output_target`. The file appears (by rename) only when
    the ``with`` block completes; on any error the temporary file is removed and an
    existing file at ``output`` is left as it was. A replaced file keeps its
    permissions; a new one gets the umask's.
    """
    if output is None or str(output) == "-":
        yield _stdout()
        sys.stdout.flush()
        return
    target = output_target(output, follow_symlinks=follow_symlinks)
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_selection_arguments(parser: argparse.ArgumentParser, *, refs_help: str) -> None:
    """Add RUN..., --tag, --since and --until to an argparse parser."""
    parser.add_argument("runs", nargs="*", metavar="RUN", type=run_ref, help=refs_help)
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs with this tag (repeatable: all must match)",
    )
    parser.add_argument(
        "--since", metavar="ISO", help="only runs started at or after this date/time (UTC)"
    )
    parser.add_argument(
        "--until",
        metavar="ISO",
        help="only runs started before this date/time (a bare date includes that day)",
    )

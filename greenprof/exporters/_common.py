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
without ``-o`` (or with ``-o -``) the export goes to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from greenprof.errors import ConfigError, GreenprofError, RunNotFound
from greenprof.records import RunInfo

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore


class ExportError(GreenprofError):
    """An export could not be written (unwritable path, empty selection, push failed)."""


def iso_utc(unix_s: float | None) -> str:
    """``2025-03-01T12:00:00.250Z``: ISO-8601 UTC with milliseconds, '' for None."""
    if unix_s is None:
        return ""
    whole_ms = round(unix_s * 1000)  # rounded like SQLite's strftime('%f')
    moment = datetime.fromtimestamp(whole_ms // 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{whole_ms % 1000:03d}Z"


ISO_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', {expr}, 'unixepoch')"
"""The same format as :func:`iso_utc`, computed by SQLite (for streaming exports)."""


def parse_time(text: str, *, end_of_day: bool = False) -> float:
    """Unix seconds for an ISO-8601 date or date-time (UTC unless a zone is given)."""
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
    except ValueError:
        raise ConfigError(
            f"cannot read {text!r} as a date or time: use ISO-8601, e.g. 2025-03-01 "
            "or 2025-03-01T14:30:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` into a dict; a pair without ``=`` is an error."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag wants KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


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
                if ref.isdigit():
                    matched += [run for run in every if run.run_id == int(ref)]
                if not matched:
                    raise RunNotFound(
                        f"no run {ref!r} in {store.path}: `greenprof runs` lists run ids and names"
                    )
                chosen.update((run.run_id, run) for run in matched)
            runs = list(chosen.values())
        else:
            runs = every
        runs = [run for run in runs if self._matches(run)]
        if not runs:
            raise ExportError(f"no runs in {store.path} match the selection ({self.describe()})")
        runs.sort(key=lambda run: (run.started_at, run.run_id))
        return runs

    def _matches(self, run: RunInfo) -> bool:
        if any(run.tags.get(key) != value for key, value in self.tags.items()):
            return False
        if self.since is not None and run.started_at < self.since:
            return False
        return self.until is None or run.started_at < self.until


@contextlib.contextmanager
def open_output(output: str | os.PathLike[str] | None) -> Iterator[TextIO]:
    """A text stream to ``output`` (stdout for None or '-'), written atomically.

    The file appears (by rename) only when the ``with`` block completes; on any error the
    temporary file is removed and an existing file at ``output`` is left as it was.
    """
    if output is None or str(output) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(output)
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a directory")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_selection_arguments(parser: argparse.ArgumentParser, *, refs_help: str) -> None:
    """Add RUN..., --tag, --since and --until to an argparse parser."""
    parser.add_argument("runs", nargs="*", metavar="RUN", help=refs_help)
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

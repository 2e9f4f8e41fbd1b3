"""A Profiler's settings, checked once, frozen (pure apart from reading the environment).

Every way of starting a run ends here: ``Profiler(...)`` keywords, ``greenprof run``'s
options (passed to its child as ``GREENPROF_*`` variables) and zero-code profiling
(:meth:`ProfilerConfig.from_env`). A bad value raises a
:class:`~greenprof.errors.ConfigError` naming the setting before anything is opened, so a
typo never costs a training run that is then not profiled.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from greenprof.carbon import resolve_carbon
from greenprof.errors import ConfigError
from greenprof.jobs import JobInfo, detect_job
from greenprof.records import CarbonSettings, TagValue
from greenprof.store.location import StoreLocation, parse_location
from greenprof.tracker_setting import parse_trackers
from greenprof.values import finite_from_text, setting_int, setting_number

MIN_INTERVAL_S = 0.01
"""Shortest polling interval: sensors do not update faster, and polling would cost CPU."""
MAX_INTERVAL_S = 60.0
"""Longest polling interval: beyond a minute a run gets too few readings to attribute."""
MAX_BASELINE_S = 3600.0
"""Longest idle-baseline measurement (an hour of idle is a mistake, not a baseline)."""
MIN_FLUSH_INTERVAL_S = 0.01
MAX_FLUSH_INTERVAL_S = 60.0
"""The writer's flush interval bounds: a crash loses at most about one interval of steps."""

PROMETHEUS_PORT_ENV = "GREENPROF_PROMETHEUS_PORT"
PUSHGATEWAY_ENV = "GREENPROF_PUSHGATEWAY"
SUMMARY_ENV = "GREENPROF_SUMMARY"
"""``0`` (or ``false``, ``no``, ``off``) turns the end-of-run summary off for every
Profiler of the process that does not say ``summary=`` itself (CI logs, test suites)."""
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class ProfilerConfig:
    """What one run is to be: its name, store, sampling, carbon settings and exporters.

    Build it with :meth:`create` (the ``Profiler`` keywords) or :meth:`from_env` (the
    ``GREENPROF_*`` variables); direct construction checks the numbers too.

    Example::

        config = ProfilerConfig.create("resnet18", country="DEU", interval_s=0.05)
        prof = greenprof.Profiler.from_config(config)
    """

    name: str
    store: StoreLocation
    """Where the run is stored: a SQLite file or a PostgreSQL URL (``$GREENPROF_DB`` or
    the user data directory when not given)."""
    carbon: CarbonSettings
    job: JobInfo
    interval_s: float = 0.1
    tags: Mapping[str, TagValue] = field(default_factory=dict)
    framework: str = ""
    expected_steps: int | None = None
    baseline_s: float = 0.0
    exact: bool = False
    prometheus_port: int | None = None
    pushgateway: str | None = None
    flush_interval_s: float = 0.3
    ambient: bool = False
    """A whole-process run (``greenprof run``): a Profiler started inside it joins it."""
    trackers: tuple[str, ...] = ("auto",)
    """Experiment trackers that get the run's numbers: ``("auto",)`` (an MLflow or W&B
    run the script has active), names, or ``()`` (see :mod:`greenprof.exporters.trackers`)."""
    summary: bool = True
    """Print the run's summary on stderr when it ends (:mod:`greenprof.summary_printer`):
    what the user would otherwise have to ask ``greenprof show`` for."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"the run name must be a string; got {type(self.name).__name__}")
        _set(self, "interval_s", _check_interval(self.interval_s))
        if self.expected_steps is not None:
            steps = setting_int("expected_steps", self.expected_steps, minimum=1, maximum=2**62)
            _set(self, "expected_steps", steps)
        _set(
            self,
            "baseline_s",
            setting_number("baseline_s", self.baseline_s, minimum=0.0, maximum=MAX_BASELINE_S),
        )
        _set(
            self,
            "flush_interval_s",
            setting_number(
                "flush_interval_s",
                self.flush_interval_s,
                minimum=MIN_FLUSH_INTERVAL_S,
                maximum=MAX_FLUSH_INTERVAL_S,
            ),
        )
        if self.prometheus_port is not None:
            port = setting_int("prometheus_port", self.prometheus_port, minimum=1, maximum=65535)
            _set(self, "prometheus_port", port)
        if self.pushgateway is not None and not isinstance(self.pushgateway, str):
            raise ConfigError(
                f"pushgateway must be a URL string; got {type(self.pushgateway).__name__}"
            )
        _set(self, "tags", _check_tags(self.tags))
        _set(self, "framework", str(self.framework))
        _set(self, "exact", bool(self.exact))
        _set(self, "ambient", bool(self.ambient))
        _set(self, "summary", bool(self.summary))
        _set(self, "trackers", parse_trackers(self.trackers))

    @classmethod
    def create(
        cls,
        run: str | None = None,
        *,
        db: str | os.PathLike[str] | None = None,
        interval_s: float = 0.1,
        country: str | None = None,
        region: str | None = None,
        pue: float = 1.0,
        intensity_g_per_kwh: float | None = None,
        tags: Mapping[str, object] | None = None,
        framework: str = "",
        expected_steps: int | None = None,
        baseline_s: float = 0.0,
        exact: bool = False,
        prometheus_port: int | None = None,
        pushgateway: str | None = None,
        flush_interval_s: float = 0.3,
        job: str | None = None,
        ambient: bool = False,
        trackers: str | Iterable[str] | None = None,
        summary: bool | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> ProfilerConfig:
        """The settings for the :class:`~greenprof.Profiler` keywords of the same names;
        what is not given comes from ``env`` (``$GREENPROF_DB``, ``$GREENPROF_JOB``,
        ``$GREENPROF_PROMETHEUS_PORT``, ``$GREENPROF_PUSHGATEWAY``,
        ``$GREENPROF_SUMMARY``) or the defaults."""
        interval_s = _check_interval(interval_s)  # before anything slower is resolved
        if expected_steps is not None:
            expected_steps = setting_int("expected_steps", expected_steps, minimum=1, maximum=2**62)
        if run is not None and not isinstance(run, str):
            raise ConfigError(f"the run name must be a string; got {type(run).__name__}")
        if job is not None and not (isinstance(job, str) and job.strip()):
            raise ConfigError(f"job must be a non-empty string; got {job!r}")
        port = (
            prometheus_port if prometheus_port is not None else _int_env(env, PROMETHEUS_PORT_ENV)
        )
        return cls(
            name=run or default_run_name(),
            store=parse_location(db, env),
            carbon=resolve_carbon(
                country=country, region=region, pue=pue, intensity_g_per_kwh=intensity_g_per_kwh
            ),
            job=detect_job(env, job=job),
            interval_s=interval_s,
            tags=_check_tags(tags or {}),
            framework=framework,
            expected_steps=expected_steps,
            baseline_s=baseline_s,
            exact=exact,
            prometheus_port=port,
            pushgateway=pushgateway or env.get(PUSHGATEWAY_ENV) or None,
            flush_interval_s=flush_interval_s,
            ambient=ambient,
            trackers=parse_trackers(trackers, env),
            summary=summary_setting(env) if summary is None else bool(summary),
        )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] = os.environ,
        *,
        tags: Mapping[str, object] | None = None,
        framework: str = "",
        ambient: bool = False,
    ) -> ProfilerConfig:
        """The settings that the ``GREENPROF_*`` variables of ``env`` ask for (what
        ``greenprof run`` hands its child): ``RUN_NAME``, ``DB``, ``COUNTRY``, ``REGION``,
        ``PUE``, ``INTENSITY``, ``INTERVAL_S``, ``EXPECTED_STEPS``, ``FRAMEWORK``
        (else ``framework``), ``JOB``, ``PROMETHEUS_PORT``, ``PUSHGATEWAY``, ``SUMMARY``
        (``0`` turns the end-of-run summary off). Unset or
        empty variables take the default; anything else must parse (an empty
        ``GREENPROF_PUE`` once became 1.0, ``0`` too): a :class:`ConfigError` names the
        variable.

        Example::

            ProfilerConfig.from_env({"GREENPROF_PUE": "1.2", "GREENPROF_COUNTRY": "FRA"})
        """
        return cls.create(
            env.get("GREENPROF_RUN_NAME") or None,
            country=env.get("GREENPROF_COUNTRY") or None,
            region=env.get("GREENPROF_REGION") or None,
            pue=_number_env(env, "GREENPROF_PUE", 1.0),
            intensity_g_per_kwh=_optional_number_env(env, "GREENPROF_INTENSITY"),
            interval_s=_number_env(env, "GREENPROF_INTERVAL_S", 0.1),
            expected_steps=_int_env(env, "GREENPROF_EXPECTED_STEPS"),
            framework=env.get("GREENPROF_FRAMEWORK") or framework,
            tags=tags,
            ambient=ambient,
            env=env,
        )

    @property
    def db_path(self) -> Path | str:
        """The SQLite file (a :class:`~pathlib.Path`), or the server's URL."""
        return self.store.path if self.store.kind == "sqlite" else self.store.target

    def replace(self, **changes: object) -> ProfilerConfig:
        """A copy with ``changes`` (checked like the original)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def default_run_name(argv: list[str] | None = None) -> str:
    """The script's name (``train`` for ``python train.py``), else ``run``."""
    args = sys.argv if argv is None else argv
    script = Path(args[0]).stem if args and args[0] else ""
    return script if script and script not in ("-c", "ipykernel_launcher") else "run"


def summary_setting(env: Mapping[str, str]) -> bool:
    """Whether ``$GREENPROF_SUMMARY`` lets runs print their end-of-run summary (unset or
    empty: yes). A value that is neither yes nor no is a :class:`ConfigError`: a typo
    such as ``GREENPROF_SUMMARY=of`` must not silently keep printing."""
    value = (env.get(SUMMARY_ENV) or "").strip().lower()
    if not value or value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ConfigError(f"${SUMMARY_ENV} must be 0 or 1 (or true/false); got {value!r}")


def _set(config: ProfilerConfig, name: str, value: object) -> None:
    object.__setattr__(config, name, value)  # normalising a frozen instance in __post_init__


def _check_interval(interval_s: object) -> float:
    if isinstance(interval_s, (int, float)) and not isinstance(interval_s, bool):
        if 0 < interval_s < MIN_INTERVAL_S:
            raise ConfigError(
                f"interval_s={interval_s} is below 10 ms: sensors do not update "
                "that fast and polling would cost CPU; use 0.05–1 s"
            )
        if interval_s <= 0:
            raise ConfigError(f"interval_s must be > 0 seconds; got {interval_s!r}")
    return setting_number("interval_s", interval_s, minimum=MIN_INTERVAL_S, maximum=MAX_INTERVAL_S)


def _check_tags(tags: object) -> dict[str, TagValue]:
    """Numbers and flags keep their type (stored as JSON, read back typed); anything else
    (None, a NaN, a tensor, a list) is stored as its text."""
    if not isinstance(tags, Mapping):
        raise ConfigError(
            f"tags must be a mapping such as {{'batch_size': 64}}; got {type(tags).__name__}"
        )
    return {str(k): _tag_value(v) for k, v in tags.items()}


def _tag_value(value: object) -> TagValue:
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def _number_env(env: Mapping[str, str], name: str, default: float) -> float:
    number = _optional_number_env(env, name)
    return default if number is None else number


def _optional_number_env(env: Mapping[str, str], name: str) -> float | None:
    value = env.get(name)
    if not value:  # unset or empty: the default
        return None
    return finite_from_text(value, f"${name}")


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be an integer; got {value!r}") from None

from pathlib import Path

import pytest

from greenprof.config import ProfilerConfig, default_run_name
from greenprof.errors import ConfigError


def test_keywords_become_checked_settings(tmp_path: Path) -> None:
    config = ProfilerConfig.create(
        "resnet",
        db=tmp_path / "runs.db",
        country="DEU",
        pue=1.2,
        tags={"batch_size": 64},
        interval_s=0.05,
        expected_steps=100,
        env={},
    )
    assert config.name == "resnet"
    assert config.db_path == tmp_path / "runs.db"
    assert config.store.kind == "sqlite"
    assert config.carbon.country == "DEU" and config.carbon.pue == 1.2
    assert config.tags == {"batch_size": 64}  # numbers keep their type
    assert (config.interval_s, config.expected_steps) == (0.05, 100)
    assert config.prometheus_port is None and config.pushgateway is None
    assert config.job.job_id is None


def test_the_environment_fills_what_was_not_given(tmp_path: Path) -> None:
    env = {
        "GREENPROF_DB": str(tmp_path / "env.db"),
        "GREENPROF_PROMETHEUS_PORT": "9464",
        "GREENPROF_PUSHGATEWAY": "http://gateway:9091",
        "GREENPROF_JOB": "sweep-7",
    }
    config = ProfilerConfig.create("run", env=env)
    assert config.db_path == tmp_path / "env.db"
    assert config.prometheus_port == 9464
    assert config.pushgateway == "http://gateway:9091"
    assert config.job.job_id == "sweep-7"
    explicit = ProfilerConfig.create("run", prometheus_port=9000, pushgateway="http://x", env=env)
    assert (explicit.prometheus_port, explicit.pushgateway) == (9000, "http://x")


def test_a_postgresql_url_is_a_server_store_not_a_path() -> None:
    url = "postgresql://greenprof:secret@db.example:5432/runs"
    config = ProfilerConfig.create("run", db=url, env={})
    assert config.store.kind == "postgresql"
    assert config.db_path == url
    assert "secret" not in repr(config.store)


def test_from_env_reads_what_greenprof_run_hands_its_child(tmp_path: Path) -> None:
    env = {
        "GREENPROF_RUN_NAME": "train",
        "GREENPROF_DB": str(tmp_path / "runs.db"),
        "GREENPROF_COUNTRY": "FRA",
        "GREENPROF_PUE": "1.3",
        "GREENPROF_INTERVAL_S": "0.2",
        "GREENPROF_EXPECTED_STEPS": "500",
        "GREENPROF_FRAMEWORK": "",
    }
    config = ProfilerConfig.from_env(
        env, tags={"zero_code": "true"}, framework="auto", ambient=True
    )
    assert config.name == "train"
    assert config.carbon.country == "FRA" and config.carbon.pue == 1.3
    assert (config.interval_s, config.expected_steps) == (0.2, 500)
    assert config.framework == "auto"  # an empty variable is unset
    assert config.tags == {"zero_code": "true"}
    assert config.ambient


def test_empty_variables_take_the_defaults() -> None:
    env = {"GREENPROF_PUE": "", "GREENPROF_INTERVAL_S": "", "GREENPROF_EXPECTED_STEPS": ""}
    config = ProfilerConfig.from_env(env)
    assert (config.carbon.pue, config.interval_s, config.expected_steps) == (1.0, 0.1, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GREENPROF_PUE": "abc"}, r"\$GREENPROF_PUE must be a finite number"),
        ({"GREENPROF_PUE": "nan"}, r"\$GREENPROF_PUE"),
        ({"GREENPROF_INTERVAL_S": "inf"}, r"\$GREENPROF_INTERVAL_S"),
        ({"GREENPROF_INTERVAL_S": "0.001"}, "below 10 ms"),
        ({"GREENPROF_INTERVAL_S": "120"}, "interval_s must be"),
        ({"GREENPROF_EXPECTED_STEPS": "1.5"}, r"\$GREENPROF_EXPECTED_STEPS must be an integer"),
        ({"GREENPROF_EXPECTED_STEPS": "0"}, "expected_steps"),
        ({"GREENPROF_PROMETHEUS_PORT": "http"}, r"\$GREENPROF_PROMETHEUS_PORT"),
        ({"GREENPROF_PROMETHEUS_PORT": "70000"}, "prometheus_port"),
        ({"GREENPROF_COUNTRY": "Atlantis"}, "unknown country"),
    ],
)
def test_a_bad_variable_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProfilerConfig.from_env(env)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_s": 0}, "interval_s must be > 0"),
        ({"interval_s": True}, "interval_s"),
        ({"baseline_s": -1}, "baseline_s"),
        ({"flush_interval_s": 0}, "flush_interval_s"),
        ({"tags": ["a"]}, "tags must be a mapping"),
        ({"job": ""}, "job must be a non-empty string"),
        ({"pue": 0.5}, "pue"),
    ],
)
def test_bad_keywords_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProfilerConfig.create("bad", env={}, **kwargs)  # type: ignore[arg-type]


def test_the_settings_are_frozen_and_a_changed_copy_is_checked_again() -> None:
    config = ProfilerConfig.create("run", env={})
    with pytest.raises(AttributeError):
        config.interval_s = 1.0  # type: ignore[misc]
    assert config.replace(interval_s=0.5).interval_s == 0.5
    with pytest.raises(ConfigError, match="below 10 ms"):
        config.replace(interval_s=0.001)


def test_the_default_run_name_is_the_script() -> None:
    assert default_run_name(["/home/me/train.py", "--epochs", "3"]) == "train"
    assert default_run_name(["-c"]) == "run"
    assert default_run_name([]) == "run"

import pytest

from greenprof.errors import ConfigError
from greenprof.tracker_setting import parse_trackers, trackers_wanted


def test_the_setting_defaults_to_auto_and_reads_the_environment() -> None:
    assert parse_trackers(None, env={}) == ("auto",)
    assert parse_trackers(None, env={"GREENPROF_TRACKERS": "MLflow, wandb"}) == ("mlflow", "wandb")
    assert parse_trackers(None, env={"GREENPROF_TRACKERS": "off"}) == ()
    assert parse_trackers(["wandb"]) == ("wandb",)
    assert parse_trackers("none") == parse_trackers("") == ()


def test_an_unknown_tracker_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'mlflow'"):
        parse_trackers("mlflwo")
    with pytest.raises(ConfigError, match="choose from mlflow, wandb"):
        parse_trackers(["tensorboard"])


def test_auto_wants_a_tracker_only_once_the_script_imported_one() -> None:
    assert not trackers_wanted(("auto",), {"os", "sys"})
    assert trackers_wanted(("auto",), {"os", "wandb"})
    assert trackers_wanted(("mlflow",), set())  # named: its observer says if no run is active
    assert not trackers_wanted((), {"mlflow"})

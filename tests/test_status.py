"""One reading of how a run ended (and of a device's kind, in greenprof.records)."""

from __future__ import annotations

import pytest

from greenprof.records import device_kind
from greenprof.status import Outcome, outcome_of, outcome_of_type


def test_training_that_returns_completes() -> None:
    assert outcome_of(None) == Outcome("completed", None)
    assert outcome_of(SystemExit(0)) == Outcome("completed", None)
    assert outcome_of(SystemExit()) == Outcome("completed", None)


def test_ctrl_c_interrupts_and_a_crash_fails_with_its_message() -> None:
    assert outcome_of(KeyboardInterrupt()) == Outcome("interrupted", "KeyboardInterrupt")
    assert outcome_of(ValueError("bad shape")) == Outcome("failed", "ValueError: bad shape")
    assert outcome_of(RuntimeError()) == Outcome("failed", "RuntimeError")
    assert outcome_of(SystemExit(3)) == Outcome("failed", "exit code 3")
    assert outcome_of(SystemExit("no data")) == Outcome("failed", "no data")


def test_exit_arguments_give_the_same_outcome() -> None:
    assert outcome_of_type(None, None).status == "completed"
    assert outcome_of_type(KeyboardInterrupt, None) == Outcome("interrupted", "KeyboardInterrupt")
    error = OSError("disk full")
    assert outcome_of_type(OSError, error) == outcome_of(error)


@pytest.mark.parametrize(
    ("device", "kind"),
    [("gpu:0", "gpu"), ("cpu:1", "cpu"), ("dram:0", "dram"), ("npu:0", "other"), ("gpu", "gpu")],
)
def test_device_kind_from_its_name(device: str, kind: str) -> None:
    assert device_kind(device) == kind

"""The package gives the pre-package attributor's numbers, bit for bit, on recorded runs."""

from __future__ import annotations

import pytest

from greenprof.energy import StepAttributor
from tests.energy.replay import SCENARIOS, load, replay

RECORDED = load()


def test_every_scenario_is_recorded() -> None:
    assert set(RECORDED) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_replay_gives_the_recorded_numbers_exactly(name: str) -> None:
    recorded = RECORDED[name]
    outputs = replay(recorded["events"], StepAttributor())
    assert outputs == recorded["outputs"]  # == on floats: identical, not approximately equal


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_recorded_inputs_are_what_the_scenario_makes(name: str) -> None:
    """The data file and the generator agree (so a regenerated file changes outputs only)."""
    assert SCENARIOS[name]() == RECORDED[name]["events"]

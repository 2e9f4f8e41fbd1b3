from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import greenprof
from greenprof.errors import GreenprofError, RunNotFound
from greenprof.frames import STEP_FRAME_COLUMNS, steps_frame
from tests.exporters._factory import T0, build_run


def test_a_runs_steps_come_back_as_a_frame_indexed_by_step(db_path: Path) -> None:
    built = build_run(db_path, steps=40, epochs=2, step_s=0.5, batch=64)
    store = greenprof.RunStore(db_path)

    frame = steps_frame(store, "resnet18-bs64")

    columns = list(frame.columns)
    assert columns[: len(STEP_FRAME_COLUMNS)] == list(STEP_FRAME_COLUMNS)
    assert sorted(columns[len(STEP_FRAME_COLUMNS) :]) == ["energy_j:cpu:0", "energy_j:gpu:0"]
    assert frame.index.name == "step" and list(frame.index) == list(range(40))
    assert frame.attrs == {"run_id": built.run_id, "run_name": "resnet18-bs64"}
    # what a user checks first: the frame sums to the stored totals
    assert frame["energy_j"].sum() == pytest.approx(built.step_energy_j)
    assert frame["energy_j:gpu:0"].sum() == pytest.approx(built.device_energy_j["gpu:0"])
    assert frame["samples"].sum() == built.samples
    assert frame.groupby("epoch")["energy_j"].sum().index.tolist() == [0, 1]
    first = frame.loc[0]
    assert first["duration_s"] == pytest.approx(0.5)
    assert first["power_w"] == pytest.approx(first["energy_j"] / 0.5)
    assert first["step_j_per_sample"] == pytest.approx(first["energy_j"] / 64)
    # 380 g/kWh × PUE 1.2
    assert first["co2_g"] == pytest.approx(first["energy_j"] / 3.6e6 * 1.2 * 380.0)
    assert first["time"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert first["flags"] == "" and not first["interpolated"]


def test_the_frame_has_useful_dtypes(db_path: Path) -> None:
    build_run(db_path, steps=4)
    frame = steps_frame(greenprof.RunStore(db_path), 1)
    assert str(frame["samples"].dtype) == "Int64"  # counts stay integers, missing is <NA>
    assert str(frame["flags"].dtype) == "string"
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["energy_j"].dtype == "float64" and frame["interpolated"].dtype == "bool"


def test_a_run_without_carbon_settings_or_steps(db_path: Path) -> None:
    build_run(db_path, "no-carbon", steps=3, carbon=None)
    build_run(db_path, "empty", steps=0)
    store = greenprof.RunStore(db_path)
    assert steps_frame(store, "no-carbon")["co2_g"].isna().all()
    empty = steps_frame(store, store.run("empty"))  # a RunInfo works too
    assert len(empty) == 0 and "energy_j:gpu:0" in empty.columns


def test_an_unknown_run_is_named(db_path: Path) -> None:
    build_run(db_path, steps=2)
    with pytest.raises(RunNotFound):
        steps_frame(greenprof.RunStore(db_path), "no-such-run")


def test_without_pandas_the_error_says_how_to_install_it(db_path: Path) -> None:
    build_run(db_path, steps=2)

    def no_pandas(name: str) -> ModuleType:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    with pytest.raises(GreenprofError, match="pip install pandas"):
        steps_frame(greenprof.RunStore(db_path), 1, import_module=no_pandas)


@pytest.mark.skipif(
    not hasattr(greenprof.RunStore, "steps_frame"), reason="RunStore.steps_frame not wired yet"
)
def test_the_store_gives_the_frame_too(db_path: Path) -> None:
    build_run(db_path, steps=3)
    store = greenprof.RunStore(db_path)
    frame = store.steps_frame("resnet18-bs64")  # type: ignore[attr-defined,unused-ignore]
    assert frame.equals(steps_frame(store, "resnet18-bs64"))


def test_each_steps_bound_is_a_column_nan_where_not_known(db_path: Path) -> None:
    from greenprof.store.writer import RunSpec, StoreWriter

    writer = StoreWriter(db_path, flush_interval_s=3600.0)
    writer.create_run(RunSpec("bounded", started_at=T0, interval_s=0.1))
    writer.add_steps(
        [
            (0, 0, 0.0, 1.0, 8, 10.0, 0, None, 0, 0.25, 0.25, 0.5),
            (1, 0, 1.0, 2.0, 8, 10.0, 0, None, 1),  # recovered: no bound
        ]
    )
    writer.close()
    frame = steps_frame(greenprof.RunStore(db_path), "bounded")
    assert frame.loc[0, "energy_uncertainty_j"] == 1.0
    assert pd.isna(frame.loc[1, "energy_uncertainty_j"])
    assert frame["energy_uncertainty_j"].dtype == "float64"

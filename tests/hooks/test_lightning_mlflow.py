"""Lightning's ``MLFlowLogger`` gets greenprof's numbers: a tiny real ``fit`` on CPU, a
real local MLflow store under ``tmp_path`` (SQLite: the installed MLflow refuses its
plain-file store by default; no server, no active fluent run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
mlflow = pytest.importorskip("mlflow")
lp = pytest.importorskip("lightning.pytorch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from greenprof.hooks.lightning import GreenprofCallback  # noqa: E402
from tests.hooks.conftest import fake_sensors, only_run  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's num_workers hints
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # MLflow's file store notice
]

N, BATCH, EPOCHS = 100, 16, 2  # 7 batches an epoch


@pytest.fixture(autouse=True)
def _mlflow_stays_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No telemetry, nothing under the home directory, greenprof's default setting."""
    home = tmp_path / "home"
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MPLCONFIGDIR", str(home / "matplotlib"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("GREENPROF_TRACKERS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def no_active_run() -> Iterator[None]:
    """The point of the test: MLFlowLogger leaves no fluent run active."""
    assert mlflow.active_run() is None
    yield
    assert mlflow.active_run() is None


class Tiny(lp.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _fit(tmp_path: Path, callback: GreenprofCallback) -> Any:
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(N, 4), torch.randn(N, 1)), batch_size=BATCH)
    logger = lp.loggers.MLFlowLogger(experiment_name="greenprof-test", tracking_uri=_uri(tmp_path))
    trainer = lp.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=EPOCHS,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[callback],
    )
    trainer.fit(Tiny(), data)
    return logger


def _history(client: Any, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_per_epoch_energy_and_carbon_land_in_the_loggers_run(
    db_path: Path, tmp_path: Path, no_active_run: None
) -> None:
    callback = GreenprofCallback(
        run="lightning-mlflow", db=db_path, sensors=fake_sensors(), country="FRA"
    )
    logger = _fit(tmp_path, callback)
    stored = only_run(db_path)
    client = mlflow.tracking.MlflowClient(tracking_uri=_uri(tmp_path))
    run = client.get_run(logger.run_id)
    assert run.data.tags["greenprof.run_id"] == str(stored.run.run_id)
    assert "train_loss" in run.data.metrics  # Lightning's own numbers: the same run
    epoch_j = _history(client, logger.run_id, "greenprof_epoch/energy_j")
    assert sorted(epoch_j) == list(range(EPOCHS))
    assert all(e > 0 for e in epoch_j.values())
    assert sum(epoch_j.values()) == pytest.approx(sum(s.energy_j for s in stored.steps))
    assert sorted(_history(client, logger.run_id, "greenprof_epoch/co2_g")) == [0, 1]
    run_j = client.get_metric_history(logger.run_id, "greenprof/energy_j")
    last_step = max(m.step for m in run_j)
    assert stored.run.energy_j in [pytest.approx(m.value) for m in run_j if m.step == last_step]


def test_trackers_off_keeps_the_numbers_out_of_the_loggers_run(
    db_path: Path, tmp_path: Path, no_active_run: None
) -> None:
    callback = GreenprofCallback(
        run="lightning-off", db=db_path, sensors=fake_sensors(), trackers="off"
    )
    logger = _fit(tmp_path, callback)
    client = mlflow.tracking.MlflowClient(tracking_uri=_uri(tmp_path))
    run = client.get_run(logger.run_id)
    assert "train_loss" in run.data.metrics
    assert not any(key.startswith("greenprof") for key in run.data.metrics)
    assert not any(key.startswith("greenprof") for key in run.data.tags)

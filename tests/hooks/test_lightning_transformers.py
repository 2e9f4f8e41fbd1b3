"""Lightning Callback and Transformers TrainerCallback: real tiny trainings on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import greenprof  # noqa: E402
from tests.hooks.conftest import (  # noqa: E402
    assert_consistent,
    fake_sensors,
    only_run,
    read_runs,
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's num_workers / logger hints
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

N, BATCH = 100, 16  # 7 batches an epoch, the last one of 4


def _loader() -> DataLoader:  # type: ignore[type-arg]
    torch.manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(N, 4), torch.randn(N, 1)), batch_size=BATCH)


def _lightning_module(fail_at: int | None = None) -> Any:
    lp = pytest.importorskip("lightning.pytorch")

    class Tiny(lp.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if fail_at is not None and self.global_step == fail_at:
                raise RuntimeError("diverged")
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return lp, Tiny()


def _trainer(lp: Any, callback: Any, tmp_path: Path, **kwargs: Any) -> Any:
    return lp.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[callback],
        **kwargs,
    )


def test_lightning_callback(db_path: Path, tmp_path: Path) -> None:
    from greenprof.hooks.lightning import GreenprofCallback

    lp, module = _lightning_module()
    callback = GreenprofCallback(run="lightning", db=db_path, sensors=fake_sensors())
    _trainer(lp, callback, tmp_path, max_epochs=2).fit(module, _loader())
    stored = only_run(db_path)
    assert stored.run.framework == "lightning"
    assert stored.run.status == "completed"
    assert stored.run.tags["global_rank"] == 0
    assert [s.samples for s in stored.steps] == ([16] * 6 + [4]) * 2
    assert [(e.epoch, e.steps) for e in stored.epochs] == [(0, 7), (1, 7)]
    assert_consistent(stored)


def test_lightning_accumulation_and_failure(db_path: Path, tmp_path: Path) -> None:
    from greenprof.hooks.lightning import GreenprofCallback

    lp, module = _lightning_module(fail_at=2)
    callback = GreenprofCallback(run="lightning-fail", db=db_path, sensors=fake_sensors())
    trainer = _trainer(lp, callback, tmp_path, max_epochs=1, accumulate_grad_batches=2)
    with pytest.raises(RuntimeError, match="diverged"):
        trainer.fit(module, _loader())
    stored = only_run(db_path)
    assert stored.run.status == "failed"
    assert [s.samples for s in stored.steps] == [32, 32]


def test_lightning_inside_decorator_is_one_run(db_path: Path, tmp_path: Path) -> None:
    from greenprof.hooks.lightning import GreenprofCallback

    lp, module = _lightning_module()

    @greenprof.profile("decorated-lightning", db=db_path, sensors=fake_sensors())
    def train() -> None:
        _trainer(lp, GreenprofCallback(), tmp_path, max_epochs=1).fit(module, _loader())

    train()
    stored = only_run(db_path)
    assert stored.run.name == "decorated-lightning"
    assert len(stored.steps) == 7


def test_transformers_trainer_callback(db_path: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it on PyTorch
    from greenprof.hooks.transformers import GreenprofCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    data = [
        {"input_ids": torch.randint(0, 64, (8,)), "labels": torch.tensor(i % 2)} for i in range(64)
    ]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        num_train_epochs=2,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = GreenprofCallback(run="hf", db=db_path, sensors=fake_sensors())
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    stored = only_run(db_path)
    assert stored.run.framework == "transformers"
    assert stored.run.status == "completed"
    assert len(stored.steps) == trainer.state.global_step == 8
    assert all(s.samples == 16 for s in stored.steps)
    assert [e.steps for e in stored.epochs] == [4, 4]
    assert_consistent(stored)


LIGHTNING_DDP = """
import lightning.pytorch as lp
import torch
from torch.utils.data import DataLoader, TensorDataset
from greenprof.hooks.lightning import GreenprofCallback
from greenprof.sensors.fake import FakeSensor

class Tiny(lp.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

if __name__ == "__main__":
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
    callback = GreenprofCallback(run="ddp", sensors=[FakeSensor("cpu:0", 5.0)])
    trainer = lp.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback])
    trainer.fit(Tiny(), train)
"""


@pytest.mark.slow
def test_lightning_ddp_records_each_ranks_rank(db_path: Path, tmp_path: Path) -> None:
    """Lightning's own launcher sets no RANK: the callback gives the run its rank."""
    pytest.importorskip("lightning")
    script = tmp_path / "ddp.py"
    script.write_text(LIGHTNING_DDP)
    env = dict(os.environ, GREENPROF_DB=str(db_path), OMP_NUM_THREADS="1")
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GREENPROF_JOB", "MASTER_PORT"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(read_runs(db_path), key=lambda r: r.run.rank if r.run.rank is not None else -1)
    assert [(r.run.rank, r.run.world_size) for r in runs] == [(0, 2), (1, 2)]
    assert [len(r.steps) for r in runs] == [4, 4]
    if hasattr(runs[0].run, "job_id"):
        assert runs[0].run.job_id is not None
        assert runs[0].run.job_id == runs[1].run.job_id


def test_trainer_callback_base_tags_claims_and_ends_with_the_outcome(db_path: Path) -> None:
    from greenprof.hooks._common import claimed_by
    from greenprof.hooks._trainer import TrainerCallbackBase

    class MyTrainerCallback(TrainerCallbackBase):
        framework = "mytrainer"

    callback = MyTrainerCallback(run="base", db=db_path, sensors=fake_sensors(), tags={"lr": "0.1"})
    ender = callback._start(global_rank=0, world_size=1, env={}, expected_steps=3)
    profiler = callback.profiler
    assert profiler is not None and claimed_by(profiler) == "mytrainer"
    ender.end(8)
    ender.end(8)
    callback._finish_after(KeyboardInterrupt())
    callback._finish_after(RuntimeError("twice"))  # a second end changes nothing
    assert callback.profiler is None and claimed_by(profiler) is None
    stored = only_run(db_path)
    assert (stored.run.status, stored.run.error) == ("interrupted", "KeyboardInterrupt")
    tags = {name: str(value) for name, value in stored.run.tags.items()}
    assert tags == {"lr": "0.1", "global_rank": "0", "world_size": "1"}
    assert stored.run.framework == "mytrainer"
    assert stored.run.expected_steps == 3
    assert [s.samples for s in stored.steps] == [8, 8]

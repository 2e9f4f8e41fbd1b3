"""Zero-code hooks whatever the script imports first, however often it probes.

The post-import finder must neither lose a callback to ``importlib.util.find_spec`` (a
probe, as TensorFlow does for ``keras`` and transformers for ``torch``) nor depend on
which package imports the framework. Fast tests use throwaway packages; slow ones run
real scripts under ``greenprof run`` with the real packages (tiny models, synthetic data).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenprof.hooks.autohook import (
    NO_STEP_WARNING,
    _PostImportFinder,
    install_import_hooks,
    is_launcher,
)
from greenprof.profiler import Profiler
from tests.hooks.conftest import StoredRun, assert_consistent, only_run

REPO = Path(__file__).resolve().parents[2]


# The finder, on throwaway packages --------------------------------------------------


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """A fresh importable package (its name unique to the test), removed afterwards."""
    name = f"gp_probe_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / "lib"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("VALUE = 42\n")
    (root / name / "sub.py").write_text("SUB = 1\n")
    sys.path.insert(0, str(root))
    finders = list(sys.meta_path)
    try:
        yield name
    finally:
        sys.path.remove(str(root))
        sys.meta_path[:] = finders
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def test_probing_does_not_consume_the_hook(package: str) -> None:
    fired: list[types.ModuleType] = []
    install_import_hooks({package: fired.append})
    for _ in range(3):
        assert importlib.util.find_spec(package) is not None  # probes, as TensorFlow does
    assert fired == []
    module = importlib.import_module(package)
    assert fired == [module]
    assert module.VALUE == 42
    assert not any(isinstance(f, _PostImportFinder) for f in sys.meta_path)  # done: gone


def test_a_submodule_hook_fires_once(package: str) -> None:
    fired: list[str] = []
    install_import_hooks({f"{package}.sub": lambda m: fired.append(m.__name__)})
    importlib.import_module(package)
    assert fired == []
    importlib.import_module(f"{package}.sub")
    importlib.reload(sys.modules[f"{package}.sub"])
    assert fired == [f"{package}.sub"]


def test_a_module_loaded_behind_our_back_is_caught_at_the_next_import(package: str) -> None:
    fired: list[str] = []
    install_import_hooks({package: lambda m: fired.append(m.__name__)})
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    plain = importlib.util.spec_from_file_location(package, spec.origin)
    assert plain is not None and plain.loader is not None
    module = importlib.util.module_from_spec(plain)
    sys.modules[package] = module
    plain.loader.exec_module(module)  # as a finder ahead of ours would
    assert fired == []
    importlib.import_module(f"{package}.sub")  # any later import notices it
    assert fired == [package]


def test_an_already_imported_module_fires_at_once() -> None:
    fired: list[str] = []
    install_import_hooks({"json": lambda m: fired.append(m.__name__)})
    assert fired == ["json"]


@pytest.mark.parametrize(
    ("argv", "launcher"),
    [
        (["python", "/venv/bin/torchrun", "--nproc_per_node=2", "train.py"], True),
        (["python", "-m", "torch.distributed.run", "--nproc_per_node=2", "t.py"], True),
        (["python", "-u", "-m", "torch.distributed.launch", "t.py"], True),
        (["python", "/venv/bin/accelerate", "launch", "t.py"], True),
        (["python", "/venv/bin/accelerate", "config"], False),
        (["python", "-X", "dev", "train.py"], False),
        (["python", "-m", "mypkg.train"], False),
        (["python", "-c", "import torchrun"], False),
        (["python"], False),
    ],
)
def test_launchers_are_recognised(argv: list[str], launcher: bool) -> None:
    assert is_launcher(argv) is launcher


# Real scripts under `greenprof run` ------------------------------------------------


def _profile(db: Path, tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    path = str(tmp_path / "train.py")
    Path(path).write_text(textwrap.dedent(script))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1")
    env.pop("KERAS_BACKEND", None)  # Keras's default: TensorFlow
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprof",
            "run",
            "--db",
            str(db),
            "--",
            sys.executable,
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


def _profiled_run(db: Path, tmp_path: Path, script: str) -> StoredRun:
    result = _profile(db, tmp_path, script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert NO_STEP_WARNING not in result.stderr
    stored = only_run(db)
    assert stored.run.status == "completed"
    assert_consistent(stored)
    return stored


KERAS_FIT = """
import numpy as np
x = np.random.default_rng(0).normal(size=(100, 4)).astype("float32")
y = np.random.default_rng(1).normal(size=(100, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "imports",
    [
        "from tensorflow import keras",  # the keras-io form
        "import tensorflow as tf\nkeras = tf.keras",
        "import tensorflow as tf\nimport keras",
    ],
)
def test_keras_after_tensorflow(db_path: Path, tmp_path: Path, imports: str) -> None:
    pytest.importorskip("tensorflow")
    stored = _profiled_run(db_path, tmp_path, imports + "\n" + KERAS_FIT)
    assert stored.run.framework == "keras"
    assert [s.samples for s in stored.steps] == ([16] * 6 + [4]) * 2


TORCH_LOOP = """
import torch
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(100, 4), torch.randn(100, 1)), batch_size=16)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for x, y in loader:
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
"""


@pytest.mark.slow
def test_torch_after_transformers_and_probes(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    script = """
    import importlib.util
    for _ in range(3):
        assert importlib.util.find_spec("torch") is not None
    import transformers
    from transformers import BertConfig
    """
    stored = _profiled_run(db_path, tmp_path, textwrap.dedent(script) + TORCH_LOOP)
    assert [s.samples for s in stored.steps] == [16] * 6 + [4]


@pytest.mark.slow
def test_torch_after_accelerate(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    script = """
    from accelerate import Accelerator
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)
    data = TensorDataset(torch.randn(100, 4), torch.randn(100, 1))
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(data, batch_size=16)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        optimizer.zero_grad()
        accelerator.backward(torch.nn.functional.mse_loss(model(x), y))
        optimizer.step()
    """
    stored = _profiled_run(db_path, tmp_path, script)
    assert len(stored.steps) == 7
    # Accelerate's DataLoaderShard draws one batch ahead, so the torch hook's per-step
    # counts shift by a batch (greenprof/hooks/torch.py); the total is exact.
    assert stored.run.samples == 100


@pytest.mark.slow
def test_lightning_first_with_validation(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    script = """
    import lightning.pytorch as lp
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(lp.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)
        def validation_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    train = DataLoader(TensorDataset(torch.randn(100, 4), torch.randn(100, 1)), batch_size=16)
    val = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=16)
    trainer = lp.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(Tiny(), train, val)
    """
    stored = _profiled_run(db_path, tmp_path, script)
    assert [s.samples for s in stored.steps] == ([16] * 6 + [4]) * 2  # no validation batch


@pytest.mark.slow
def test_hf_trainer_counts_training_batches_only(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    script = """
    import transformers
    import torch
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    def data(n):
        return [{"input_ids": torch.randint(0, 100, (8,)), "labels": torch.tensor(i % 2)}
                for i in range(n)]
    args = transformers.TrainingArguments(
        output_dir="out", per_device_train_batch_size=16, per_device_eval_batch_size=16,
        num_train_epochs=2, eval_strategy="epoch", report_to=[], save_strategy="no",
        logging_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data(200),
                                   eval_dataset=data(32))
    trainer.train()
    """
    stored = _profiled_run(db_path, tmp_path, script)
    assert stored.run.framework == "transformers"
    assert [s.samples for s in stored.steps] == ([16] * 12 + [8]) * 2  # 200 a epoch, no eval
    assert stored.run.samples == 400


@pytest.mark.slow
def test_no_step_seen_is_said(db_path: Path, tmp_path: Path) -> None:
    result = _profile(db_path, tmp_path, "print('no training here')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no training here\n"
    assert f"greenprof: warning: {NO_STEP_WARNING}" in result.stderr
    stored = only_run(db_path)
    assert stored.run.steps == 0
    if hasattr(Profiler, "note"):  # the public path for a note on a running run
        assert NO_STEP_WARNING in (stored.run.error or "")


@pytest.mark.slow
def test_steps_of_a_joined_profiler_count_as_steps(db_path: Path, tmp_path: Path) -> None:
    """A script's own Profiler joins the zero-code run; its steps are the run's steps."""
    script = """
    import greenprof
    with greenprof.Profiler("mine") as prof:
        for _ in range(3):
            with prof.step(samples=8):
                pass
    """
    result = _profile(db_path, tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert NO_STEP_WARNING not in result.stderr
    stored = only_run(db_path)
    assert (stored.run.name, stored.run.steps, stored.run.samples) == ("mine", 3, 24)

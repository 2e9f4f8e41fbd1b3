"""PyTorch definitions of the bench's models, and the eager / ``torch.compile`` loop.

Imported only inside a worker process. Initialisation matches Keras's defaults
(Glorot-uniform weights, zero biases, embeddings uniform in ±0.05); Adam with Keras's
epsilon (1e-7); bf16 is ``torch.autocast``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import torch
from torch import nn

from greenprof.bench.spec import Passes
from greenprof.bench.variants import Variant
from greenprof.bench.workloads import Batches, Workload
from greenprof.marks import StepAPI

LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7


class _Transformer(nn.Module):
    def __init__(self, w: Workload) -> None:
        super().__init__()
        self.embed = nn.Embedding(w.vocab, w.d_model)
        self.position = nn.Parameter(torch.empty(w.seq_len, w.d_model))
        block = nn.TransformerEncoderLayer(
            w.d_model, w.heads, w.ff, dropout=0.0, batch_first=True, layer_norm_eps=1e-5
        )
        self.encoder = nn.TransformerEncoder(block, w.layers, enable_nested_tensor=False)
        self.head = nn.Linear(w.d_model, w.classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position
        return self.head(self.encoder(x).mean(dim=1))  # type: ignore[no-any-return]


def build(w: Workload) -> nn.Module:
    """``w``'s model, initialised as Keras initialises its own."""
    model: nn.Module
    if w.kind == "mlp":
        widths = [w.features, *([w.hidden] * w.depth)]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(widths[-1], w.classes))
    elif w.kind == "cnn":
        height, width, channels = w.image
        first, second = w.channels
        model = nn.Sequential(
            nn.Conv2d(channels, first, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(second * (height // 4) * (width // 4), w.classes),
        )
    else:
        model = _Transformer(w)
    _initialise(model)
    return model


def _initialise(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -0.05, 0.05)
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            for part in module.in_proj_weight.chunk(3):
                nn.init.xavier_uniform_(part)
            if module.in_proj_bias is not None:
                nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, _Transformer):
            nn.init.uniform_(module.position, -0.05, 0.05)


def parameter_count(w: Workload) -> int:
    return sum(p.numel() for p in build(w).parameters() if p.requires_grad)


def versions() -> dict[str, str]:
    return {"torch": torch.__version__}


def device() -> torch.device:
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def _tensors(w: Workload, batches: Batches, where: torch.device) -> list[tuple[Any, Any, int]]:
    out = []
    for x, y in zip(batches.x, batches.y, strict=True):
        tx = torch.from_numpy(x)
        if w.kind == "cnn":
            tx = tx.permute(0, 3, 1, 2).contiguous()  # NHWC (the data) → NCHW (PyTorch)
        out.append((tx.to(where), torch.from_numpy(y).to(where), len(y)))
    return out


def train(
    profiler: StepAPI,
    w: Workload,
    batches: Batches,
    *,
    variant: Variant,
    passes: Passes,
    precision: str,
    seed: int,
) -> None:
    """Train the ``passes`` over ``batches``: epoch 0 is the warm-up, epoch 1 measured.

    Each step ends after its loss is read (``float(loss)``): on a GPU that is the
    step's real end, the same for every variant.
    """
    torch.manual_seed(seed)
    where = device()
    data = _tensors(w, batches, where)
    model = build(w).to(where)
    forward = torch.compile(model) if variant.compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON)
    loss_fn = nn.CrossEntropyLoss()
    bf16 = precision == "bf16"
    done, measured_from = 0, math.inf
    while passes.more(done, time.monotonic() - measured_from):
        profiler.epoch_begin(0 if done == 0 else 1)
        if done == 1:
            measured_from = time.monotonic()
        for x, y, samples in data:
            profiler.step_begin()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(where.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(forward(x), y)
            loss.backward()
            optimizer.step()
            profiler.step_end(samples, loss=float(loss.detach()))
        done += 1

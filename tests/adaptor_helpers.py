"""Test helpers for the degradation adaptor: a tiny config and fake text embeddings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from degkit.models.config import AdaptorConfig

TINY = AdaptorConfig(
    name="tiny",
    embed_dim=32,
    image_size=16,
    patch_size=8,
    vision_width=64,
    vision_layers=2,
    text_width=32,
    text_layers=2,
    text_heads=1,
    context_length=32,
)
"""Seconds to train on a CPU: 2 x 2 patches, one attention head, two blocks a tower."""

TINY_FIELDS = {k: v for k, v in TINY.to_dict().items() if k != "name"}


def scalar(t: torch.Tensor) -> float:
    """A 0-d tensor's value, detached from autograd."""
    return float(t.detach())


def fake_text_embeddings(texts: list[str], dim: int = 32) -> torch.Tensor:
    """A fixed unit vector per string (seeded by its SHA-256), independent of any model."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=dim)
        rows.append(v / np.linalg.norm(v))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def ddp_worker(rank: int, world_size: int, port: int, data: Path, out: Path) -> None:
    """One torchrun-like rank: train the tiny adaptor one step, save its trainable weights."""
    import torch.distributed as dist

    from degkit.models import config
    from degkit.train.adaptor import TrainConfig, train_adaptor

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    config.CONFIGS["tiny"] = TINY
    options = dict(model="tiny", steps=1, pretrain_steps=1, batch_size=4, warmup=1, seed=5)
    result = train_adaptor(TrainConfig(data=data, out=out, progress=False, **options))
    weights = {n: p.detach().clone() for n, p in result.model.trainable_parameters()}
    torch.save(weights, out / f"rank{rank}.pt")
    dist.destroy_process_group()

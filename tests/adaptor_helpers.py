"""Test helpers for the degradation adaptor: a tiny config and fake text embeddings."""

from __future__ import annotations

import dataclasses
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


def global_batch() -> dict:
    """8 rows whose equal captions (and content captions, some empty) span both halves."""
    g = torch.Generator().manual_seed(1)
    return {
        "lr": torch.rand(8, 3, 16, 16, generator=g),
        "hr": torch.rand(8, 3, 16, 16, generator=g),
        "degradation_caption": ["blur a", "noise b", "jpeg c", "blur d"] * 2,
        "fine_captions": [
            ["b1", "n0", "p0", "j1", "r0"],
            ["b0", "n1", "p1", "j1", "r0"],
            ["b0", "n0", "p0", "j0", "r1"],
            ["b1", "n1", "p0", "j0", "r0"],
        ]
        * 2,
        "content_caption": ["a red wall", "", "grass", "sky", "grass", "", "", ""],
        # the per-type levels behind the prompt-level targets
        "blur_level": [1.2, None, None, 2.6, 0.4, None, 3.3, 1.0],
        "gaussian_noise_level": [None, 9.0, None, 20.0, None, None, 4.0, 31.0],
        "poisson_noise_level": [None, 1.4, None, None, 2.2, None, None, 0.6],
        "jpeg_level": [35.0, 90.0, 55.0, 71.0, 30.0, 88.0, 62.0, 45.0],
        "ringing": [False, False, True, False, True, False, False, True],
    }


def rows(batch: dict, start: int, stop: int) -> dict:
    """Rows ``start:stop`` of a collated batch."""
    return {k: v[start:stop] for k, v in batch.items()}


def contrastive_losses(batch: dict, world) -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    """The adaptor step's and the CLIP pre-training's loss on ``batch`` under ``world``,
    each with the (rank-averaged) gradients; the same seeded models on every call."""
    import open_clip

    from degkit.models.adaptor import DegradationAdaptor, build_clip
    from degkit.models.losses import AdaptorLoss, InfoNCELoss, PromptLevelLoss
    from degkit.train.adaptor import pretrain_loss, protocol_prompts, training_step
    from degkit.train.distributed import average_gradients
    from degkit.train.optim import adamw

    torch.manual_seed(0)
    model = DegradationAdaptor(dataclasses.replace(TINY, num_types=5))
    loss_fn = AdaptorLoss("siglip")
    named = model.trainable_parameters() + list(loss_fn.named_parameters())
    prompts = protocol_prompts("A photo with {}", 5)
    optimizer = adamw(named, 0.0)  # lr 0
    numbers = training_step(model, loss_fn, optimizer, batch, 0.0, world, prompts)
    adaptor = (numbers["loss"], {n: p.grad.clone() for n, p in named})

    torch.manual_seed(0)
    clip = build_clip(TINY)
    info_nce = InfoNCELoss()
    info_nce.logit_scale = clip.logit_scale
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=clip.context_length)
    level_term = PromptLevelLoss()
    level_term.logit_scale = clip.logit_scale
    device = torch.device("cpu")
    loss = pretrain_loss(
        clip,
        info_nce,
        tokenizer,
        batch,
        TINY.image_size,
        device,
        world,
        None,
        (level_term, prompts),
    )
    loss.backward()
    average_gradients(clip.parameters(), world)
    grads = {n: p.grad.clone() for n, p in clip.named_parameters() if p.grad is not None}
    return {"adaptor": adaptor, "pretrain": (float(loss.detach()), grads)}


def ddp_loss_worker(rank: int, world_size: int, port: int, out: Path) -> None:
    """One rank of :func:`contrastive_losses` on its equal part of :func:`global_batch`."""
    import torch.distributed as dist

    from degkit.train.distributed import join_world

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    world = join_world(torch.device("cpu"))
    n = len(global_batch()["lr"]) // world_size
    losses = contrastive_losses(rows(global_batch(), rank * n, (rank + 1) * n), world)
    torch.save(losses, out / f"losses{rank}.pt")
    dist.destroy_process_group()


def interrupt_on_call(monkeypatch, owner, name: str, call: int = 3):
    """Make ``owner.name`` raise KeyboardInterrupt on its ``call``-th call; return the original."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return real


def run_two_ranks(worker, *args) -> None:
    """Run ``worker(rank, 2, port, *args)`` in two forked processes on a free local port.

    fork: the ranks inherit the imported modules instead of importing torch again.
    """
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.start_processes(
        worker, args=(2, port, *args), nprocs=2, start_method="fork"
    )

"""AdamW parameter groups, learning-rate schedules, optimizer state as tensors."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "adamw",
    "lr_at",
    "multistep_lr_at",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "set_lr",
]

BETAS = (0.9, 0.98)
EPS = 1e-6


def adamw(
    named_parameters: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float = 0.2
) -> torch.optim.AdamW:
    """AdamW (betas 0.9 / 0.98, eps 1e-6) with weight decay on weight matrices only.

    Parameters with fewer than two dimensions (norms, biases, temperatures,
    class embeddings) get no decay.
    """
    decay, no_decay = [], []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up to ``base``, then cosine to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def multistep_lr_at(
    step: int, total: int, base: float, milestones: Sequence[float], gamma: float = 0.5
) -> float:
    """Learning rate of ``step`` (0-based): ``base`` times ``gamma`` per milestone passed.

    ``milestones`` are fractions of ``total`` (0.5 = halfway); a milestone at
    step ``m`` applies from step ``m`` on.
    """
    passed = sum(step >= round(m * total) for m in milestones)
    return base * gamma**passed


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use learning rate ``lr`` in every parameter group from the next step on."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's state as ``{prefix.<param>.<key>: tensor}`` plus its JSON-able groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{key}": torch.as_tensor(value)
        for index, entry in state["state"].items()
        for key, value in entry.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict, prefix: str
) -> None:
    """Restore what :func:`optimizer_to_tensors` saved."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        head, _, rest = name.partition(".")
        if head != prefix:
            continue
        index, _, key = rest.partition(".")
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})

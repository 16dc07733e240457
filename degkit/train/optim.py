"""AdamW parameter groups, learning-rate schedules, optimizer state as tensors, EMA steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = [
    "adamw",
    "ema_updater",
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


def ema_updater(ema: AveragedModel, model: nn.Module, decay: float) -> Callable[[], None]:
    """``ema.update_parameters(model)`` of an EMA of ``decay`` made by
    ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`` (buffers not averaged).

    The same numbers (a copy at the first update, then one ``torch._foreach_lerp_`` of
    every parameter by ``1 - decay``) from parameter lists gathered once, where
    ``update_parameters`` walks both module trees at every step (about 0.3 ms on a CPU,
    a few percent of a small SR model's step). Both modules must keep their parameters
    (in-place updates and ``load_state_dict`` do).
    """
    averaged = [p.detach() for p in ema.module.parameters()]
    current = [p.detach() for p in model.parameters()]
    if len(averaged) != len(current) or not all(p.is_floating_point() for p in averaged):
        raise ValueError("the EMA and the model must hold the same floating-point parameters")

    def update() -> None:
        if ema.n_averaged == 0:
            ema.update_parameters(model)
            return
        with torch.no_grad():
            torch._foreach_lerp_(averaged, current, 1 - decay)
        ema.n_averaged += 1

    return update


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

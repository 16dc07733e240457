"""A training loop's step counter with a progress bar; bf16 autocast on CUDA."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import torch
from tqdm import tqdm

__all__ = ["bf16_autocast", "run_steps"]


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing (float32) elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_steps(
    name: str,
    start: int,
    total: int,
    step: Callable[[int], dict[str, float]],
    progress: bool,
    on_step: Callable[[int], None] = lambda s: None,
) -> None:
    """Call ``step(s)`` for s in [start, total), then ``on_step(s + 1)``.

    A tqdm bar on stderr (when ``progress``) shows the numbers ``step`` returns.
    """
    bar = tqdm(
        total=total, initial=start, desc=name, unit="step", file=sys.stderr, disable=not progress
    )
    with bar:
        for s in range(start, total):
            numbers = step(s)
            bar.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
            bar.update()
            on_step(s + 1)

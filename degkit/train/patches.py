"""Paired LR / HR training patches with the same random flips and rotation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["paired_patches"]


def paired_patches(
    lr: Sequence[torch.Tensor],
    hr: Sequence[torch.Tensor],
    scale: int,
    patch: int,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``patch x patch`` LR patch per image and the HR patch over the same area.

    ``lr[i]`` is ``3 x h x w`` and ``hr[i]`` ``3 x (h * scale) x (w * scale)``.
    Each pair then gets the same random horizontal flip, vertical flip and
    transpose (together: the 8 flips and 90-degree rotations). Returns the
    stacked ``N x 3 x patch x patch`` and ``N x 3 x (patch * scale) x (patch * scale)``.
    """
    lr_out, hr_out = [], []
    for i, (low, high) in enumerate(zip(lr, hr, strict=True)):
        h, w = low.shape[-2:]
        if tuple(high.shape[-2:]) != (h * scale, w * scale):
            raise ValueError(
                f"row {i}: HR is {tuple(high.shape[-2:])}, not {scale} x the LR's {(h, w)}"
            )
        if h < patch or w < patch:
            raise ValueError(f"--patch {patch}: larger than the {h} x {w} LR image of row {i}")
        top, left = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        low = low[:, top : top + patch, left : left + patch]
        high = high[:, top * scale : (top + patch) * scale, left * scale : (left + patch) * scale]
        hflip, vflip, transpose = rng.integers(0, 2, size=3).tolist()
        for flag, op in (
            (hflip, lambda t: t.flip(-1)),
            (vflip, lambda t: t.flip(-2)),
            (transpose, lambda t: t.transpose(-1, -2)),
        ):
            if flag:
                low, high = op(low), op(high)
        lr_out.append(low)
        hr_out.append(high)
    return torch.stack(lr_out), torch.stack(hr_out)

"""A non-VLM control for the adaptor: a small CNN regressing per-type degradation levels.

:class:`LevelRegressor` maps an LR image (float ``N x 3 x H x W`` in ``[0, 1]``,
any size) to, per caption type, a presence logit and a level in the type's own
unit (blur sigma in pixels, Gaussian noise sigma on 0-255, Poisson scale, JPEG
quality, ringing: presence only). :func:`level_loss` is binary cross-entropy on
presence plus a smooth-L1 regression on levels divided by the type's
:data:`LEVEL_SCALES`, counted only where the type is present, so an absent type
and a present one at level 0 stay distinct.

Targets come from one function, :func:`levels_from_flat`, which reads a
dataset row's flat columns; those columns describe the *last* op of each type,
so this is a stand-in until per-type ground truth from the records replaces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from degkit.captions import PAPER_TYPES, flat_schema

__all__ = [
    "LEVEL_COLUMNS",
    "LEVEL_SCALES",
    "LevelOutput",
    "LevelRegressor",
    "level_loss",
    "levels_from_batch",
    "levels_from_flat",
]

LEVEL_SCALES: dict[str, float] = {
    "blur": 3.0,
    "gaussian noise": 30.0,
    "poisson noise": 3.0,
    "jpeg": 100.0,
    "ringing": 1.0,
}
"""Per type, the divisor that brings its level to about [0, 1] for the loss."""

LEVEL_COLUMNS = ("blur_sigma", "noise_kind", "noise_level", "jpeg_quality", "ringing")
"""The flat columns :func:`levels_from_flat` reads."""


def levels_from_flat(row: Mapping[str, Any]) -> tuple[list[float], list[bool]]:
    """(level, present) per type of :data:`~degkit.captions.PAPER_TYPES` from flat columns.

    blur: ``blur_sigma``; gaussian / poisson noise: ``noise_level`` when
    ``noise_kind`` names that noise; jpeg: ``jpeg_quality``; ringing: 1.0 when
    ``ringing``. An absent type has level 0.0 and ``present`` False.
    ``noise_kind`` may be its label or its class code (as stored in datasets).
    """
    noise_kind = row.get("noise_kind")
    if noise_kind is not None and not isinstance(noise_kind, str):  # a class code (int, tensor)
        noise_kind = flat_schema()["noise_kind"].labels[int(noise_kind)]
    values = {
        "blur": row.get("blur_sigma"),
        "gaussian noise": row.get("noise_level") if noise_kind == "gaussian" else None,
        "poisson noise": row.get("noise_level") if noise_kind == "poisson" else None,
        "jpeg": row.get("jpeg_quality"),
        "ringing": 1.0 if row.get("ringing") else None,
    }
    levels = [float(values[t]) if values[t] is not None else 0.0 for t in PAPER_TYPES]
    present = [values[t] is not None for t in PAPER_TYPES]
    return levels, present


def levels_from_batch(batch: Mapping[str, Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`levels_from_flat` of every row of a collated batch: levels and present, ``N x K``."""
    missing = [name for name in LEVEL_COLUMNS if name not in batch]
    if missing:
        raise ValueError(f"batch has no column(s) {missing} (needed for per-type levels)")
    n = len(batch[LEVEL_COLUMNS[0]])
    pairs = [levels_from_flat({name: batch[name][i] for name in LEVEL_COLUMNS}) for i in range(n)]
    levels = torch.tensor([p[0] for p in pairs], dtype=torch.float32).view(n, len(PAPER_TYPES))
    present = torch.tensor([p[1] for p in pairs], dtype=torch.bool).view(n, len(PAPER_TYPES))
    return levels, present


@dataclasses.dataclass
class LevelOutput:
    """``presence_logits`` and ``levels`` (in each type's unit), both ``N x K``."""

    presence_logits: torch.Tensor
    levels: torch.Tensor


class LevelRegressor(nn.Module):
    """Four stride-2 conv blocks, global average pooling, then a presence and a level per type.

    Args:
        types: the caption types, in output order (default the paper's five).
        width: channels of the first block (doubled at each of the next two).
    """

    def __init__(self, types: Sequence[str] = PAPER_TYPES, width: int = 32) -> None:
        super().__init__()
        unknown = sorted(set(types) - set(LEVEL_SCALES))
        if unknown:
            raise ValueError(f"no level scale for type(s) {unknown}; known: {sorted(LEVEL_SCALES)}")
        self.types = tuple(types)
        channels = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels[-1], 2 * len(self.types))
        self.register_buffer(
            "scales", torch.tensor([LEVEL_SCALES[t] for t in self.types]), persistent=False
        )

    def forward(self, images: torch.Tensor) -> LevelOutput:
        features = self.features(images - 0.5).mean(dim=(2, 3))
        presence, level = self.head(features).view(len(images), 2, len(self.types)).unbind(1)
        return LevelOutput(presence_logits=presence, levels=level * self.scales)


def level_loss(
    output: LevelOutput, levels: torch.Tensor, present: torch.Tensor, scales: torch.Tensor
) -> torch.Tensor:
    """BCE on presence + smooth-L1 on ``levels / scales`` where ``present`` (see the module doc)."""
    presence = F.binary_cross_entropy_with_logits(output.presence_logits, present.float())
    error = F.smooth_l1_loss(output.levels / scales, levels / scales, reduction="none")
    mask = present.float()
    return presence + (error * mask).sum() / mask.sum().clamp(min=1)

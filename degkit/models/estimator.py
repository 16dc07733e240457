"""A non-VLM control for the adaptor: a small CNN regressing per-type degradation levels.

:class:`LevelRegressor` maps an LR image (float ``N x 3 x H x W`` in ``[0, 1]``,
any size) to, per caption type, a presence logit and a level in the type's own
unit (blur sigma in pixels, Gaussian noise sigma on 0-255, Poisson scale, JPEG
quality, ringing: presence only). :func:`level_loss` is binary cross-entropy on
presence plus a regression term on levels divided by the type's
:data:`LEVEL_SCALES`, counted only where the type is present, so an absent type
and a present one at level 0 stay distinct.

The regression term is, by default (``level_bins`` > 0), a histogram loss: the
head gives each type's level as a distribution over ``level_bins`` equal bins
of ``[0, LEVEL_SPAN]`` (scaled units), trained by cross-entropy towards the
true level blurred by a Gaussian of 0.75 bin widths (the "HL-Gauss" target of
Imani and White, 2018; Farebrother et al., 2024, found it beats squared or
absolute errors as a regression loss), and the level it outputs is that
distribution's median. With ``level_bins=0`` the head outputs the level itself,
trained by a smooth-L1 loss (L1 beyond :data:`LEVEL_BETA`).

Targets are the per-type levels of :mod:`degkit.levels` (all ops of a type
combined: blur as effective sigma at LR scale, noises as the std later
filters leave of them, the last JPEG's quality), the numbers the fine captions print:
:func:`levels_from_flat` reads them from a dataset row's level columns,
:func:`levels_from_records` computes them from a sample's records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from degkit.levels import LEVEL_COLUMNS, PAPER_TYPES, type_levels
from degkit.models.jpeg_grid import GRID_QUALITIES, jpeg_grid_scores
from degkit.ops.labels import Record

__all__ = [
    "LEVEL_BETA",
    "LEVEL_SPAN",
    "LEVEL_SCALES",
    "LevelOutput",
    "LevelRegressor",
    "POOLS",
    "histogram_edges",
    "histogram_median",
    "histogram_target",
    "level_loss",
    "levels_from_batch",
    "levels_from_flat",
    "levels_from_records",
]

LEVEL_SCALES: dict[str, float] = {
    "blur": 3.0,
    "gaussian noise": 30.0,
    "poisson noise": 3.0,
    "jpeg": 100.0,
    "ringing": 1.0,
}
"""Per type, the divisor that brings its level to about [0, 1] for the loss."""


LEVEL_BETA = 0.05
"""Smooth-L1's switch from quadratic to linear, in scaled level units: L1 beyond
a twentieth of the scale, so the regression pulls as hard as the presence term
and aims at the median level (the protocol scores within a tolerance)."""


LEVEL_SPAN = 1.5
"""The histogram head covers scaled levels ``[0, LEVEL_SPAN]``; higher ones count in its
last bin."""

HISTOGRAM_SIGMA = 0.75
"""Width of the Gaussian blurring a histogram target, in bins."""


def _targets(values: Mapping[str, Any]) -> tuple[list[float], list[bool]]:
    """(level, present) per type from a level (or None) per type; absent reads 0.0."""
    levels = [float(values[t]) if values[t] is not None else 0.0 for t in PAPER_TYPES]
    return levels, [values[t] is not None for t in PAPER_TYPES]


def levels_from_flat(row: Mapping[str, Any]) -> tuple[list[float], list[bool]]:
    """(level, present) per type of :data:`~degkit.levels.PAPER_TYPES` from a row's level columns.

    The columns are :data:`~degkit.levels.LEVEL_COLUMNS` (``blur_level``,
    ``gaussian_noise_level``, ``poisson_noise_level``, ``jpeg_level``; ringing:
    the ``ringing`` flag, level 1.0). An absent type (null, or a False flag)
    has level 0.0 and ``present`` False.
    """
    values = {t: row.get(column) for t, column in LEVEL_COLUMNS.items()}
    return _targets({**values, "ringing": 1.0 if values["ringing"] else None})


def levels_from_records(
    records: Sequence[Record], hr_size: tuple[int, int] | None = None
) -> tuple[list[float], list[bool]]:
    """:func:`levels_from_flat`, computed from a sample's records (``hr_size``: the HR size)."""
    return _targets(type_levels(records, hr_size))


def levels_from_batch(batch: Mapping[str, Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`levels_from_flat` of every row of a collated batch: levels and present, ``N x K``."""
    columns = list(LEVEL_COLUMNS.values())
    missing = [name for name in columns if name not in batch]
    if missing:
        raise ValueError(f"batch has no column(s) {missing} (needed for per-type levels)")
    n = len(batch[columns[0]])
    pairs = [levels_from_flat({name: batch[name][i] for name in columns}) for i in range(n)]
    levels = torch.tensor([p[0] for p in pairs], dtype=torch.float32).view(n, len(PAPER_TYPES))
    present = torch.tensor([p[1] for p in pairs], dtype=torch.bool).view(n, len(PAPER_TYPES))
    return levels, present


@dataclasses.dataclass
class LevelOutput:
    """``presence_logits`` and ``levels`` (in each type's unit), both ``N x K``; with a
    histogram head, ``level_logits`` ``N x K x bins`` too."""

    presence_logits: torch.Tensor
    levels: torch.Tensor
    level_logits: torch.Tensor | None = None


def histogram_edges(bins: int) -> torch.Tensor:
    """The ``bins + 1`` edges of the histogram head's equal bins of ``[0, LEVEL_SPAN]``."""
    return torch.linspace(0.0, LEVEL_SPAN, bins + 1)


def histogram_target(scaled: torch.Tensor, bins: int) -> torch.Tensor:
    """``... x bins``: the mass of a Gaussian at each scaled level (sd 0.75 bins) in each
    bin, the tails beyond ``[0, LEVEL_SPAN]`` counted in the end bins (rows sum to 1)."""
    edges = histogram_edges(bins).to(scaled)
    sigma = HISTOGRAM_SIGMA * LEVEL_SPAN / bins
    cdf = torch.special.ndtr((edges - scaled.unsqueeze(-1)) / sigma)
    inner = cdf[..., 1:] - cdf[..., :-1]
    tails = torch.zeros_like(inner)
    tails[..., 0] = cdf[..., 0]
    tails[..., -1] = 1 - cdf[..., -1]
    return inner + tails


def histogram_median(logits: torch.Tensor) -> torch.Tensor:
    """The median scaled level of each ``... x bins`` histogram (linear within its bin)."""
    bins = logits.shape[-1]
    edges = histogram_edges(bins).to(logits)
    mass = logits.softmax(dim=-1)
    cdf = mass.cumsum(dim=-1)
    index = (cdf < 0.5).sum(dim=-1, keepdim=True).clamp(max=bins - 1)
    before = (cdf.gather(-1, index) - mass.gather(-1, index)).squeeze(-1)
    inside = ((0.5 - before) / mass.gather(-1, index).squeeze(-1).clamp(min=1e-12)).clamp(0, 1)
    return edges[index.squeeze(-1)] + inside * (LEVEL_SPAN / bins)


_GRID_FEATURES = 64

POOLS = ("mean", "mean_std")
"""Global pooling of the features: their mean, or their mean and standard deviation."""


class LevelRegressor(nn.Module):
    """A full-resolution stem, four stride-2 conv blocks, global pooling, then a presence and
    a level per type.

    The stem (``stem`` stride-1 3x3 convs of ``width`` channels, before any
    downsampling) keeps the pixel-scale statistics noise, JPEG blocking and
    fine blur live in; ``pool="mean_std"`` pools the mean and the standard
    deviation of the stem's and the last block's features (``"mean"``: the
    last block's mean only). ``stem=0, pool="mean", jpeg_grid=False,
    level_bins=0`` is the plain four-block network with a scalar level head.

    With ``jpeg_grid``, the head also reads the image's
    :func:`~degkit.models.jpeg_grid.jpeg_grid_scores` (how well its 8x8 block
    DCT fits each JPEG quality's quantiser) through ``Linear(Q, 64)`` + GELU:
    a fixed feature a small CNN does not learn from a few hundred images.

    Args:
        types: the caption types, in output order (default the paper's five).
        width: channels of the stem and the first block (doubled at each of the next two).
        stem: number of stride-1 convs before the first stride-2 one.
        pool: one of :data:`POOLS`.
        jpeg_grid: add the JPEG grid scores to the pooled features.
        level_bins: bins of the histogram level head (see the module doc); 0: a scalar
            level per type.
    """

    def __init__(
        self,
        types: Sequence[str] = PAPER_TYPES,
        width: int = 32,
        stem: int = 2,
        pool: str = "mean_std",
        jpeg_grid: bool = True,
        level_bins: int = 16,
    ) -> None:
        super().__init__()
        unknown = sorted(set(types) - set(LEVEL_SCALES))
        if unknown:
            raise ValueError(f"no level scale for type(s) {unknown}; known: {sorted(LEVEL_SCALES)}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if stem < 0:
            raise ValueError(f"stem must be >= 0 convs, got {stem}")
        if level_bins < 0 or level_bins == 1:
            raise ValueError(f"level_bins must be 0 (a scalar level) or >= 2, got {level_bins}")
        self.types, self.pool, self.level_bins = tuple(types), pool, level_bins
        stem_channels = [3] + [width] * stem
        self.stem = nn.Sequential(
            *(
                layer
                for c_in, c_out in zip(stem_channels[:-1], stem_channels[1:], strict=True)
                for layer in (nn.Conv2d(c_in, c_out, 3, padding=1), nn.GELU())
            )
        )
        channels = [stem_channels[-1], width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
        self.features = nn.Sequential(*layers)
        pooled = channels[-1] if pool == "mean" else 2 * (channels[0] + channels[-1])
        self.grid = (
            nn.Sequential(nn.Linear(len(GRID_QUALITIES), _GRID_FEATURES), nn.GELU())
            if jpeg_grid
            else None
        )
        pooled += _GRID_FEATURES if jpeg_grid else 0
        self.head = nn.Linear(pooled, len(self.types) * (1 + max(1, level_bins)))
        for conv in (*self.stem, *self.features):
            if isinstance(conv, nn.Conv2d):  # He init: the weak noise signal survives the depth
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        self.register_buffer(
            "scales", torch.tensor([LEVEL_SCALES[t] for t in self.types]), persistent=False
        )

    def forward(self, images: torch.Tensor) -> LevelOutput:
        low = self.stem(images - 0.5)
        high = self.features(low)
        if self.pool == "mean":
            pooled = high.mean(dim=(2, 3))
        else:
            pooled = torch.cat([_mean_std(low), _mean_std(high)], dim=1)
        if self.grid is not None:
            pooled = torch.cat([pooled, self.grid(jpeg_grid_scores(images))], dim=1)
        out = self.head(pooled)
        k = len(self.types)
        presence, rest = out[:, :k], out[:, k:]
        if not self.level_bins:
            return LevelOutput(presence_logits=presence, levels=rest * self.scales)
        logits = rest.reshape(len(images), k, self.level_bins)
        levels = histogram_median(logits) * self.scales
        return LevelOutput(presence_logits=presence, levels=levels, level_logits=logits)


def _mean_std(features: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean and the standard deviation over positions: ``N x 2C``.

    The deviation is ``sqrt(variance + 1e-6)``: finite gradients on a flat map.
    """
    flat = features.flatten(2)
    mean = flat.mean(dim=2)
    variance = (flat - mean.unsqueeze(2)).square().mean(dim=2)
    return torch.cat([mean, (variance + 1e-6).sqrt()], dim=1)


def level_loss(
    output: LevelOutput, levels: torch.Tensor, present: torch.Tensor, scales: torch.Tensor
) -> torch.Tensor:
    """BCE on presence + the level term on ``levels / scales`` where ``present``: histogram
    cross-entropy when ``output`` has ``level_logits``, else smooth-L1 (see the module doc)."""
    presence = F.binary_cross_entropy_with_logits(output.presence_logits, present.float())
    if output.level_logits is not None:
        target = histogram_target(levels / scales, output.level_logits.shape[-1])
        error = -(target * output.level_logits.log_softmax(dim=-1)).sum(dim=-1)
    else:
        error = F.smooth_l1_loss(
            output.levels / scales, levels / scales, reduction="none", beta=LEVEL_BETA
        )
    mask = present.float()
    return presence + (error * mask).sum() / mask.sum().clamp(min=1)

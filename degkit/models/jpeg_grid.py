"""JPEG evidence on the 8x8 grid: how well an image's block DCT fits each quality's quantiser.

The decoded luma of a JPEG, cut on its 8x8 grid and transformed again, has
DCT coefficients close to whole multiples of its quantisation steps (off only
by the decoder's rounding). For a candidate quality ``q`` the score is the
mean of ``cos(2 pi c / t)`` over the coefficients ``c`` that ``q``'s
quantiser would not round to zero (``|c| > t / 2``), ``t`` being the step of
``c``'s frequency in libjpeg's luma table at ``q``. It is near 1 at the
image's own quality (and at finer quantisers whose steps divide its steps),
and near 0 at coarser ones and for an image never compressed. A filter after
the compression (ringing, a resize) or a crop off the grid weakens the
evidence, so the scores are features for a learned head, not an answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from degkit.ops.jpeg_tensor import quant_tables

__all__ = ["GRID_QUALITIES", "jpeg_grid_scores", "luma"]

GRID_QUALITIES: tuple[int, ...] = tuple(range(20, 101))
"""The candidate qualities :func:`jpeg_grid_scores` scores by default."""

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(images: torch.Tensor) -> torch.Tensor:
    """``N x 3 x H x W`` RGB -> ``N x H x W`` luma with JPEG's (JFIF) weights, same scale."""
    return torch.einsum("nchw,c->nhw", images, images.new_tensor(_LUMA_WEIGHTS))


def _dct_matrix(device: torch.device) -> torch.Tensor:
    """The orthonormal 8-point DCT-II (the JPEG DCT in exact arithmetic), rows = frequencies."""
    n = torch.arange(8.0, device=device)
    d = torch.cos(math.pi * (2 * n[None] + 1) * n[:, None] / 16) * 0.5
    d[0] /= math.sqrt(2)
    return d


def jpeg_grid_scores(
    images: torch.Tensor, qualities: Sequence[int] = GRID_QUALITIES
) -> torch.Tensor:
    """Per image and candidate quality, the fit of the luma's 8x8 DCT to the quantiser.

    Args:
        images: ``N x 3 x H x W`` RGB in ``[0, 1]`` with the grid at the top-left
            corner; the right and bottom rows that do not fill a block are left out.
        qualities: candidate JPEG qualities (1-100).

    Returns:
        ``N x len(qualities)`` scores in ``[-1, 1]`` (0 where no coefficient
        counts, e.g. a flat or a smaller-than-8 image).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got {tuple(images.shape)}")
    n, _, h, w = images.shape
    h, w = h // 8 * 8, w // 8 * 8
    x = images[..., :h, :w].float() * 255
    centred = luma(x) - 128
    blocks = centred.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(n, -1, 8, 8)
    d = _dct_matrix(x.device)
    coefs = (d @ blocks @ d.T).flatten(2)  # N x blocks x 64
    steps = quant_tables(torch.tensor(list(qualities), device=x.device))[:, 0].float()
    scores = []
    for table in steps:  # one quality at a time: memory stays N x blocks x 64
        counted = (coefs.abs() > table / 2).float()
        fit = (counted * torch.cos(2 * math.pi * coefs / table)).sum(dim=(1, 2))
        scores.append(fit / counted.sum(dim=(1, 2)).clamp(min=1))
    return torch.stack(scores, dim=1)

"""Fixed degradation evidence: hand-made image statistics an estimator head can read.

Two families, computed without gradients from ``N x 3 x H x W`` RGB in ``[0, 1]``:

* :func:`~degkit.models.jpeg_grid.jpeg_grid_scores`: how well the 8x8 block
  DCT fits each JPEG quality's quantiser (81 scores, qualities 20-100);
* :func:`noise_statistics` (55 values): the size of the finest detail, the
  part of an image that noise dominates. On the luma and on each of R, G, B
  (0-255 scale): the 10th, 25th, 50th and 75th percentiles of the magnitude
  of three detail filters (the diagonal and the vertical Haar detail of 2x2
  blocks, and the 4-neighbour Laplacian), each filter scaled to pass white
  noise at unit gain, so that on pure white noise of standard deviation
  ``s`` the median is ``0.674 s`` (the median of ``|N(0, s)|``): 48 values,
  as ``log1p``. Then the luma's median diagonal detail within four brightness
  bands (0-64, 64-128, 128-192, 192-256 on 0-255; ``-1`` for a band with no
  pixels): Gaussian noise is the same in every band, Poisson noise grows
  with brightness: 4 values. Last, the correlation of the diagonal detail
  between R and G, G and B, R and B: near 1 for grey noise, near 0 for
  independent colour noise: 3 values.

:func:`degradation_evidence` concatenates both (136 values). The statistics are
features for a learned head, not estimates: texture and blur change them too.
"""

from __future__ import annotations

import torch

from degkit.models.jpeg_grid import GRID_QUALITIES, jpeg_grid_scores, luma

__all__ = ["EVIDENCE_FEATURES", "NOISE_FEATURES", "degradation_evidence", "noise_statistics"]

PERCENTILES = (0.10, 0.25, 0.50, 0.75)
BRIGHTNESS_BANDS = ((0.0, 64.0), (64.0, 128.0), (128.0, 192.0), (192.0, 256.0))
NOISE_FEATURES = 3 * 4 * len(PERCENTILES) + len(BRIGHTNESS_BANDS) + 3
"""Length of :func:`noise_statistics`' output."""
EVIDENCE_FEATURES = len(GRID_QUALITIES) + NOISE_FEATURES
"""Length of :func:`degradation_evidence`' output."""


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)


def noise_statistics(images: torch.Tensor) -> torch.Tensor:
    """``N x 55`` detail statistics of ``images`` (see the module doc).

    Raises:
        ValueError: not ``N x 3 x H x W``, or smaller than 3 x 3.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got {tuple(images.shape)}")
    if min(images.shape[-2:]) < 3:
        raise ValueError(f"images must be at least 3 x 3, got {tuple(images.shape[-2:])}")
    x = images.float() * 255
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    planes = torch.cat([luma(x)[:, None], x], dim=1)  # N x 4 (luma, R, G, B) x H x W
    tl, tr = planes[..., 0:h:2, 0:w:2], planes[..., 0:h:2, 1:w:2]
    bl, br = planes[..., 1:h:2, 0:w:2], planes[..., 1:h:2, 1:w:2]
    diagonal = (tl - tr - bl + br) / 2
    vertical = (tl + tr - bl - br) / 2
    centre = planes[..., 1:-1, 1:-1]
    laplacian = (
        4 * centre
        - planes[..., :-2, 1:-1]
        - planes[..., 2:, 1:-1]
        - planes[..., 1:-1, :-2]
        - planes[..., 1:-1, 2:]
    ) / 20**0.5
    q = torch.tensor(PERCENTILES, device=x.device)
    features = []
    for detail in (diagonal, vertical, laplacian):
        spread = torch.quantile(detail.abs().flatten(2), q, dim=2)  # P x N x 4
        features.append(torch.log1p(spread.permute(1, 2, 0).flatten(1)))
    brightness = (tl + tr + bl + br)[:, :1] / 4
    luma_detail = diagonal[:, :1].abs()
    for low, high in BRIGHTNESS_BANDS:
        inside = (brightness >= low) & (brightness < high)
        band = torch.where(inside, luma_detail, torch.nan).flatten(1)
        median = torch.nanmedian(band, dim=1).values
        features.append(torch.nan_to_num(torch.log1p(median), nan=-1.0)[:, None])
    r, g, b = (diagonal[:, c].flatten(1) for c in (1, 2, 3))
    features.append(torch.stack([_correlation(r, g), _correlation(g, b), _correlation(r, b)], 1))
    return torch.cat(features, dim=1)


@torch.no_grad()
def degradation_evidence(images: torch.Tensor) -> torch.Tensor:
    """``N x 136``: the JPEG grid scores, then the noise statistics (see the module doc)."""
    return torch.cat([jpeg_grid_scores(images), noise_statistics(images)], dim=1)

"""Fixed degradation evidence: hand-made image statistics an estimator head can read.

Three families, computed without gradients from ``N x 3 x H x W`` RGB in ``[0, 1]``:

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

* :func:`sharpness_statistics` (31 values): how the luma's detail falls off
  from fine to coarse scales, the part of an image blur changes. The
  band-pass detail between successive Gaussian blurs of sigma 0, 0.5, 1,
  1.5, 2 and 3 pixels (5 bands, a 3-pixel border left out): the 50th, 90th
  and 99th percentiles of its magnitude (0-255 scale), as ``log1p``: 15
  values. Then the radial power spectrum of the Hann-windowed luma: the mean
  power in 16 equal rings of spatial frequency up to 0.5 cycles per pixel
  (the corners beyond it count in the last ring), as the natural log of each
  ring's power over the first ring's: 16 values. Below 32 pixels a side some
  rings hold no frequency of the image's Fourier grid; each of them repeats
  the nearest lower ring (the lowest non-empty one, for the first). A
  Gaussian blur of sigma ``s`` multiplies the power at frequency ``f`` by
  ``exp(-4 pi^2 s^2 f^2)``, so blur bends this profile down by a parabola in
  ``f``. Images must be at least 10 x 10 (the widest blur's reflected border).

:func:`degradation_evidence` concatenates the three (167 values). The statistics
are features for a learned head, not estimates: texture, blur, noise and JPEG
all change each of them.
"""

from __future__ import annotations

import math

import torch
from kornia.filters import gaussian_blur2d

from degkit.models.jpeg_grid import GRID_QUALITIES, jpeg_grid_scores, luma

__all__ = [
    "EVIDENCE_FEATURES",
    "NOISE_FEATURES",
    "SHARPNESS_FEATURES",
    "degradation_evidence",
    "noise_statistics",
    "sharpness_statistics",
]

PERCENTILES = (0.10, 0.25, 0.50, 0.75)
BRIGHTNESS_BANDS = ((0.0, 64.0), (64.0, 128.0), (128.0, 192.0), (192.0, 256.0))
NOISE_FEATURES = 3 * 4 * len(PERCENTILES) + len(BRIGHTNESS_BANDS) + 3
"""Length of :func:`noise_statistics`' output."""
BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
"""The Gaussian blurs whose successive differences are the detail bands (pixels)."""
BAND_PERCENTILES = (0.50, 0.90, 0.99)
BAND_BORDER = 3
SPECTRUM_RINGS = 16
MIN_SIZE = math.ceil(3 * max(BLUR_SIGMAS)) + 1
"""The smallest side the widest blur's reflected border fits in."""
SHARPNESS_FEATURES = len(BLUR_SIGMAS) * len(BAND_PERCENTILES) + SPECTRUM_RINGS
"""Length of :func:`sharpness_statistics`' output."""
EVIDENCE_FEATURES = len(GRID_QUALITIES) + NOISE_FEATURES + SHARPNESS_FEATURES
"""Length of :func:`degradation_evidence`' output."""


def _check_images(images: torch.Tensor, min_size: int, family: str) -> None:
    """Refuse anything but ``N x 3 x H x W`` with both sides at least ``min_size``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got {tuple(images.shape)}")
    if min(images.shape[-2:]) < min_size:
        raise ValueError(
            f"images must be at least {min_size} x {min_size} for the {family} statistics, "
            f"got {tuple(images.shape[-2:])}"
        )


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)


def noise_statistics(images: torch.Tensor) -> torch.Tensor:
    """``N x 55`` detail statistics of ``images`` (see the module doc).

    Raises:
        ValueError: not ``N x 3 x H x W``, or smaller than 3 x 3.
    """
    _check_images(images, 3, "noise")
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


def _detail_bands(y: torch.Tensor) -> torch.Tensor:
    """``N x 15``: percentiles of the band-pass detail between successive blurs of ``y``."""
    q = torch.tensor(BAND_PERCENTILES, device=y.device)
    finer, features = y, []
    for sigma in BLUR_SIGMAS:
        size = 2 * math.ceil(3 * sigma) + 1
        coarser = gaussian_blur2d(y, (size, size), (sigma, sigma), border_type="reflect")
        band = (finer - coarser)[..., BAND_BORDER:-BAND_BORDER, BAND_BORDER:-BAND_BORDER]
        features.append(torch.quantile(band.abs().flatten(1), q, dim=1).T)
        finer = coarser
    return torch.log1p(torch.cat(features, dim=1))


def _radial_spectrum(y: torch.Tensor) -> torch.Tensor:
    """``N x 16``: log power of the Hann-windowed ``y`` in rings, relative to the first ring."""
    height, width = y.shape[-2:]
    window = torch.outer(
        torch.hann_window(height, periodic=False, device=y.device),
        torch.hann_window(width, periodic=False, device=y.device),
    )
    centred = y[:, 0] - y[:, 0].mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(centred * window).abs().square()
    radius = torch.hypot(
        torch.fft.fftfreq(height, device=y.device)[:, None],
        torch.fft.fftfreq(width, device=y.device)[None],
    )
    ring = (radius / 0.5 * SPECTRUM_RINGS).long().clamp(max=SPECTRUM_RINGS - 1)
    member = torch.nn.functional.one_hot(ring, SPECTRUM_RINGS).float()
    member[0, 0] = 0  # the mean (zero frequency) is no detail
    counts = member.sum(dim=(0, 1))
    profile = torch.einsum("nhw,hwr->nr", power, member) / counts.clamp(min=1)
    # an empty ring (sides under 32 pixels) repeats the nearest lower non-empty one
    filled = counts > 0
    nearest = torch.where(filled, torch.arange(SPECTRUM_RINGS, device=y.device), -1).cummax(0)
    profile = profile[:, nearest.values.clamp(min=int(filled.nonzero()[0]))]
    log_power = torch.log(profile + 1e-3)
    return log_power - log_power[:, :1]


def sharpness_statistics(images: torch.Tensor) -> torch.Tensor:
    """``N x 31`` fine-to-coarse detail statistics of ``images``' luma (see the module doc).

    Raises:
        ValueError: not ``N x 3 x H x W``, or smaller than 10 x 10.
    """
    _check_images(images, MIN_SIZE, "sharpness")
    y = luma(images.float() * 255)[:, None]
    return torch.cat([_detail_bands(y), _radial_spectrum(y)], dim=1)


@torch.no_grad()
def degradation_evidence(images: torch.Tensor) -> torch.Tensor:
    """``N x 167``: the JPEG grid scores, the noise statistics, then the sharpness
    statistics (see the module doc)."""
    return torch.cat(
        [jpeg_grid_scores(images), noise_statistics(images), sharpness_statistics(images)], dim=1
    )

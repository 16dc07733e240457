"""Analytic blur kernels, built for a whole batch of samples at once.

Every builder takes one odd kernel ``size`` and per-sample parameters (tensors
with one row per sample, or plain numbers shared by all) and returns float32
``N x size x size`` kernels that sum to 1 (``gaussian_kernels_1d``: ``N x
size``). Values are computed in float64 and cast once at the end, so a kernel
does not depend on which other samples were built beside it.

Coordinates: a tap at column offset ``x`` and row offset ``y`` from the centre
(rows grow downwards). Gaussian-like kernels use Real-ESRGAN's covariance
``Sigma = R diag(sigma_x^2, sigma_y^2) R^T`` with ``R`` the rotation by
``theta`` (radians) acting on ``(x, y)``, and ``q = d^T Sigma^-1 d``:

* Gaussian ``exp(-q / 2)``; generalized Gaussian ``exp(-q^beta / 2)``;
  plateau ``1 / (1 + q^beta)``. A sigma of 0 makes ``q`` infinite off its
  axis, so every family collapses exactly to a delta (a line if only one
  sigma is 0), without NaNs.
* circular low-pass (sinc) with cutoff ``omega_c`` (radians per pixel, in
  ``(0, pi]``): ``omega_c J1(omega_c r) / (2 pi r)``, centre
  ``omega_c^2 / (4 pi)``; it rings (negative taps).
* motion: a line segment of ``length`` pixels through the centre at ``angle``
  degrees counter-clockwise from the +x axis as seen on screen, anti-aliased
  by integrating a bilinear (tent) footprint along it (midpoint rule, 1024
  points: relative error about 1e-4); length 0 is a delta.
* defocus: a disk of ``radius`` pixels, each tap weighted by the area of its
  pixel the disk covers; radius 0 is a delta.

The ``*_size`` helpers give the smallest odd size that holds a kernel's
support. Builders crop to the requested size and renormalise.

Kernels are built on the device of the parameter tensors. The Gaussian family
and sinc builders take optional per-sample odd ``sizes``: each sample's taps
outside its own size are zeroed before normalisation, so kernels of many sizes
come out of one computation at a common (larger) ``size``, each centred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "auto_gaussian_size",
    "motion_size",
    "disk_size",
    "gaussian_kernels_1d",
    "gaussian_kernels",
    "shifted_gaussian_kernels",
    "generalized_gaussian_kernels",
    "plateau_kernels",
    "sinc_kernels",
    "motion_kernels",
    "disk_kernels",
]

Values = torch.Tensor | float | Sequence[float]

MIN_SIGMA = 1e-12  # sigmas below this count as 0
AXIS_TOLERANCE = 1e-9  # |offset| below which a tap lies on a zero-sigma axis (rotation rounding)
MIN_CUTOFF = 1e-6  # sinc cutoffs are clamped up to this (0 tends to a box)
MAX_AUTO_SIZE = 21
MOTION_POINTS = 1024  # quadrature points along a motion segment (fixed: batch-independent)
DISK_SUBROWS = 16  # sub-rows per pixel row when integrating disk coverage


# -- sizes ------------------------------------------------------------------
def auto_gaussian_size(sigma: torch.Tensor, max_size: int = MAX_AUTO_SIZE) -> torch.Tensor:
    """``2 ceil(3 sigma) + 1`` clipped to ``[1, max_size]`` (the DePLSR rule), int64."""
    half = torch.ceil(torch.round(3 * sigma.double(), decimals=9))
    return (2 * half + 1).clamp(1, max_size).long()


def motion_size(length: torch.Tensor) -> torch.Tensor:
    """Smallest odd size holding an anti-aliased segment of ``length`` pixels, int64."""
    return (2 * torch.ceil(torch.round(length.double() / 2, decimals=9)) + 1).long()


def disk_size(radius: torch.Tensor) -> torch.Tensor:
    """Smallest odd size holding an anti-aliased disk of ``radius`` pixels, int64."""
    return (2 * torch.ceil(torch.round(radius.double() + 0.5, decimals=9)) - 1).long()


# -- helpers ------------------------------------------------------------------
def _check_size(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size!r}")
    return int(size)


def _batch(*values: Values) -> list[torch.Tensor]:
    """Per-sample float64 columns ``N x 1 x 1`` broadcast to a common ``N``, on the
    device of the first tensor among ``values``."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), None)
    tensors = [
        torch.as_tensor(v, dtype=torch.float64).to(device, non_blocking=True).reshape(-1)
        for v in values
    ]
    return [t.view(-1, 1, 1) for t in torch.broadcast_tensors(*tensors)]


def _offsets(size: int, device: torch.device | None = None) -> torch.Tensor:
    half = size // 2
    return torch.arange(-half, half + 1, dtype=torch.float64, device=device)


def _grid(size: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Column (x) and row (y) offsets of the taps, ``1 x size x size``."""
    offsets = _offsets(size, device)
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    return xx.unsqueeze(0), yy.unsqueeze(0)


def _own_size(taps: torch.Tensor, sizes: Values | None, fill: float = 0.0) -> torch.Tensor:
    """``N x K`` or ``N x K x K`` taps set to ``fill`` outside each sample's odd ``sizes``."""
    if sizes is None:
        return taps
    half = torch.as_tensor(sizes).to(taps.device, non_blocking=True)
    half = half.reshape(-1, *[1] * (taps.ndim - 1)) // 2
    near = _offsets(taps.shape[-1], taps.device).abs()
    inside = near.view(1, -1) <= half
    if taps.ndim == 3:
        inside = (near.view(1, -1, 1) <= half) & (near.view(1, 1, -1) <= half)
    return torch.where(inside, taps, fill)


def _normalize(kernels: torch.Tensor) -> torch.Tensor:
    return (kernels / kernels.sum(dim=(-2, -1), keepdim=True)).float()


def _quadratic_form(size: int, sigma_x: Values, sigma_y: Values, theta: Values) -> torch.Tensor:
    """``q = d^T Sigma^-1 d`` on the grid, ``N x size x size``, in the rotated frame."""
    sx, sy, th = _batch(sigma_x, sigma_y, theta)
    xx, yy = _grid(_check_size(size), sx.device)
    cos, sin = torch.cos(th), torch.sin(th)
    u = _scaled(cos * xx + sin * yy, sx)
    v = _scaled(cos * yy - sin * xx, sy)
    return u * u + v * v


def _scaled(coord: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``coord / sigma``; a zero sigma gives infinity off its axis (0 on it, within rounding)."""
    scaled = coord / sigma.clamp_min(MIN_SIGMA)
    off_axis = (sigma < MIN_SIGMA) & (coord.abs() > AXIS_TOLERANCE)
    return torch.where(off_axis, math.inf, scaled)


# -- Gaussian family ----------------------------------------------------------
def gaussian_kernels_1d(size: int, sigma: Values, sizes: Values | None = None) -> torch.Tensor:
    """1-D Gaussians ``exp(-x^2 / (2 sigma^2))``, ``N x size``."""
    (s,) = _batch(sigma)
    x = _offsets(_check_size(size), s.device).view(1, -1)
    k = _own_size(torch.exp(-0.5 * (x / s.view(-1, 1).clamp_min(MIN_SIGMA)) ** 2), sizes)
    return (k / k.sum(dim=-1, keepdim=True)).float()


def gaussian_kernels(
    size: int,
    sigma_x: Values,
    sigma_y: Values | None = None,
    theta: Values = 0.0,
    sizes: Values | None = None,
) -> torch.Tensor:
    """(Anisotropic, rotated) Gaussians; ``sigma_y`` defaults to ``sigma_x`` (isotropic)."""
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalize(_own_size(torch.exp(-0.5 * q), sizes))


def shifted_gaussian_kernels(
    size: int, sigma: Values, shift: Values, sizes: Values | None = None
) -> torch.Tensor:
    """Isotropic Gaussians centred ``shift`` pixels right of and below the centre tap.

    Computed relative to each kernel's largest tap, so a tiny sigma with a
    fractional shift still gives a finite kernel (its mass on the nearest taps).
    """
    s, d = _batch(sigma, shift)
    xx, yy = _grid(_check_size(size), s.device)
    q = ((xx - d) ** 2 + (yy - d) ** 2) / s.clamp_min(MIN_SIGMA) ** 2
    q = _own_size(q, sizes, math.inf)
    q = q - q.amin(dim=(-2, -1), keepdim=True)
    return _normalize(torch.exp(-0.5 * q))


def generalized_gaussian_kernels(
    size: int,
    sigma_x: Values,
    sigma_y: Values,
    theta: Values,
    beta: Values,
    sizes: Values | None = None,
) -> torch.Tensor:
    """Generalized Gaussians ``exp(-0.5 q^beta)`` (``beta`` 1 is the Gaussian)."""
    (b,) = _batch(beta)
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalize(_own_size(torch.exp(-0.5 * q**b), sizes))


def plateau_kernels(
    size: int,
    sigma_x: Values,
    sigma_y: Values,
    theta: Values,
    beta: Values,
    sizes: Values | None = None,
) -> torch.Tensor:
    """Plateau kernels ``1 / (1 + q^beta)``: flat top, heavy tails."""
    (b,) = _batch(beta)
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalize(_own_size(1.0 / (1.0 + q**b), sizes))


# -- ringing ------------------------------------------------------------------
def sinc_kernels(size: int, cutoff: Values, sizes: Values | None = None) -> torch.Tensor:
    """Circular low-pass (jinc) kernels with cutoff ``omega_c`` in radians per pixel."""
    (wc,) = _batch(cutoff)
    wc = wc.clamp_min(MIN_CUTOFF)
    xx, yy = _grid(_check_size(size), wc.device)
    r = torch.sqrt(xx * xx + yy * yy)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    taps = wc * torch.special.bessel_j1(wc * safe_r) / (2 * math.pi * safe_r)
    return _normalize(_own_size(torch.where(r > 0, taps, wc * wc / (4 * math.pi)), sizes))


# -- motion and defocus -------------------------------------------------------
def motion_kernels(size: int, length: Values, angle: Values) -> torch.Tensor:
    """Anti-aliased line segments of ``length`` pixels at ``angle`` degrees."""
    ln, ang = _batch(length, angle)
    offsets = _offsets(_check_size(size)).view(1, 1, -1)
    t = (torch.arange(MOTION_POINTS, dtype=torch.float64) + 0.5) / MOTION_POINTS - 0.5
    along = t.view(1, -1, 1) * ln.view(-1, 1, 1)
    rad = torch.deg2rad(ang.view(-1, 1, 1))
    px, py = along * torch.cos(rad), -along * torch.sin(rad)
    tent_x = (1 - (px - offsets).abs()).clamp_min(0)  # N x points x size
    tent_y = (1 - (py - offsets).abs()).clamp_min(0)
    return _normalize(torch.einsum("npi,npj->nij", tent_y, tent_x))


def disk_kernels(size: int, radius: Values) -> torch.Tensor:
    """Disks of ``radius`` pixels weighted by the area of each pixel they cover (defocus).

    Coverage is exact along one axis and sampled on ``DISK_SUBROWS`` sub-lines
    per pixel along the other, averaged over both orientations (so the kernel
    keeps the disk's symmetries); a disk too small to reach a sub-line is a delta.
    """
    (rad,) = _batch(radius)
    offsets = _offsets(_check_size(size))
    sub_rows = (torch.arange(DISK_SUBROWS, dtype=torch.float64) + 0.5) / DISK_SUBROWS - 0.5
    y = (offsets.view(-1, 1) + sub_rows).view(1, size, DISK_SUBROWS, 1)
    half_chord = (rad.view(-1, 1, 1, 1) ** 2 - y * y).clamp_min(0).sqrt()
    left, right = offsets - 0.5, offsets + 0.5
    overlap = (torch.minimum(right, half_chord) - torch.maximum(left, -half_chord)).clamp_min(0)
    coverage = overlap.mean(dim=2)  # N x size x size, exact along rows only
    coverage = (coverage + coverage.transpose(-2, -1)) / 2  # as exact along columns
    total = coverage.sum(dim=(-2, -1), keepdim=True)
    delta = (offsets.view(-1, 1) == 0) & (offsets.view(1, -1) == 0)
    return torch.where(total > 0, coverage / total.clamp_min(1e-300), delta.double()).float()

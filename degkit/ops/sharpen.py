"""Unsharp-mask sharpening (``usm``), the sharpening Real-ESRGAN applies to its GT.

With ``G`` a Gaussian blur of odd size ``k`` (``radius`` rounded up to odd,
so the default 50 gives 51) and OpenCV's sigma for ``sigma = 0``,
``0.3 ((k - 1) / 2 - 1) + 0.8`` (8.0 for 51)::

    residual  = x - G(x)
    mask      = |residual| * 255 > threshold        (per channel, 0 or 1)
    soft_mask = G(mask)
    out       = soft_mask * clamp(x + weight * residual, 0, 1) + (1 - soft_mask) * x

``weight`` 0 (or ``radius`` 1) is the identity. Borders are OpenCV's
``BORDER_REFLECT_101`` (see :mod:`degkit.ops.filtering`). For small sizes
OpenCV switches to fixed tables (up to 7 in OpenCV 4, 9 in OpenCV 5); here the
sigma rule holds for every size.
"""

from __future__ import annotations

import dataclasses

import torch

from degkit.ops.base import Op, OpError, Params, check_range, map_groups, register
from degkit.ops.filtering import filter_separable_per_sample
from degkit.ops.kernels import gaussian_kernels_1d
from degkit.rng import BatchStreams

__all__ = ["UnsharpMask", "usm_kernel_size", "opencv_sigma"]

MAX_RADIUS = 255


def usm_kernel_size(radius: int) -> int:
    """Odd kernel size of a USM radius: the radius itself, or one more if it is even."""
    return 2 * (int(radius) // 2) + 1


def opencv_sigma(size: int) -> float:
    """The Gaussian sigma OpenCV uses for kernel ``size`` when asked for sigma 0."""
    return 0.3 * ((size - 1) * 0.5 - 1) + 0.8


@register
@dataclasses.dataclass
class UnsharpMask(Op):
    """Unsharp masking with a soft threshold mask (Real-ESRGAN's ``usm_sharp``)."""

    name = "usm"
    family = "sharpen"
    param_limits = {
        "weight": (0.0, 10.0),
        "threshold": (0.0, 255.0),
        "radius": (1, MAX_RADIUS),
    }

    weight: tuple[float, float] | float = 0.5
    threshold: tuple[float, float] | float = 10.0
    radius: tuple[int, int] | int = 50

    def __post_init__(self) -> None:
        self.weight = check_range("usm.weight", self.weight, 0.0, 10.0)
        self.threshold = check_range("usm.threshold", self.threshold, 0.0, 255.0)
        lo, hi = check_range("usm.radius", self.radius, 1, MAX_RADIUS)
        if lo != int(lo) or hi != int(hi):
            raise OpError(f"usm.radius must be integers (pixels), got [{lo:g}, {hi:g}]")
        self.radius = (int(lo), int(hi))

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "weight": rng.uniform(*self.weight),
            "threshold": rng.uniform(*self.threshold),
            "radius": rng.integers(*self.radius),
        }

    def check_params(self, params: Params, n: int) -> None:
        super().check_params(params, n)
        radius = params["radius"]
        if radius.is_floating_point() and (radius != radius.round()).any():
            raise OpError(
                f"{self.name}: parameter 'radius' must be whole pixels, got {radius.tolist()}"
            )

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        sizes = torch.tensor([usm_kernel_size(r) for r in params["radius"].tolist()])

        def run(xs: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
            taps = gaussian_kernels_1d(size, opencv_sigma(size)).expand(xs.shape[0], -1)
            weight = params["weight"][positions].to(xs).view(-1, 1, 1, 1)
            threshold = params["threshold"][positions].to(xs).view(-1, 1, 1, 1)
            residual = xs - filter_separable_per_sample(xs, taps, taps)
            mask = (residual.abs() > threshold / 255).to(xs.dtype)
            soft_mask = filter_separable_per_sample(mask, taps, taps)
            sharp = torch.addcmul(xs, residual, weight).clamp_(0.0, 1.0)
            return torch.lerp(xs, sharp, soft_mask).clamp_(0.0, 1.0)

        return map_groups(x, sizes, run)

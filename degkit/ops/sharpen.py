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

On the CPU without autograd each sample runs through OpenCV and NumPy one
channel at a time, which keeps the intermediates in cache (about twice as fast
as whole-batch tensors); elsewhere the same formula runs on batched tensors,
and a ragged batch on a canvas runs it once for the whole batch. The paths
agree up to float rounding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import torch

from degkit.ops.base import Op, OpError, Params, check_range, map_groups, register
from degkit.ops.canvas import Canvas
from degkit.ops.filtering import (
    each_plane,
    filter_separable_canvas,
    filter_separable_per_sample,
    kernels_by_size,
    map_samples_cpu,
    use_opencv,
)
from degkit.ops.kernels import gaussian_kernels_1d
from degkit.ops.labels import FlatColumn
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
    version = 1
    family = "sharpen"
    caption_types = ()
    flat_columns = (FlatColumn("usm", "bool", "the HR was unsharp-masked first", lambda rec: True),)
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
        # Key 0: the OpenCV path; else the tensor path, grouped by kernel size.
        keys = torch.tensor([0 if use_opencv(x, k) else k for k in sizes.tolist()])

        def run(xs: torch.Tensor, positions: torch.Tensor, key: int) -> torch.Tensor:
            weight = params["weight"][positions]
            threshold = params["threshold"][positions]
            if key == 0:
                return _usm_opencv(xs, sizes[positions].tolist(), weight, threshold)
            taps = gaussian_kernels_1d(key, opencv_sigma(key)).expand(xs.shape[0], -1)
            return _usm(xs, lambda t: filter_separable_per_sample(t, taps, taps), weight, threshold)

        return map_groups(x, keys, run)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        sizes = torch.tensor([usm_kernel_size(r) for r in params["radius"].tolist()])
        taps = kernels_by_size(
            sizes, lambda k, i: gaussian_kernels_1d(k, opencv_sigma(k)).expand(len(i), -1)
        )
        out = _usm(
            x.data,
            lambda t: filter_separable_canvas(x.with_data(t), taps, taps).data,
            params["weight"],
            params["threshold"],
        )
        return x.with_data(out)


def _usm(
    x: torch.Tensor,
    blur: Callable[[torch.Tensor], torch.Tensor],
    weights: torch.Tensor,
    thresholds: torch.Tensor,
) -> torch.Tensor:
    """The USM formula on a batch, with ``blur`` each sample's Gaussian filter."""
    weight = weights.to(device=x.device, dtype=x.dtype, non_blocking=True).view(-1, 1, 1, 1)
    threshold = thresholds.to(device=x.device, dtype=x.dtype, non_blocking=True).view(-1, 1, 1, 1)
    residual = x - blur(x)
    mask = (residual.abs() > threshold / 255).to(x.dtype)
    soft_mask = blur(mask)
    sharp = torch.addcmul(x, residual, weight).clamp_(0.0, 1.0)
    return torch.lerp(x, sharp, soft_mask).clamp_(0.0, 1.0)


def _usm_opencv(
    x: torch.Tensor, sizes: list[int], weights: torch.Tensor, thresholds: torch.Tensor
) -> torch.Tensor:
    """The USM formula per sample and channel with OpenCV and NumPy (CPU float32)."""
    weight_list, threshold_list = weights.tolist(), thresholds.tolist()
    taps = {k: gaussian_kernels_1d(k, opencv_sigma(k))[0].numpy() for k in set(sizes)}

    def sharpen_plane(i: int, plane: np.ndarray, dst: np.ndarray) -> None:
        k = taps[sizes[i]]
        weight = np.float32(weight_list[i])
        threshold = np.float32(threshold_list[i]) / np.float32(255)
        residual = plane - cv2.sepFilter2D(plane, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
        # A 0/1 uint8 mask filters to the same bits as a float one, with less memory traffic.
        mask = (np.abs(residual) > threshold).view(np.uint8)
        soft = cv2.sepFilter2D(mask, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT_101)
        sharp = np.clip(plane + residual * weight, 0.0, 1.0)
        np.clip(plane + soft * (sharp - plane), 0.0, 1.0, out=dst)

    return map_samples_cpu(x, each_plane(sharpen_plane))

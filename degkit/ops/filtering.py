"""Per-sample convolution: every image in a batch filtered by its own kernel.

Kernels of different sizes are centred in a common odd size ``K`` (zero taps
outside their own support). With reflect padding of ``K // 2`` the extra zero
taps never reach a pixel the sample's own kernel would not, so the result
equals filtering that sample alone with its own kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["center_pad_kernels", "filter2d_per_sample", "filter_separable_per_sample"]


def center_pad_kernels(kernels: list[torch.Tensor]) -> torch.Tensor:
    """Stack odd square kernels of different sizes into ``N x K x K`` (zero padded)."""
    size = max(k.shape[-1] for k in kernels)
    out = kernels[0].new_zeros(len(kernels), size, size)
    for i, k in enumerate(kernels):
        off = (size - k.shape[-1]) // 2
        out[i, off : off + k.shape[-2], off : off + k.shape[-1]] = k
    return out


def _pad(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect-pad, falling back to replicate where the image is too small to reflect."""
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (pw, pw, ph, ph), mode=mode)


def filter2d_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate sample ``i`` of ``x`` (N x C x H x W) with ``kernels[i]`` (K x K), all channels."""
    n, c, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    weight = kernels.to(x).repeat_interleave(c, dim=0).unsqueeze(1)
    padded = _pad(x, kh // 2, kw // 2).reshape(1, n * c, h + kh - 1, w + kw - 1)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def filter_separable_per_sample(
    x: torch.Tensor, kernel_rows: torch.Tensor, kernel_cols: torch.Tensor
) -> torch.Tensor:
    """Filter sample ``i`` by the outer product ``kernel_cols[i] (vertical) x kernel_rows[i]``.

    Both kernels are ``N x K`` (odd ``K``); this costs ``2K`` instead of ``K^2``
    multiply-adds per pixel.
    """
    n, c, h, w = x.shape
    k = kernel_rows.shape[-1]
    rows = kernel_rows.to(x).repeat_interleave(c, dim=0).view(n * c, 1, 1, k)
    cols = kernel_cols.to(x).repeat_interleave(c, dim=0).view(n * c, 1, k, 1)
    padded = _pad(x, k // 2, k // 2).reshape(1, n * c, h + k - 1, w + k - 1)
    y = F.conv2d(padded, rows, groups=n * c)
    y = F.conv2d(y, cols, groups=n * c)
    return y.reshape(n, c, h, w)

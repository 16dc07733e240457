"""Per-sample convolution: every image in a batch filtered by its own kernel.

Borders are reflected without repeating the edge pixel (``reflect`` in torch,
``BORDER_REFLECT_101`` in OpenCV). Kernels of different sizes are centred in a
common odd size ``K`` (zero taps outside their own support); with reflect
padding of ``K // 2`` the extra zero taps never reach a pixel the sample's own
kernel would not, so the result equals filtering that sample alone.

On the CPU, when no gradient is needed, each image plane goes through OpenCV
(``sepFilter2D`` / ``filter2D``, SIMD and DFT-based for large kernels) with its
own kernel trimmed to its support, which is several times faster than a grouped
convolution; elsewhere (CUDA, autograd) a grouped ``conv2d`` runs. Both give the
same result up to float rounding (about 1e-6).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
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


def _use_opencv(x: torch.Tensor, k: int) -> bool:
    """OpenCV path: CPU float32, no autograd, image large enough to reflect."""
    needs_grad = torch.is_grad_enabled() and x.requires_grad
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not needs_grad
        and min(x.shape[-2:]) > k // 2
    )


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Drop symmetric all-zero borders of a centred odd kernel (1-D or 2-D)."""
    centre = kernel.shape[-1] // 2
    support = np.nonzero(np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0))[0]
    if kernel.ndim == 2:
        rows = np.nonzero(np.abs(kernel).max(axis=1))[0]
        support = np.concatenate([support, rows])
    half = int(np.abs(support - centre).max()) if support.size else 0
    lo, hi = centre - half, centre + half + 1
    return np.ascontiguousarray(kernel[..., lo:hi] if kernel.ndim == 1 else kernel[lo:hi, lo:hi])


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _thread_pool() -> ThreadPoolExecutor:
    """A pool of torch's thread count (OpenCV releases the GIL: planes run in parallel).

    Keyed by process id too: a forked worker (DataLoader) must not reuse its
    parent's pool, whose threads do not exist in the child.
    """
    key = (os.getpid(), torch.get_num_threads())
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(max_workers=key[1])
    return _POOLS[key]


def _opencv_per_plane(
    x: torch.Tensor, filter_plane: Callable[[int, np.ndarray, np.ndarray], object]
) -> torch.Tensor:
    """Run ``filter_plane(i, src, dst)`` on every image plane of a contiguous CPU batch."""
    x = x.contiguous()
    out = torch.empty_like(x)
    src, dst = x.numpy(), out.numpy()

    def run_sample(i: int) -> None:
        for ch in range(x.shape[1]):
            filter_plane(i, src[i, ch], dst[i, ch])

    if x.shape[0] > 1 and torch.get_num_threads() > 1:
        list(_thread_pool().map(run_sample, range(x.shape[0])))
    else:
        for i in range(x.shape[0]):
            run_sample(i)
    return out


def _grouped_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise ``conv2d`` of ``1 x G x H x W`` with ``G`` filters.

    A single group takes another convolution routine in torch with different
    rounding; a zero dummy group keeps every batch on the same routine, so a
    sample alone gives the same bits as in a batch.
    """
    groups = x.shape[1]
    if groups == 1:
        x = torch.cat([x, x], dim=1)
        weight = torch.cat([weight, weight], dim=0)
        return F.conv2d(x, weight, groups=2)[:, :1]
    return F.conv2d(x, weight, groups=groups)


def filter2d_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate sample ``i`` of ``x`` (N x C x H x W) with ``kernels[i]`` (K x K), all channels."""
    n, c, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    if _use_opencv(x, max(kh, kw)):
        taps = [_trim(k) for k in kernels.detach().float().cpu().numpy()]
        return _opencv_per_plane(
            x,
            lambda i, s, d: cv2.filter2D(s, -1, taps[i], dst=d, borderType=cv2.BORDER_REFLECT_101),
        )
    weight = kernels.to(x).repeat_interleave(c, dim=0).unsqueeze(1)
    padded = _pad(x, kh // 2, kw // 2).reshape(1, n * c, h + kh - 1, w + kw - 1)
    return _grouped_conv(padded, weight).reshape(n, c, h, w)


def filter_separable_per_sample(
    x: torch.Tensor, kernel_rows: torch.Tensor, kernel_cols: torch.Tensor
) -> torch.Tensor:
    """Filter sample ``i`` by the outer product ``kernel_cols[i] (vertical) x kernel_rows[i]``.

    Both kernels are ``N x K`` (odd ``K``); this costs ``2K`` instead of ``K^2``
    multiply-adds per pixel.
    """
    n, c, h, w = x.shape
    k = kernel_rows.shape[-1]
    if _use_opencv(x, k):
        taps = [
            (_trim(r), _trim(col))
            for r, col in zip(
                kernel_rows.detach().float().cpu().numpy(),
                kernel_cols.detach().float().cpu().numpy(),
                strict=True,
            )
        ]
        return _opencv_per_plane(
            x,
            lambda i, s, d: cv2.sepFilter2D(
                s, -1, taps[i][0], taps[i][1], dst=d, borderType=cv2.BORDER_REFLECT_101
            ),
        )
    rows = kernel_rows.to(x).repeat_interleave(c, dim=0).view(n * c, 1, 1, k)
    cols = kernel_cols.to(x).repeat_interleave(c, dim=0).view(n * c, 1, k, 1)
    padded = _pad(x, k // 2, k // 2).reshape(1, n * c, h + k - 1, w + k - 1)
    y = _grouped_conv(_grouped_conv(padded, rows), cols)
    return y.reshape(n, c, h, w)

"""Per-sample convolution: every image in a batch filtered by its own kernel.

Borders are reflected without repeating the edge pixel (``reflect`` in torch,
``BORDER_REFLECT_101`` in OpenCV, ``mirror`` in scipy). Kernels of different
sizes travel centred in a common odd size (zero taps outside their support:
:func:`kernels_by_size` builds each size on its own, :func:`kernels_at_fixed_sizes`
builds all at sizes that depend on no other sample, on any device), so a
sample gives the same result alone or in any batch.

On the CPU, when no gradient is needed, each image plane goes through OpenCV
(``filter2D`` / ``sepFilter2D``) with its own trimmed kernel, samples spread
over a thread pool (OpenCV releases the GIL). Elsewhere (CUDA, autograd)
the batch runs as a canvas of equal sizes (below), in one depthwise ``conv2d``.
The paths agree up to float rounding (about 1e-6); OpenCV is used on the
CPU because it avoids a convolution padded to the largest kernel
(``benchmarks/ops_throughput.py`` measures the ops on your machine). A 2-D
kernel of more than 129 taps (OpenCV's direct limit) is correlated in strips of rows or through real
FFTs, whichever a cost model (:data:`FFT_COST_FACTOR`) finds cheaper for the
sample. Ops that mix kinds of filter in one batch (separable and 2-D blur)
build one :data:`SampleFilter` per sample and run the batch in one pass
(:func:`run_sample_filters`).

A ragged batch on a :class:`~degkit.ops.canvas.Canvas` is filtered in one
depthwise ``conv2d`` (:func:`filter2d_canvas`, :func:`filter_separable_canvas`):
each sample's border is gathered by index, as the sample alone would be padded
(reflected, or its edge repeated where its kernel's support reaches past the
image: a decision taken on the kernels' device, so nothing is read back), and
every kernel keeps the batch's common size. On the CPU (oneDNN's depthwise
kernels) an output pixel's sum does not depend on the image size, and zero taps
add exact zeros in the same order, so a sample gets the same bits on any
canvas, beside any neighbours.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np
import scipy.fft as sfft
import torch
import torch.nn.functional as F

from degkit.ops.canvas import Canvas, clamped_index, gather_columns, gather_rows, reflect_index
from degkit.ops.threads import map_in_threads

__all__ = [
    "each_plane",
    "map_samples_cpu",
    "use_opencv",
    "kernels_by_size",
    "BUILD_SIZES",
    "kernels_at_fixed_sizes",
    "filter2d_per_sample",
    "filter_separable_per_sample",
    "filter2d_canvas",
    "filter_separable_canvas",
    "SampleFilter",
    "filter2d_opencv",
    "separable_opencv",
    "run_sample_filters",
]


def kernels_by_size(
    sizes: torch.Tensor, build: Callable[[int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Build each sample's kernel at its own odd size, centred in the largest size.

    ``build(size, positions)`` returns the kernels (``len(positions) x size``
    for 1-D, ``... x size x size`` for 2-D) of the samples at ``positions``.
    """
    sizes_list = [int(s) for s in sizes.tolist()]
    largest = max(sizes_list)
    if min(sizes_list) == largest:
        return build(largest, torch.arange(len(sizes_list)))
    out: torch.Tensor | None = None
    for size in sorted(set(sizes_list)):
        positions = torch.tensor([i for i, s in enumerate(sizes_list) if s == size])
        kernels = build(size, positions)
        if out is None:
            out = kernels.new_zeros((len(sizes_list), *[largest] * (kernels.ndim - 1)))
        off = (largest - size) // 2
        window = out[(slice(None), *[slice(off, off + size)] * (kernels.ndim - 1))]
        window.index_copy_(0, positions.to(out.device, non_blocking=True), kernels)
    assert out is not None
    return out


#: Sizes kernels are built at off the OpenCV path: each sample's at the smallest that
#: holds its own size (21: Real-ESRGAN's largest kernel, 25: BSRGAN's shifted Gaussian,
#: 101: the largest any op takes), so its bits depend on neither its batch nor the
#: op's configuration (a replayed record gives the same kernel).
BUILD_SIZES = (21, 25, 51, 101)


def kernels_at_fixed_sizes(
    sizes: torch.Tensor, build: Callable[[int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Kernels built at :data:`BUILD_SIZES` (a size past them at its own), cropped to
    ``max(sizes)``.

    ``sizes`` (host) are each sample's own odd size; ``build(size, positions)``
    must zero each sample's taps outside its own size (see
    :mod:`degkit.ops.kernels`), so it comes out centred.
    """
    ladder = torch.tensor(BUILD_SIZES, dtype=sizes.dtype)
    rung = torch.searchsorted(ladder, sizes).clamp(max=len(BUILD_SIZES) - 1)
    at = torch.maximum(ladder[rung], sizes)
    return _crop(kernels_by_size(at, build), int(sizes.max()))


def _flush_subnormal(kernels: torch.Tensor) -> torch.Tensor:
    """Kernels with taps below float32's smallest normal number set to zero.

    Such taps (a Gaussian of sigma 0.3 has one of 2e-39) change no output bit
    that matters, but subnormal arithmetic is about ten times slower on x86 CPUs.
    """
    return torch.where(kernels.abs() < torch.finfo(torch.float32).tiny, 0.0, kernels)


def _support(kernels: torch.Tensor) -> torch.Tensor:
    """Odd size of each kernel's non-zero support around its centre (``N x K`` or ``N x K x K``),
    on the kernels' device."""
    k = kernels.shape[-1]
    centre = k // 2
    taps = kernels.detach().abs()
    if taps.ndim == 3:
        taps = torch.maximum(taps.amax(dim=1), taps.amax(dim=2))
    distance = (torch.arange(k, device=taps.device) - centre).abs()
    half = torch.where(taps > 0, distance, 0).amax(dim=1)
    return 2 * half + 1


def _crop(kernels: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` taps (per axis) of ``N x K`` or ``N x K x K`` kernels."""
    off = (kernels.shape[-1] - size) // 2
    window = slice(off, off + size)
    return kernels[:, window] if kernels.ndim == 2 else kernels[:, window, window]


# -- OpenCV path (CPU, no autograd) ------------------------------------------------
def use_opencv(x: torch.Tensor, k: int) -> bool:
    """OpenCV path: CPU float32, no autograd, image large enough to reflect."""
    needs_grad = torch.is_grad_enabled() and x.requires_grad
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not needs_grad
        and min(x.shape[-2:]) > k // 2
    )


def map_samples_cpu(
    x: torch.Tensor,
    fill_sample: Callable[[int, np.ndarray, np.ndarray], object],
    out_size: tuple[int, int] | None = None,
    clamp: bool = False,
) -> torch.Tensor:
    """Run ``fill_sample(i, src, dst)`` on the ``C x H x W`` arrays of every sample of a CPU batch.

    ``dst`` is the sample's output (of ``out_size``, default the input size)
    that the call must fill, then clipped to ``[0, 1]`` if ``clamp`` (while it
    is still in cache); samples are spread over :func:`map_in_threads`.
    """
    x = x.contiguous()
    out = x.new_empty((*x.shape[:2], *(out_size or x.shape[-2:])))
    src, dst = x.numpy(), out.numpy()

    def run_sample(i: int) -> None:
        fill_sample(i, src[i], dst[i])
        if clamp:
            np.clip(dst[i], 0.0, 1.0, out=dst[i])

    map_in_threads(run_sample, range(x.shape[0]))
    return out


def each_plane(
    filter_plane: Callable[[int, np.ndarray, np.ndarray], object],
) -> Callable[[int, np.ndarray, np.ndarray], None]:
    """A :func:`map_samples_cpu` filler running ``filter_plane(i, src, dst)`` per channel."""

    def fill_sample(i: int, src: np.ndarray, dst: np.ndarray) -> None:
        for channel in range(src.shape[0]):
            filter_plane(i, src[channel], dst[channel])

    return fill_sample


def _trimmed(kernels: torch.Tensor) -> list[np.ndarray]:
    """Each kernel cropped to its own support (:func:`_support`), as contiguous float32 arrays."""
    taps = kernels.detach().to("cpu", torch.float32).numpy()
    centre = taps.shape[-1] // 2
    out = []
    for kernel, size in zip(taps, _support(kernels.detach().cpu()).tolist(), strict=True):
        window = (slice(centre - size // 2, centre + size // 2 + 1),) * kernel.ndim
        out.append(np.ascontiguousarray(kernel[window]))
    return out


# OpenCV's filter2D takes a DFT for float32 kernels of 130 taps or more, which on
# 256-pixel planes is 2-3x slower than direct correlation for kernels up to 21 x 21.
_OPENCV_DIRECT_TAPS = 129


def _filter2d_plane(src: np.ndarray, kernel: np.ndarray, dst: np.ndarray) -> None:
    """Correlate one float32 plane with ``kernel`` into ``dst`` (``BORDER_REFLECT_101``).

    A kernel too large for OpenCV's direct path is split into strips of rows,
    each correlated directly over the reflect-padded plane and summed: the
    padding makes every strip see the same border, so the sum is the full
    correlation up to float rounding.
    """
    k = kernel.shape[0]
    if kernel.size <= _OPENCV_DIRECT_TAPS:
        cv2.filter2D(src, -1, kernel, dst=dst, borderType=cv2.BORDER_REFLECT_101)
        return
    c = k // 2
    padded = cv2.copyMakeBorder(src, c, c, c, c, cv2.BORDER_REFLECT_101)
    height = max(1, _OPENCV_DIRECT_TAPS // k)
    h, w = src.shape
    for top in range(0, k, height):
        strip = kernel[top : top + height]
        anchor_y = strip.shape[0] // 2
        out = cv2.filter2D(padded, -1, strip, anchor=(c, anchor_y))
        window = out[top + anchor_y : top + anchor_y + h, c : c + w]
        if top == 0:
            np.copyto(dst, window)
        else:
            np.add(dst, window, out=dst)


# An FFT correlation of an L x L plane (forward and back) is taken to cost as much as
# FFT_COST_FACTOR * L^2 * log2(L^2) taps of direct correlation. The factor only picks
# the faster path; both give the same result up to float rounding.
FFT_COST_FACTOR = 10.0


def _fft_shape(h: int, w: int, k: int) -> tuple[int, int]:
    """FFT size for a plane reflect-padded by ``k // 2`` on every side (no wrap-around)."""
    c = k // 2
    return sfft.next_fast_len(h + 2 * c, real=True), sfft.next_fast_len(w + 2 * c, real=True)


def _fft_is_cheaper(h: int, w: int, k: int) -> bool:
    """Whether a ``k x k`` kernel is cheaper by FFT than directly on an ``h x w`` plane."""
    fh, fw = _fft_shape(h, w, k)
    return k * k * h * w > FFT_COST_FACTOR * fh * fw * math.log2(fh * fw)


def _filter2d_fft(src: np.ndarray, kernel: np.ndarray, dst: np.ndarray) -> None:
    """Correlate the ``C x H x W`` planes of one sample with ``kernel`` through real FFTs.

    The planes are reflect-padded by ``c = k // 2`` as OpenCV would, so the
    circular convolution with the flipped kernel, read at offset ``2c``, is the
    border-reflected correlation (float32 rounding, about 4e-7 at most).
    SciPy's FFT runs on the calling thread only (``workers=1``): samples are
    already spread over threads, and torch's faster MKL FFT would fan out into
    its own thread pool from every one of them.
    """
    k = kernel.shape[0]
    c = k // 2
    h, w = src.shape[-2:]
    shape = _fft_shape(h, w, k)
    padded = np.stack([cv2.copyMakeBorder(p, c, c, c, c, cv2.BORDER_REFLECT_101) for p in src])
    spectrum = sfft.rfft2(padded, s=shape, workers=1)
    spectrum *= sfft.rfft2(kernel[::-1, ::-1], s=shape, workers=1)
    result = sfft.irfft2(spectrum, s=shape, workers=1, overwrite_x=True)
    np.copyto(dst, result[:, 2 * c : 2 * c + h, 2 * c : 2 * c + w])


def _filter2d_sample(src: np.ndarray, dst: np.ndarray, kernel: np.ndarray) -> None:
    """Correlate one sample's planes with its kernel, by FFT or directly, whichever is cheaper."""
    if _fft_is_cheaper(*src.shape[-2:], kernel.shape[0]):
        _filter2d_fft(src, kernel, dst)
    else:
        for channel in range(src.shape[0]):
            _filter2d_plane(src[channel], kernel, dst[channel])


def _separable_sample(src: np.ndarray, dst: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """Filter one sample's planes by rows, then columns (``BORDER_REFLECT_101``)."""
    for channel in range(src.shape[0]):
        cv2.sepFilter2D(
            src[channel], -1, rows, cols, dst=dst[channel], borderType=cv2.BORDER_REFLECT_101
        )


# -- torch path (CUDA, autograd, canvases) -------------------------------------------
def _depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise ``conv2d`` of ``1 x G x H x W`` with ``G`` filters.

    A single group takes another convolution routine in torch with different
    rounding; a duplicate group keeps every batch on the same routine, so a
    sample alone gives the same bits as in a batch.
    """
    groups = x.shape[1]
    if groups == 1:
        return F.conv2d(torch.cat([x, x], 1), torch.cat([weight, weight]), groups=2)[:, :1]
    return F.conv2d(x, weight, groups=groups)


def _depthwise_weight(kernels: torch.Tensor, x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """The ``N C x 1 x kh x kw`` depthwise weight filtering every channel of sample ``i``
    of ``x`` by ``kernels[i]``; a copy from the host does not wait on the device."""
    n, c = x.shape[:2]
    taps = kernels.reshape(n, 1, kh * kw).expand(n, c, kh * kw).reshape(n * c, 1, kh, kw)
    return taps.to(device=x.device, dtype=x.dtype, non_blocking=True)


def _reflects(x: Canvas, row_support: torch.Tensor, col_support: torch.Tensor) -> torch.Tensor:
    """Per sample, on the data's device, whether it is reflected: its kernel's support
    (``row_support`` taps along a row, ``col_support`` along a column) reaches less
    than its width and height (else its edge pixels are repeated)."""
    sizes = x.device_sizes()
    device = x.data.device
    half_w = row_support.to(device, non_blocking=True) // 2
    half_h = col_support.to(device, non_blocking=True) // 2
    return (half_h < sizes[:, 0]) & (half_w < sizes[:, 1])


def _border_index(
    lengths: torch.Tensor, reflects: torch.Tensor, half: int, count: int
) -> torch.Tensor:
    """``N x (count + 2 half)`` source positions of a padded axis: reflected or clamped."""
    start, total = -half, count + 2 * half
    reflected = reflect_index(lengths, start, total)
    return torch.where(reflects.unsqueeze(1), reflected, clamped_index(lengths, start, total))


def _pad_canvas(x: Canvas, half_h: int, half_w: int, reflects: torch.Tensor) -> torch.Tensor:
    """``x.data`` padded by ``half_h`` rows and ``half_w`` columns on each side, each sample
    about its own border (reflected where ``reflects``, else its edge pixels repeated)."""
    sizes = x.device_sizes()
    hc, wc = x.data.shape[-2:]
    out = x.data
    if half_h:
        out = gather_rows(out, _border_index(sizes[:, 0], reflects, half_h, hc))
    if half_w:
        out = gather_columns(out, _border_index(sizes[:, 1], reflects, half_w, wc))
    return out


def _uniform(x: torch.Tensor) -> Canvas:
    """A batch of equal-sized images as a canvas they fill."""
    return Canvas(x, torch.tensor([list(x.shape[-2:])] * x.shape[0], dtype=torch.int64))


def filter2d_canvas(x: Canvas, kernels: torch.Tensor, clamp: bool = False) -> Canvas:
    """:func:`filter2d_per_sample` of a ragged batch, in one pass over its canvas.

    ``kernels`` (``N x K x K``, zero outside each support) may live on any
    device; none of their values is read back. The result keeps ``x``'s sizes.
    """
    kernels = _flush_subnormal(kernels)
    support = _support(kernels)
    k = kernels.shape[-1]
    padded = _pad_canvas(x, k // 2, k // 2, _reflects(x, support, support))
    n, c, h, w = x.data.shape
    weight = _depthwise_weight(kernels, x.data, k, k)
    out = _depthwise(padded.reshape(1, n * c, h + k - 1, w + k - 1), weight).reshape(n, c, h, w)
    return x.with_data(out.clamp_(0.0, 1.0) if clamp else out)


def filter_separable_canvas(
    x: Canvas, kernel_rows: torch.Tensor, kernel_cols: torch.Tensor, clamp: bool = False
) -> Canvas:
    """:func:`filter_separable_per_sample` of a ragged batch, in one pass over its canvas.

    ``kernel_rows`` and ``kernel_cols`` (``N x K``) may live on any device; none
    of their values is read back. The result keeps ``x``'s sizes.
    """
    kernel_rows, kernel_cols = _flush_subnormal(kernel_rows), _flush_subnormal(kernel_cols)
    reflects = _reflects(x, _support(kernel_rows), _support(kernel_cols))
    kr, kc = kernel_rows.shape[-1], kernel_cols.shape[-1]
    padded = _pad_canvas(x, kc // 2, kr // 2, reflects)
    n, c, h, w = x.data.shape
    row_w = _depthwise_weight(kernel_rows, x.data, 1, kr)
    col_w = _depthwise_weight(kernel_cols, x.data, kc, 1)
    padded = padded.reshape(1, n * c, h + kc - 1, w + kr - 1)
    out = _depthwise(_depthwise(padded, row_w), col_w).reshape(n, c, h, w)
    return x.with_data(out.clamp_(0.0, 1.0) if clamp else out)


# -- public ------------------------------------------------------------------------
#: Filters one sample: ``(src, dst)`` are its ``C x H x W`` float32 arrays.
SampleFilter = Callable[[np.ndarray, np.ndarray], None]


def filter2d_opencv(kernels: torch.Tensor) -> list[SampleFilter]:
    """The OpenCV-path filter of each ``K x K`` kernel (see :func:`run_sample_filters`)."""
    return [
        functools.partial(_filter2d_sample, kernel=taps)
        for taps in _trimmed(_flush_subnormal(kernels))
    ]


def separable_opencv(kernel_rows: torch.Tensor, kernel_cols: torch.Tensor) -> list[SampleFilter]:
    """The OpenCV-path filter of each separable kernel pair (see :func:`run_sample_filters`)."""
    rows = _trimmed(_flush_subnormal(kernel_rows))
    cols = _trimmed(_flush_subnormal(kernel_cols))
    return [
        functools.partial(_separable_sample, rows=r, cols=c)
        for r, c in zip(rows, cols, strict=True)
    ]


def run_sample_filters(x: torch.Tensor, filters: list[SampleFilter], clamp: bool) -> torch.Tensor:
    """Filter sample ``i`` of a CPU float32 batch by ``filters[i]`` in one threaded pass."""
    return map_samples_cpu(x, lambda i, s, d: filters[i](s, d), clamp=clamp)


def filter2d_per_sample(
    x: torch.Tensor, kernels: torch.Tensor, clamp: bool = False
) -> torch.Tensor:
    """Correlate sample ``i`` of ``x`` (N x C x H x W) with ``kernels[i]`` (K x K), all channels.

    ``clamp`` clips the result to ``[0, 1]``.
    """
    if use_opencv(x, kernels.shape[-1]):
        return run_sample_filters(x, filter2d_opencv(kernels), clamp)
    return filter2d_canvas(_uniform(x), kernels, clamp).data


def filter_separable_per_sample(
    x: torch.Tensor, kernel_rows: torch.Tensor, kernel_cols: torch.Tensor, clamp: bool = False
) -> torch.Tensor:
    """Filter sample ``i`` by the outer product ``kernel_cols[i] (vertical) x kernel_rows[i]``.

    Both kernels are ``N x K`` (odd ``K``); this costs ``2K`` instead of ``K^2``
    multiply-adds per pixel. ``clamp`` clips the result to ``[0, 1]``.
    """
    if use_opencv(x, max(kernel_rows.shape[-1], kernel_cols.shape[-1])):
        return run_sample_filters(x, separable_opencv(kernel_rows, kernel_cols), clamp)
    return filter_separable_canvas(_uniform(x), kernel_rows, kernel_cols, clamp).data

"""Per-sample resampling of a ragged batch on a canvas, as ``F.interpolate`` computes it.

Every sample of an ``N x C x Hc x Wc`` canvas goes from its own size to its
own output size with its own interpolation (``area``, ``bilinear``,
``bicubic`` or ``nearest``, ``align_corners=False``) and antialias flag, in
one pass over the whole batch. The resampling is separable: columns first,
then rows (the order torch uses). On each axis a sample has a fixed number
of taps per output position (indices and weights); tap ``j`` of every
sample that has one is one row gather, one product and one sum over the
batch, in tap order. Each product and each sum is rounded on its own and a
sample only ever meets its own taps, so its result is bit for bit the same
whatever canvas it lies on and whatever its neighbours or the padding hold.
:func:`apply_taps` runs any such per-sample separable taps (BSRGAN's
blur-and-subsample uses it too).

The taps follow torch's kernels in float32, with the multiply-adds its
compiled kernels fuse fused here too:

* ``area``: adaptive average pooling, windows ``[floor(o in / out),
  ceil((o + 1) in / out))`` with weight ``1 / length``;
* ``bilinear``: source ``(o + 0.5) in / out - 0.5`` clamped at 0, the right
  neighbour clamped to the edge;
* ``bicubic``: Keys' cubic with ``a = -0.75``, taps clamped to the edge;
* ``nearest``: ``floor(o in / out)``;
* antialiased ``bilinear`` / ``bicubic`` (torch's ``_upsample_*_aa``, Pillow's
  filters): a triangle or Keys' cubic with ``a = -0.5`` whose support is
  stretched by ``in / out`` when shrinking, cut at the edges and normalised.

An axis whose size does not change is left alone (torch skips it too).
Results agree with ``F.interpolate`` of each sample alone to about 5e-7
(torch sums area windows in two dimensions at once and fuses the
multiply-adds of its sums). One exception: torch's CPU antialiased kernel
gives every row the same value when the output is one column wide and the
height changes; here such a sample gets what torch's two passes give run
apart.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from degkit.ops.canvas import Canvas

__all__ = ["RESAMPLE_MODES", "Taps", "SharedTaps", "apply_taps", "axis_taps", "resample"]

RESAMPLE_MODES = ("area", "bilinear", "bicubic", "nearest")

_F = np.float32

#: One sample's taps on one axis: ``(index, weight)``, each ``out x taps``.
Taps = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class SharedTaps:
    """Taps of a whole batch on one axis, ``K`` per sample, each weighing the same at
    every output position: ``index`` holds sample ``i``'s ``out_i x K`` positions
    (host) and ``weight[i]`` its ``K`` weights (``N x K`` on any device: never read
    back)."""

    index: Sequence[np.ndarray]
    weight: torch.Tensor


def _fma(a: np.ndarray | np.float32, b: np.ndarray, c: np.ndarray | np.float32) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (a fused multiply-add, as compiled kernels do)."""
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(_F)


def _cubic_near(x: np.ndarray, a: np.float32) -> np.ndarray:
    """Keys' cubic on ``[0, 1]``: ``((a + 2) x - (a + 3)) x x + 1``."""
    return _fma(_fma(a + _F(2), x, -(a + _F(3))) * x, x, _F(1))


def _cubic_far(x: np.ndarray, a: np.float32) -> np.ndarray:
    """Keys' cubic on ``[1, 2]``: ``((a x - 5 a) x + 8 a) x - 4 a``."""
    return _fma(_fma(_fma(a, x, -(_F(5) * a)), x, _F(8) * a), x, -(_F(4) * a))


def _cubic(x: np.ndarray, a: np.float32) -> np.ndarray:
    """Keys' cubic at ``|x|``, zero from 2 on (the antialias filter)."""
    x = np.abs(x)
    return np.where(x < 1, _cubic_near(x, a), np.where(x < 2, _cubic_far(x, a), _F(0)))


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, _F(1) - x, _F(0)).astype(_F)


def _scale(n_in: int, n_out: int) -> np.float32:
    return _F(n_in) / _F(n_out)


def _source(n_in: int, n_out: int) -> np.ndarray:
    """Half-pixel source positions ``scale (o + 0.5) - 0.5`` (float32, fused)."""
    o = np.arange(n_out, dtype=_F)
    return _fma(_scale(n_in, n_out), o + _F(0.5), _F(-0.5))


def _nearest(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    o = np.arange(n_out)
    if n_out == 2 * n_in:
        index = o >> 1
    else:
        index = np.minimum(np.floor(o.astype(_F) * _scale(n_in, n_out)).astype(np.int64), n_in - 1)
    return index[:, None], np.ones((n_out, 1), _F)


def _area(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    o = np.arange(n_out)
    start = o * n_in // n_out
    length = ((o + 1) * n_in + n_out - 1) // n_out - start
    taps = np.arange(int(length.max()))
    used = taps[None, :] < length[:, None]
    index = np.where(used, start[:, None] + taps[None, :], start[:, None])
    weight = np.where(used, (_F(1) / length.astype(_F))[:, None], _F(0)).astype(_F)
    return index, weight


def _bilinear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.maximum(_source(n_in, n_out), _F(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(_F), _F(0), _F(1))
    i1 = i0 + (i0 < n_in - 1)
    return np.stack([i0, i1], 1), np.stack([_F(1) - lam, lam], 1)


def _bicubic(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    src = _source(n_in, n_out)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    t = np.clip(src - i0.astype(_F), _F(0), _F(1))
    a, u = _F(-0.75), _F(1) - t
    near, far = [_cubic_near(d, a) for d in (t, u)], [_cubic_far(d + _F(1), a) for d in (t, u)]
    weight = np.stack([far[0], near[0], near[1], far[1]], 1)
    index = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return index, weight


def _antialiased(n_in: int, n_out: int, cubic: bool) -> tuple[np.ndarray, np.ndarray]:
    """torch's antialiased taps, with its mix of float32 and float64 steps."""
    scale = _scale(n_in, n_out)
    half = 2.0 if cubic else 1.0
    support = _F(half * float(scale)) if scale >= 1 else _F(half)
    invscale = _F(1.0 / float(scale)) if scale >= 1 else _F(1)
    max_taps = int(np.ceil(support)) * 2 + 1
    o = np.arange(n_out, dtype=np.float64)
    center = (float(scale) * (o + 0.5)).astype(_F)
    xmin = np.maximum(((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    xmax = np.minimum(((center + support).astype(np.float64) + 0.5).astype(np.int64), n_in)
    size = np.clip(xmax - xmin, 0, max_taps)
    taps = np.arange(max_taps)
    used = taps[None, :] < size[:, None]
    d = (xmin[:, None] + taps[None, :]).astype(_F) - center[:, None]
    arg = ((d.astype(np.float64) + 0.5) * float(invscale)).astype(_F)
    weight = np.where(used, _cubic(arg, _F(-0.5)) if cubic else _triangle(arg), _F(0)).astype(_F)
    total = weight[:, 0].copy()
    for j in range(1, max_taps):
        total += weight[:, j]
    weight = np.where(
        total[:, None] != 0, weight / np.where(total == 0, _F(1), total)[:, None], weight
    )
    index = np.where(used, xmin[:, None] + taps[None, :], np.minimum(xmin, n_in - 1)[:, None])
    return index, weight.astype(_F)


@functools.lru_cache(maxsize=4096)
def axis_taps(n_in: int, n_out: int, mode: str, antialias: bool) -> Taps:
    """``(index, weight)``, each ``n_out x taps``: output ``o`` of one axis is
    ``sum_k weight[o, k] * input[index[o, k]]``, summed in tap order (read-only arrays)."""
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"resample: unknown mode {mode!r}; allowed: {RESAMPLE_MODES}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"resample: sizes must be positive, got {n_in} -> {n_out}")
    if n_in == n_out:
        index, weight = np.arange(n_out)[:, None], np.ones((n_out, 1), _F)
    elif antialias and mode in ("bilinear", "bicubic"):
        index, weight = _antialiased(n_in, n_out, cubic=mode == "bicubic")
    else:
        index, weight = {"area": _area, "bilinear": _bilinear, "bicubic": _bicubic}.get(
            mode, _nearest
        )(n_in, n_out)
    taps = max(1, int(np.flatnonzero((weight != 0).any(0)).max(initial=0)) + 1)
    index = np.ascontiguousarray(index[:, :taps], np.int64)
    weight = np.ascontiguousarray(weight[:, :taps], _F)  # trailing all-zero taps dropped
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


@dataclasses.dataclass(frozen=True)
class _AxisPlan:
    """One axis of a batch, tap by tap. Samples are taken by decreasing tap count
    (``order``), so tap ``j`` concerns a prefix of them, the first ``counts[j]``;
    ``index`` and ``weight`` stack each tap's ``counts[j] x length`` block."""

    order: torch.Tensor
    counts: list[int]
    index: torch.Tensor
    weight: torch.Tensor


def _plan(taps: Sequence[Taps] | SharedTaps, length: int) -> _AxisPlan:
    """The taps of one axis; output positions past a sample's size get weight 0 and index 0."""
    if isinstance(taps, SharedTaps):
        return _shared_plan(taps, length)
    order = sorted(range(len(taps)), key=lambda i: -taps[i][0].shape[1])
    widest = taps[order[0]][0].shape[1]
    counts = [sum(taps[i][0].shape[1] > j for i in order) for j in range(widest)]
    index = np.zeros((sum(counts), length), np.int64)
    weight = np.zeros((sum(counts), length), _F)
    start = 0
    for j, count in enumerate(counts):
        for row, i in enumerate(order[:count]):
            idx, w = taps[i]
            index[start + row, : idx.shape[0]] = idx[:, j]
            weight[start + row, : w.shape[0]] = w[:, j]
        start += count
    return _AxisPlan(torch.tensor(order), counts, torch.from_numpy(index), torch.from_numpy(weight))


def _shared_plan(taps: SharedTaps, length: int) -> _AxisPlan:
    """:func:`_plan` of taps of equal count (samples in batch order), its weights built
    where ``taps.weight`` lives."""
    n, k = taps.weight.shape
    index = np.zeros((k, n, length), np.int64)
    for i, positions in enumerate(taps.index):
        index[:, i, : positions.shape[0]] = positions.T
    outputs = torch.tensor([positions.shape[0] for positions in taps.index])
    valid = torch.arange(length) < outputs.unsqueeze(1)
    weight = taps.weight.T.unsqueeze(-1) * valid.to(taps.weight.device, non_blocking=True)
    return _AxisPlan(
        torch.arange(n),
        [n] * k,
        torch.from_numpy(index).reshape(k * n, length),
        weight.reshape(k * n, length),
    )


def _resample_rows(data: torch.Tensor, plan: _AxisPlan) -> torch.Tensor:
    """``out[n, c, o] = sum_j weight_j[n, o] * data[n, c, index_j[n, o]]`` over rows,
    one tap after another (each product and sum rounded on its own); whole rows
    are copied, and tap ``j`` touches only the samples that have it."""
    n, c, h, w = data.shape
    length = plan.index.shape[1]
    order = plan.order.to(data.device, non_blocking=True)  # host copies never wait
    planes = (order.view(n, 1) * c + torch.arange(c, device=data.device)) * h
    index = plan.index.to(data.device, non_blocking=True)
    weight = plan.weight.to(data.device, data.dtype, non_blocking=True)
    flat = data.reshape(n * c * h, w)
    acc = torch.empty(0)
    start = 0
    for count in plan.counts:
        rows = planes[:count].unsqueeze(2) + index[start : start + count].unsqueeze(1)
        taps = flat.index_select(0, rows.reshape(-1)).view(count, c, length, w)
        term = taps * weight[start : start + count].view(count, 1, length, 1)
        if start == 0:
            acc = term
        else:
            acc[:count].add_(term)
        start += count
    if plan.order.equal(torch.arange(n)):
        return acc
    return acc.index_select(0, torch.argsort(order))


def apply_taps(
    x: Canvas,
    sizes: torch.Tensor,
    columns: Sequence[Taps] | SharedTaps | None,
    rows: Sequence[Taps] | SharedTaps | None,
    clamp: Sequence[bool],
) -> Canvas | torch.Tensor:
    """Separable per-sample filtering of a canvas: sample ``i`` becomes ``sizes[i]``
    (host ``N x 2``) through its ``columns[i]`` taps, then its ``rows[i]`` taps
    (``(index, weight)``, ``out x taps`` each, or :class:`SharedTaps`; summed in
    tap order; ``None`` leaves that axis as it is), clamped to ``[0, 1]`` where
    ``clamp[i]``.

    Returns a plain ``N x C x H x W`` tensor when every sample ends at the same
    size, else a canvas of the output sizes.
    """
    sizes = torch.as_tensor(sizes, dtype=torch.int64).cpu()
    if sizes.shape != x.sizes.shape:
        raise ValueError(f"taps: sizes must be {tuple(x.sizes.shape)}, got {tuple(sizes.shape)}")
    height, width = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    data = x.data[:, :, : int(x.sizes[:, 0].max()), : int(x.sizes[:, 1].max())]
    if columns is not None:
        plan = _plan(columns, width)
        data = _resample_rows(data.transpose(2, 3).contiguous(), plan).transpose(2, 3).contiguous()
    if rows is not None:
        data = _resample_rows(data.contiguous(), _plan(rows, height))
    data = data[:, :, :height, :width]
    if (columns is not None or rows is not None) and any(clamp):  # a new tensor: in place
        bounds = torch.tensor([[0.0, 1.0] if c else [-math.inf, math.inf] for c in clamp])
        bounds = bounds.to(data.device, data.dtype, non_blocking=True).view(-1, 2, 1, 1, 1)
        data.clamp_(bounds[:, 0], bounds[:, 1])
    out = Canvas(data, sizes)
    return out.data if out.is_uniform() else out


def resample(
    x: Canvas, sizes: torch.Tensor, modes: Sequence[str], antialias: Sequence[bool]
) -> Canvas | torch.Tensor:
    """Resample sample ``i`` of ``x`` to ``sizes[i]`` (host ``N x 2``) with ``modes[i]``
    and ``antialias[i]``; bicubic samples are clamped to ``[0, 1]``.

    Returns a plain ``N x C x H x W`` tensor when every sample ends at the same
    size, else a canvas of the output sizes. Without any size change the input
    data comes back as it is (a view, as ``F.interpolate`` of an unchanged size).
    """
    sizes = torch.as_tensor(sizes, dtype=torch.int64).cpu()
    if sizes.shape != x.sizes.shape:
        raise ValueError(
            f"resample: sizes must be {tuple(x.sizes.shape)}, got {tuple(sizes.shape)}"
        )
    if len(modes) != len(x) or len(antialias) != len(x):
        raise ValueError(f"resample: need {len(x)} modes and antialias flags")

    def taps(n_in: list[int], n_out: list[int]) -> list[Taps] | None:
        if n_in == n_out:
            return None
        requests = zip(n_in, n_out, modes, antialias, strict=True)
        return [axis_taps(a, b, m, bool(aa)) for a, b, m, aa in requests]

    (in_h, in_w), (out_h, out_w) = x.sizes.T.tolist(), sizes.T.tolist()
    cubic = [m == "bicubic" for m in modes]
    return apply_taps(x, sizes, taps(in_w, out_w), taps(in_h, out_h), cubic)

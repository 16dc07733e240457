"""Resize ops: random up / down / keep with a per-sample scale and interpolation,
the final resize to the LR size (``H / scale``) and BSRGAN's shifted-kernel
subsampling.

``resize`` records ``scale``, ``mode``, ``antialias`` and (when
``relative_to="target"``) ``ref_size``; ``final_resize`` records ``size``,
``mode`` and ``antialias``. ``shifted_subsample`` (BSRGAN's shifted-kernel
branch) blurs with an isotropic Gaussian whose centre is shifted by ``(factor
- 1) / 2`` pixels right and down, then keeps every ``factor``-th pixel
starting at the first (``x[..., ::factor, ::factor]``): LR pixel ``(i, j)`` is
the Gaussian-weighted mean around HR position ``(factor i + (factor - 1) / 2,
factor j + (factor - 1) / 2)``, the centre of its ``factor x factor`` block;
it records ``kernel_size``, ``sigma``, ``shift`` and ``factor``.

Resize output sizes are ``floor(reference * scale)`` (at least 1 pixel), as
``torch.nn.functional.interpolate`` computes them from a scale factor. Samples
of one batch may end with different sizes; the batch then becomes ragged (see
:mod:`degkit.ops.base`). Results are clamped to ``[0, 1]`` (bicubic overshoots).
Where ragged batches are canvases (:func:`~degkit.ops.canvas.canvas_enabled`),
all three run once over the whole batch (:mod:`degkit.ops.resample`) and a
resize to per-sample sizes leaves its batch on a canvas.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from degkit.ops.base import (
    Images,
    Op,
    OpError,
    Params,
    Record,
    check_prob,
    check_range,
    collate,
    image_sizes,
    register,
)
from degkit.ops.canvas import Canvas, canvas_enabled, reflect_index
from degkit.ops.filtering import (
    each_plane,
    filter2d_per_sample,
    kernels_at_fixed_sizes,
    kernels_by_size,
    map_samples_cpu,
    use_opencv,
)
from degkit.ops.kernels import shifted_gaussian_kernels
from degkit.ops.labels import FlatColumn, field_value
from degkit.ops.resample import RESAMPLE_MODES, SharedTaps, apply_taps, resample
from degkit.rng import BatchStreams

__all__ = ["Resize", "FinalResize", "ShiftedSubsample", "INTERPOLATIONS", "resize_one"]

INTERPOLATIONS = RESAMPLE_MODES  # area, bilinear, bicubic, nearest


def _check_modes(op: str, modes: Sequence[str], weights: Sequence[float] | None) -> None:
    if not modes:
        raise OpError(f"{op}.modes must name at least one of {INTERPOLATIONS}")
    for m in modes:
        if m not in INTERPOLATIONS:
            raise OpError(f"{op}.modes: unknown interpolation {m!r}; allowed: {INTERPOLATIONS}")
    if weights is not None and (
        len(weights) != len(modes) or any(w < 0 for w in weights) or sum(weights) <= 0
    ):
        raise OpError(f"{op}.mode_weights must be {len(modes)} non-negative numbers, got {weights}")


def _full_weights(modes: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    """Weights over all of ``INTERPOLATIONS`` (zero for modes not allowed)."""
    weights = weights or [1.0] * len(modes)
    return [weights[modes.index(m)] if m in modes else 0.0 for m in INTERPOLATIONS]


# OpenCV interpolations computing what ``F.interpolate`` does for these modes
# (half-pixel centres, no antialiasing, bicubic with a = -0.75 and edge pixels
# repeated).
_OPENCV_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def _opencv_flag(x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> int | None:
    """The OpenCV interpolation that computes this resize on the CPU path, if any."""
    if not use_opencv(x, 1):
        return None
    if mode == "area":
        (h, w), (out_h, out_w) = x.shape[-2:], size
        return cv2.INTER_AREA if h % out_h == 0 and w % out_w == 0 else None
    return None if antialias else _OPENCV_INTERPOLATION.get(mode)


def resize_one(x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> torch.Tensor:
    """Resize an ``N x C x H x W`` batch to ``size`` with one interpolation, clamped to [0, 1].

    On the CPU path (float32, no gradient) bilinear and bicubic resizes without
    antialiasing, and area resizes by whole factors (box means, e.g. 256 to
    64), run through OpenCV's ``resize`` (no autograd graph). OpenCV maps
    output to input coordinates in double precision where torch uses float32,
    so the two differ by up to about 3e-5 (both are tested against a float64
    reference); whole-factor area means agree to float rounding.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    flag = _opencv_flag(x, size, mode, antialias)
    if flag is not None:
        dsize = (size[1], size[0])
        fill = each_plane(lambda i, s, d: cv2.resize(s, dsize, dst=d, interpolation=flag))
        return map_samples_cpu(x, fill, out_size=size, clamp=mode == "bicubic")
    kwargs: dict = {}
    if mode in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": antialias}
    y = F.interpolate(x, size=size, mode=mode, **kwargs)
    return y.clamp_(0.0, 1.0) if mode == "bicubic" else y  # only bicubic overshoots


def _resize_canvas(
    x: Canvas, sizes: torch.Tensor, modes: torch.Tensor, antialias: torch.Tensor
) -> torch.Tensor | Canvas:
    """Resize sample ``i`` of a canvas to ``sizes[i]`` in one pass (:mod:`degkit.ops.resample`)."""
    names = [INTERPOLATIONS[m] for m in modes.tolist()]
    return resample(x, sizes, names, [bool(a) for a in antialias.tolist()])


def _resize_per_sample(
    x: torch.Tensor, sizes: torch.Tensor, modes: torch.Tensor, antialias: torch.Tensor
) -> Images | Canvas:
    """Resize sample ``i`` to ``sizes[i]`` with interpolation ``modes[i]`` (an index into
    :data:`INTERPOLATIONS`) and ``antialias[i]``, batching equal requests.

    When the output sizes differ and ragged batches are canvases on this
    device, the whole batch is resized at once onto a canvas.
    """
    if canvas_enabled(x.device) and len({tuple(s) for s in sizes.tolist()}) > 1:
        return _resize_canvas(Canvas(x, image_sizes(x)), sizes, modes, antialias)
    out: list[torch.Tensor | None] = [None] * x.shape[0]
    groups: dict[tuple[int, int, int, bool], list[int]] = {}
    requests = zip(sizes.tolist(), modes.tolist(), antialias.tolist(), strict=True)
    for i, (size, mode, aa) in enumerate(requests):
        groups.setdefault((size[0], size[1], mode, bool(aa)), []).append(i)
    if len(groups) == 1:
        ((h, w, mode, aa),) = groups
        return resize_one(x, (h, w), INTERPOLATIONS[mode], aa)
    for (h, w, mode, aa), positions in groups.items():
        index = torch.tensor(positions).to(x.device, non_blocking=True)
        y = resize_one(x.index_select(0, index), (h, w), INTERPOLATIONS[mode], aa)
        for p, img in zip(positions, y, strict=True):
            out[p] = img
    return collate(out)  # type: ignore[arg-type]


@register
@dataclasses.dataclass
class Resize(Op):
    """Random resize: up with ``p_up``, down with ``p_down``, else keep the size.

    With ``scale = [lo, hi]`` the scale is drawn from ``U(max(lo, 1), hi)``
    going up and ``U(lo, min(hi, 1))`` going down (Real-ESRGAN's rule), or
    ``1 / U(1 / min(hi, 1), 1 / lo)`` going down with
    ``down_distribution="reciprocal"`` (BSRGAN's rule). A range below 1 (e.g.
    ``scale: 0.5`` with ``p_down: 1``) draws downscales only.
    ``relative_to="target"`` measures the scale against the pipeline's LR
    target size instead of the input size (Real-ESRGAN's second stage).
    """

    name = "resize"
    family = "resize"
    version = 1
    categories = {"mode": INTERPOLATIONS}
    param_limits = {"scale": (1e-3, 64.0), "antialias": (0, 1)}
    optional_params = {"ref_size": (1, 1 << 16)}
    caption_types = ()
    flat_columns = (
        FlatColumn("resize_count", "int64", "number of random resizes", lambda rec: 1, count=True),
        FlatColumn(
            "resize_scale",
            "float64",
            "scale of the last random resize (< 1 shrinks)",
            field_value("scale"),
        ),
    )

    scale: tuple[float, float] = (0.15, 1.5)
    p_up: float = 0.2
    p_down: float = 0.7
    modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    mode_weights: tuple[float, ...] | None = None
    antialias: bool = False
    relative_to: str = "input"
    down_distribution: str = "uniform"

    def __post_init__(self) -> None:
        lo, hi = check_range("resize.scale", self.scale, 1e-3, 64.0)
        self.scale = (lo, hi)
        check_prob("resize.p_up", self.p_up)
        check_prob("resize.p_down", self.p_down)
        if self.p_down > 0 and lo > 1:
            raise OpError(
                f"resize.scale must have low <= 1 when resize.p_down > 0 (downscales), "
                f"got [{lo:g}, {hi:g}]"
            )
        if self.p_up > 0 and hi < 1:
            raise OpError(
                f"resize.scale must have high >= 1 when resize.p_up > 0 (upscales), "
                f"got [{lo:g}, {hi:g}]"
            )
        if self.p_up + self.p_down > 1 + 1e-9:
            raise OpError(
                f"resize.p_up + resize.p_down must be <= 1, got {self.p_up + self.p_down:g}"
            )
        self.modes = tuple(self.modes)
        _check_modes("resize", self.modes, self.mode_weights)
        if self.down_distribution not in ("uniform", "reciprocal"):
            raise OpError(
                "resize.down_distribution must be 'uniform' or 'reciprocal', "
                f"got {self.down_distribution!r}"
            )
        if self.relative_to not in ("input", "target"):
            raise OpError(
                f"resize.relative_to must be 'input' or 'target', got {self.relative_to!r}"
            )

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        direction = rng.choice(3, [self.p_up, self.p_down, max(0.0, 1 - self.p_up - self.p_down)])
        u = rng.uniform(0.0, 1.0)
        lo, hi = self.scale
        up_lo, down_hi = max(lo, 1.0), min(hi, 1.0)
        up = up_lo + u * (hi - up_lo)
        if self.down_distribution == "reciprocal":
            down = 1.0 / (1.0 / down_hi + u * (1.0 / lo - 1.0 / down_hi))
        else:
            down = lo + u * (down_hi - lo)
        scale = torch.where(direction == 0, up, torch.where(direction == 1, down, 1.0))
        mode = rng.choice(len(INTERPOLATIONS), _full_weights(self.modes, self.mode_weights))
        antialias = torch.full((n,), self.antialias, dtype=torch.bool)
        params = {"scale": scale.double(), "mode": mode, "antialias": antialias}
        if self.relative_to == "target":
            params["ref_size"] = _target_size(self.name, context, n)
        return params

    @classmethod
    def output_size(cls, record: Record, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """``floor(reference * scale)`` per axis (at least 1), as ``_apply`` computes it."""
        ref = record.get("ref_size", size)
        if ref is None:
            return None
        scale = float(record["scale"])
        return (max(1, math.floor(ref[0] * scale)), max(1, math.floor(ref[1] * scale)))

    @staticmethod
    def _sizes(input_sizes: torch.Tensor, params: Params) -> torch.Tensor:
        """``floor(reference * scale)`` per sample (at least 1), ``N x 2`` int64."""
        ref = params.get("ref_size", input_sizes)
        sizes = torch.floor(ref.double() * params["scale"].double().unsqueeze(1)).clamp_min(1)
        return sizes.long()

    def _apply(self, x: torch.Tensor, params: Params) -> Images | Canvas:
        sizes = self._sizes(image_sizes(x), params)
        return _resize_per_sample(x, sizes, params["mode"], params["antialias"])

    def _apply_canvas(self, x: Canvas, params: Params) -> torch.Tensor | Canvas:
        sizes = self._sizes(x.sizes, params)
        return _resize_canvas(x, sizes, params["mode"], params["antialias"])


def _target_size(op: str, context: Params | None, n: int) -> torch.Tensor:
    if context is None or "target_size" not in context:
        raise OpError(
            f"{op} needs the LR target size: run it in a Pipeline or pass "
            "context={'target_size': N x 2 tensor of (height, width)}"
        )
    size = context["target_size"]
    if size.shape != (n, 2):
        raise OpError(f"{op}: context target_size must be {n} x 2, got {tuple(size.shape)}")
    return size.long()


@register
@dataclasses.dataclass
class FinalResize(Op):
    """Resize every sample to the pipeline's LR target size, interpolation per sample."""

    name = "final_resize"
    family = "resize"
    version = 1
    categories = {"mode": INTERPOLATIONS}
    param_limits = {"size": (1, 1 << 16), "antialias": (0, 1)}
    caption_types = ()
    flat_columns = (
        FlatColumn(
            "final_resize_mode",
            "class_label",
            "interpolation of the resize to the LR size",
            lambda rec: rec["mode"],
            labels=INTERPOLATIONS,
        ),
    )

    modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    mode_weights: tuple[float, ...] | None = None
    antialias: bool = False

    def __post_init__(self) -> None:
        self.modes = tuple(self.modes)
        _check_modes("final_resize", self.modes, self.mode_weights)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        mode = rng.choice(len(INTERPOLATIONS), _full_weights(self.modes, self.mode_weights))
        antialias = torch.full((n,), self.antialias, dtype=torch.bool)
        return {"size": _target_size(self.name, context, n), "mode": mode, "antialias": antialias}

    @classmethod
    def output_size(cls, record: Record, size: tuple[int, int] | None) -> tuple[int, int]:
        """The recorded target size."""
        return (int(record["size"][0]), int(record["size"][1]))

    def _apply(self, x: torch.Tensor, params: Params) -> Images | Canvas:
        return _resize_per_sample(x, params["size"], params["mode"], params["antialias"])

    def _apply_canvas(self, x: Canvas, params: Params) -> torch.Tensor | Canvas:
        return _resize_canvas(x, params["size"], params["mode"], params["antialias"])


MAX_SUBSAMPLE_KERNEL = 101


@register
@dataclasses.dataclass
class ShiftedSubsample(Op):
    """Blur with a shifted isotropic Gaussian, then nearest subsampling by ``factor``.

    BSRGAN's third way down: ``sigma ~ U(sigma)``, a ``kernel_size`` kernel
    (odd) centred ``(factor - 1) / 2`` pixels right of and below its centre tap,
    borders reflected (OpenCV's ``BORDER_REFLECT_101``), clamped to ``[0, 1]``,
    then ``x[..., ::factor, ::factor]`` (``ceil(H / factor)`` rows).
    """

    name = "shifted_subsample"
    family = "resize"
    version = 1
    caption_types = ()
    flat_columns = (
        FlatColumn(
            "shifted_subsample_count",
            "int64",
            "number of shifted-Gaussian subsamplings (BSRGAN's third way down)",
            lambda rec: 1,
            count=True,
        ),
        FlatColumn(
            "shifted_subsample_sigma",
            "float64",
            "Gaussian sigma of the last shifted-Gaussian subsampling",
            field_value("sigma"),
        ),
    )
    param_limits = {
        "kernel_size": (1, MAX_SUBSAMPLE_KERNEL),
        "sigma": (0.0, 50.0),
        "shift": (-50.0, 50.0),
        "factor": (1, 64),
    }

    factor: int = 4
    sigma: tuple[float, float] = (0.1, 2.4)
    kernel_size: int = 25

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int):
            raise OpError(
                f"shifted_subsample.factor must be an integer in [1, 64], got {self.factor!r}"
            )
        if not 1 <= self.factor <= 64:
            raise OpError(
                f"shifted_subsample.factor must be an integer in [1, 64], got {self.factor}"
            )
        self.sigma = check_range("shifted_subsample.sigma", self.sigma, 0.0, 50.0)
        size = self.kernel_size
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or size % 2 == 0
            or not 1 <= size <= MAX_SUBSAMPLE_KERNEL
        ):
            raise OpError(
                f"shifted_subsample.kernel_size must be an odd integer in "
                f"[1, {MAX_SUBSAMPLE_KERNEL}], got {size!r}"
            )

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "kernel_size": torch.full((n,), self.kernel_size, dtype=torch.int64),
            "sigma": rng.uniform(*self.sigma),
            "shift": torch.full((n,), (self.factor - 1) / 2, dtype=torch.float64),
            "factor": torch.full((n,), self.factor, dtype=torch.int64),
        }

    def check_params(self, params: Params, n: int) -> None:
        super().check_params(params, n)
        for key in ("kernel_size", "factor"):
            value = params[key]
            if value.is_floating_point() and not torch.equal(value, value.round()):
                raise OpError(
                    f"{self.name}: parameter {key!r} must be integers, got {value.tolist()}"
                )
        sizes = params["kernel_size"]
        if (sizes % 2 != 1).any():
            raise OpError(f"{self.name}: parameter 'kernel_size' must be odd, got {sizes.tolist()}")

    @classmethod
    def output_size(cls, record: Record, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """``ceil(size / factor)`` per axis (every ``factor``-th pixel from the first)."""
        if size is None:
            return None
        factor = int(record["factor"])
        return (-(-size[0] // factor), -(-size[1] // factor))

    @staticmethod
    def _kernels_on(device: torch.device, params: Params) -> torch.Tensor:
        """All samples' kernels built on ``device`` in one computation."""
        sigma, shift, sizes = params["sigma"], params["shift"], params["kernel_size"]
        return kernels_at_fixed_sizes(
            sizes,
            lambda size, i: shifted_gaussian_kernels(
                size, *(v[i].to(device, non_blocking=True) for v in (sigma, shift, sizes))
            ),
        )

    def _apply(self, x: torch.Tensor, params: Params) -> Images:
        """Off OpenCV's path the kernels are built on ``x``'s device."""
        sigma, shift, sizes = params["sigma"], params["shift"], params["kernel_size"]
        if use_opencv(x, int(sizes.max())):
            kernels = kernels_by_size(
                sizes, lambda size, i: shifted_gaussian_kernels(size, sigma[i], shift[i])
            )
        else:
            kernels = self._kernels_on(x.device, params)
        blurred = filter2d_per_sample(x, kernels, clamp=True)
        factors = [int(f) for f in params["factor"].tolist()]
        return collate(
            [img[:, ::f, ::f].contiguous() for img, f in zip(blurred, factors, strict=True)]
        )

    def _apply_canvas(self, x: Canvas, params: Params) -> torch.Tensor | Canvas:
        """All samples at once: the shifted isotropic Gaussian is the product of its row
        and column marginals, so each kept pixel is a column pass then a row pass
        over reflected taps, computed only where the stride keeps it (equal to the
        2-D filter up to float rounding). The kernels are built on the canvas' device."""
        kernels = self._kernels_on(x.data.device, params).double()
        factors = [int(f) for f in params["factor"].tolist()]
        sizes = torch.tensor(
            [[-(-h // f), -(-w // f)] for (h, w), f in zip(x.sizes.tolist(), factors, strict=True)]
        )
        rows = _strided_taps(x.sizes[:, 0].tolist(), factors, kernels.sum(-1))
        columns = _strided_taps(x.sizes[:, 1].tolist(), factors, kernels.sum(-2))
        return apply_taps(x, sizes, columns, rows, [True] * len(x))


def _strided_taps(lengths: list[int], factors: list[int], weights: torch.Tensor) -> SharedTaps:
    """Per sample, output ``o`` = ``sum_t weights[t] * input[reflect(factor o + t - r)]``
    (``r`` the centre tap, reflection without repeating the edge); ``weights`` is ``N x K``
    (any device) and each row is normalised."""
    k = weights.shape[1]
    index = []
    for n_in, f in zip(lengths, factors, strict=True):
        n_out = -(-n_in // f)
        positions = reflect_index(torch.tensor([n_in]), -(k // 2), f * (n_out - 1) + k)[0].numpy()
        index.append(positions[f * np.arange(n_out)[:, None] + np.arange(k)[None, :]])
    return SharedTaps(index, (weights / weights.sum(-1, keepdim=True)).float())

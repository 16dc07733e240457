"""Blur ops: Real-ESRGAN's random kernel, motion, defocus and sinc ringing.

Kernels are those of :mod:`degkit.ops.kernels` (units: pixels, radians for
``theta`` and sinc ``cutoff``, degrees for motion ``angle``). Each sample has
its own kernel type, size and shape. ``apply`` groups the samples of a batch by
kernel size (and by path: isotropic and axis-aligned Gaussians are filtered
separably, every other kernel in 2-D) and builds each group's kernels at once,
so a sample's output never depends on the other samples of its batch. A
ragged batch on a :class:`~degkit.ops.canvas.Canvas` runs each path once for
the whole batch (see :mod:`degkit.ops.filtering`). Off the CPU's OpenCV path
(CUDA, autograd, canvases) the kernels of :class:`Blur` and :class:`Ringing`
are built on the images' device, all samples at once, at a size that depends
on each sample's own size only (:data:`~degkit.ops.filtering.BUILD_SIZES`), so
a sample's kernel never depends on its batch. Borders are reflected
(OpenCV's ``BORDER_REFLECT_101``). Outputs are clamped to ``[0, 1]`` (sinc
kernels overshoot).

``blur`` records ``kernel`` (one of :data:`KERNEL_LABELS`), ``kernel_size``,
``sigma_x``, ``sigma_y``, ``theta``, ``beta`` (1.0 for plain Gaussians) and
``cutoff`` (0.0 unless the kernel is ``sinc``). The kernel type selects the
formula (Gaussian, generalized Gaussian, plateau or sinc); ``iso`` and
``aniso`` differ only in how the parameters are drawn (``iso``: ``sigma_y =
sigma_x``, ``theta = 0``), and a replayed record is applied as written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from degkit.ops.base import (
    Op,
    OpError,
    Params,
    Record,
    check_prob,
    check_range,
    map_groups,
    register,
)
from degkit.ops.canvas import Canvas
from degkit.ops.filtering import (
    SampleFilter,
    filter2d_canvas,
    filter2d_opencv,
    filter2d_per_sample,
    filter_separable_canvas,
    filter_separable_per_sample,
    kernels_at_fixed_sizes,
    kernels_by_size,
    run_sample_filters,
    separable_opencv,
    use_opencv,
)
from degkit.ops.kernels import (
    MAX_AUTO_SIZE,
    auto_gaussian_size,
    disk_kernels,
    disk_size,
    gaussian_kernels,
    gaussian_kernels_1d,
    generalized_gaussian_kernels,
    motion_kernels,
    motion_size,
    plateau_kernels,
    sinc_kernels,
)
from degkit.ops.labels import CaptionType, FlatColumn, field_value
from degkit.rng import BatchStreams

__all__ = [
    "KERNEL_TYPES",
    "KERNEL_LABELS",
    "REALESRGAN_KERNEL_WEIGHTS",
    "Blur",
    "MotionBlur",
    "DefocusBlur",
    "Ringing",
    "blur_kernels",
]

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
KERNEL_LABELS = (*KERNEL_TYPES, "sinc")
REALESRGAN_KERNEL_WEIGHTS = {
    "iso": 0.45,
    "aniso": 0.25,
    "generalized_iso": 0.12,
    "generalized_aniso": 0.03,
    "plateau_iso": 0.12,
    "plateau_aniso": 0.03,
}
MAX_KERNEL_SIZE = 101
SIGMA_DISTRIBUTIONS = ("uniform", "sqrt_uniform")
_SINC = KERNEL_LABELS.index("sinc")


def _codes(*labels: str) -> tuple[int, ...]:
    return tuple(KERNEL_LABELS.index(label) for label in labels)


_ISO_CODES = _codes("iso", "generalized_iso", "plateau_iso")
_GAUSSIAN_CODES = _codes("iso", "aniso")
_GENERALIZED_CODES = _codes("generalized_iso", "generalized_aniso")
_PLATEAU_CODES = _codes("plateau_iso", "plateau_aniso")


# -- shared helpers ------------------------------------------------------------
def _check_odd_sizes(op: str, key: str, sizes: torch.Tensor) -> None:
    """Raise :class:`OpError` unless every size is an odd integer."""
    bad = (sizes.double() % 2) != 1
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise OpError(f"{op}: parameter {key!r} must be odd, got {sizes[i].item()} at sample {i}")


def _check_odd_range(name: str, value: object) -> tuple[int, int]:
    lo, hi = check_range(name, value, 1, MAX_KERNEL_SIZE)
    if lo != int(lo) or hi != int(hi) or lo % 2 == 0 or hi % 2 == 0:
        raise OpError(f"{name} must be a range of odd integers, got [{lo:g}, {hi:g}]")
    return int(lo), int(hi)


def _draw_odd_sizes(rng: BatchStreams, low: int, high: int) -> torch.Tensor:
    """One odd size per sample, uniform over ``{low, low + 2, ..., high}``."""
    return 2 * rng.integers(low // 2, high // 2) + 1


def _sinc_cutoffs(
    u: torch.Tensor, sizes: torch.Tensor, cutoff: tuple[float, float] | None
) -> torch.Tensor:
    """Map uniforms ``u`` in [0, 1) to cutoffs: ``U(cutoff)`` or Real-ESRGAN's size rule.

    The rule: ``U(pi/3, pi)`` for kernels smaller than 13, else ``U(pi/5, pi)``.
    """
    if cutoff is None:
        lo = torch.where(sizes < 13, math.pi / 3, math.pi / 5).double()
        return lo + u * (math.pi - lo)
    return cutoff[0] + u * (cutoff[1] - cutoff[0])


def _check_cutoff(name: str, value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = check_range(name, value, 0, math.pi)
    if lo <= 0:
        raise OpError(f"{name} must be positive (radians per pixel, at most pi), got {lo:g}")
    return lo, hi


def _isin(codes: torch.Tensor, options: Sequence[int]) -> torch.Tensor:
    return torch.isin(codes, torch.tensor(options, dtype=codes.dtype))


# -- kernels of the blur op ------------------------------------------------------
def _separable_sigmas(params: Params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whether each sample's kernel is a separable Gaussian, and its x / y standard deviations."""
    sx2, sy2 = params["sigma_x"].double() ** 2, params["sigma_y"].double() ** 2
    cos, sin = torch.cos(params["theta"].double()), torch.sin(params["theta"].double())
    var_x = cos * cos * sx2 + sin * sin * sy2
    var_y = sin * sin * sx2 + cos * cos * sy2
    covariance = (cos * sin * (sx2 - sy2)).abs()
    aligned = covariance <= 1e-9 * torch.maximum(var_x, var_y).clamp_min(1e-300)
    separable = _isin(params["kernel"], _GAUSSIAN_CODES) & aligned
    return separable, var_x.sqrt(), var_y.sqrt()


def blur_kernels(
    size: int, params: Params, device: torch.device | str = "cpu", own_size: bool = False
) -> torch.Tensor:
    """The 2-D kernels (``N x size x size``) that ``params`` (host) of :class:`Blur` describe,
    built on ``device``; ``own_size`` zeroes each sample's taps outside its ``kernel_size``."""
    code = params["kernel"]
    out = torch.empty(code.shape[0], size, size, device=device)
    for family in (_GAUSSIAN_CODES, _GENERALIZED_CODES, _PLATEAU_CODES, (_SINC,)):
        index = _isin(code, family).nonzero().flatten()
        if index.numel() == 0:
            continue
        p = {key: value[index].to(device, non_blocking=True) for key, value in params.items()}
        sizes = p["kernel_size"] if own_size else None
        shape = (p["sigma_x"], p["sigma_y"], p["theta"])
        if family == _GAUSSIAN_CODES:
            kernels = gaussian_kernels(size, *shape, sizes=sizes)
        elif family == _GENERALIZED_CODES:
            kernels = generalized_gaussian_kernels(size, *shape, p["beta"], sizes=sizes)
        elif family == _PLATEAU_CODES:
            kernels = plateau_kernels(size, *shape, p["beta"], sizes=sizes)
        else:
            kernels = sinc_kernels(size, p["cutoff"], sizes=sizes)
        out.index_copy_(0, index.to(out.device, non_blocking=True), kernels)
    return out


def _blur_kernels_at(
    params: Params,
    positions: torch.Tensor,
    sigmas: tuple[torch.Tensor, torch.Tensor] | None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, ...]:
    """The kernels of :class:`Blur`'s samples at ``positions``, centred in their largest size.

    ``(rows, cols)`` when they are separable Gaussians (``sigmas``: the batch's
    x / y standard deviations, see :func:`_separable_sigmas`), else ``(kernels,)``.
    Without ``device`` each size is built on the host on its own; with it (the
    torch path) all are built there in one computation per family (see
    :func:`~degkit.ops.filtering.kernels_at_fixed_sizes`).
    """
    sizes = params["kernel_size"][positions]

    def build(own: torch.Tensor, make: Callable[..., torch.Tensor]) -> torch.Tensor:
        """``make(size, rows, own_sizes)`` at each size, or at the fixed sizes on ``device``."""
        if device is None:
            return kernels_by_size(own, lambda k, i: make(k, i, None))
        return kernels_at_fixed_sizes(
            own, lambda k, i: make(k, i, own[i].to(device, non_blocking=True))
        )

    if sigmas is not None:
        # Row and column kernels built together: first the rows, then the columns.
        both = torch.cat([sigmas[0][positions], sigmas[1][positions]])
        kernels = build(
            sizes.repeat(2),
            lambda k, i, own: gaussian_kernels_1d(
                k, both[i].to(device or "cpu", non_blocking=True), own
            ),
        )
        return tuple(kernels.split(len(positions)))
    sub = {key: value[positions] for key, value in params.items()}
    return (
        build(
            sizes,
            lambda k, i, own: blur_kernels(
                k, {key: v[i] for key, v in sub.items()}, device or "cpu", own is not None
            ),
        ),
    )


# -- captions and dataset columns -----------------------------------------------------
def _is_sinc(rec: Record) -> bool:
    return rec.get("kernel") == "sinc"


def _blur_sigma(rec: Record) -> float:
    """A kernel's sigma: the geometric mean of its two standard deviations."""
    return math.sqrt(float(rec["sigma_x"]) * float(rec["sigma_y"]))


def _unless_sinc(value: Callable[[Record], Any]) -> Callable[[Record], Any]:
    return lambda rec: None if _is_sinc(rec) else value(rec)


def _if_sinc(value: Callable[[Record], Any]) -> Callable[[Record], Any]:
    return lambda rec: value(rec) if _is_sinc(rec) else None


BLUR_CAPTION = CaptionType(
    name="blur",
    template="blur with sigma:{sigma:.1f}",
    none="blur with sigma:0.0",
    phrase="blur",
    bins=(1.0, 2.0),
    heavier_when_lower=False,
    values=lambda rec: {"sigma": _blur_sigma(rec)},
    severity=_blur_sigma,
    to_record=lambda v: {
        "op": "blur",
        "kernel": "iso",
        "sigma_x": v["sigma"],
        "sigma_y": v["sigma"],
    },
)
RINGING_CAPTION = CaptionType(
    name="ringing",
    template="ringing and overshoot artifacts",
    none="no ringing and overshoot artifacts",
    phrase="ringing artifacts",
    bins=(3 * math.pi / 4, math.pi / 2),
    heavier_when_lower=True,
    values=lambda rec: {},
    severity=field_value("cutoff"),
    to_record=lambda v: {"op": "ringing"},
)
_RINGING_DOC = "a sinc filter ran (`ringing`, or a `blur` with a sinc kernel): the ringing level"
_CUTOFF_DOC = (
    "cutoff of the last sinc filter (closest to the output), radians per pixel (lower rings more)"
)
_BLUR_COLUMNS = (
    FlatColumn(
        "blur_count",
        "int64",
        "number of Gaussian-family `blur` ops that ran (a sinc kernel counts as ringing)",
        _unless_sinc(lambda rec: 1),
        count=True,
    ),
    FlatColumn(
        "blur_kernel",
        "class_label",
        "kernel type of the last Gaussian-family blur (the one closest to the output)",
        _unless_sinc(lambda rec: rec["kernel"]),
        labels=KERNEL_TYPES,
    ),
    FlatColumn(
        "blur_sigma",
        "float64",
        "sigma of the last Gaussian-family blur (closest to the output) at the scale it ran, "
        "pixels: sqrt(sigma_x * sigma_y), as its caption fragment prints it (see blur_level)",
        _unless_sinc(_blur_sigma),
    ),
    FlatColumn(
        "blur_sigma_x",
        "float64",
        "the last Gaussian-family blur's standard deviation on its first axis, its pixels",
        _unless_sinc(field_value("sigma_x")),
    ),
    FlatColumn(
        "blur_sigma_y",
        "float64",
        "the last Gaussian-family blur's standard deviation on its second axis, its pixels",
        _unless_sinc(field_value("sigma_y")),
    ),
    FlatColumn(
        "blur_kernel_size",
        "int64",
        "the last Gaussian-family blur's kernel size, pixels (odd)",
        _unless_sinc(lambda rec: rec["kernel_size"]),
    ),
    FlatColumn("ringing", "bool", _RINGING_DOC, _if_sinc(lambda rec: True)),
    FlatColumn("ringing_cutoff", "float64", _CUTOFF_DOC, _if_sinc(field_value("cutoff"))),
)


# -- ops ---------------------------------------------------------------------------
class _KernelSizeOp(Op):
    """Shared by the blur ops: their ``kernel_size`` parameter must be odd."""

    def check_params(self, params: Params, n: int) -> None:
        super().check_params(params, n)
        _check_odd_sizes(self.name, "kernel_size", params["kernel_size"])


@register
@dataclasses.dataclass
class Blur(_KernelSizeOp):
    """Real-ESRGAN's random blur kernel, drawn per sample (optionally a sinc instead).

    ``kernel_weights`` (one per entry of ``kernel_types``) defaults to
    Real-ESRGAN's probabilities of the listed types. ``kernel_size`` is an odd
    range or ``"auto"`` (``2 ceil(3 sigma) + 1`` clipped to [1, 21], sigma the
    larger of the two). ``sigma_step`` draws sigma from the grid ``{lo, lo +
    step, ..., hi}`` instead of ``U(lo, hi)``; ``sigma_distribution="sqrt_uniform"``
    draws ``sigma = sqrt(U(lo**2, hi**2))`` instead, i.e. uniform variances
    (covariance eigenvalues), BSRGAN's anisotropic rule. Betas are drawn half the time
    from ``U(lo, 1)`` and half from ``U(1, hi)`` (when the range straddles 1).
    With probability ``sinc_prob`` the kernel is a sinc with cutoff ``U(pi/3,
    pi)`` below size 13, else ``U(pi/5, pi)``.
    """

    name = "blur"
    version = 1
    family = "blur"
    categories = {"kernel": KERNEL_LABELS}
    caption_types = (BLUR_CAPTION, RINGING_CAPTION)
    flat_columns = _BLUR_COLUMNS
    param_limits = {
        "kernel": (0, len(KERNEL_LABELS) - 1),
        "kernel_size": (1, MAX_KERNEL_SIZE),
        "sigma_x": (0.0, 50.0),
        "sigma_y": (0.0, 50.0),
        "theta": (-2 * math.pi, 2 * math.pi),
        "beta": (0.1, 10.0),
        "cutoff": (0.0, math.pi),
    }

    kernel_types: tuple[str, ...] = KERNEL_TYPES
    kernel_weights: tuple[float, ...] | None = None
    sigma: tuple[float, float] = (0.2, 3.0)
    sigma_step: float | None = None
    sigma_distribution: str = "uniform"
    rotation: tuple[float, float] = (-math.pi, math.pi)
    beta_generalized: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    kernel_size: tuple[int, int] | str = (7, 21)
    sinc_prob: float = 0.0

    @classmethod
    def caption_type(cls, record: Record) -> CaptionType:
        """A sinc kernel is captioned as ringing, every other kernel as blur."""
        return RINGING_CAPTION if _is_sinc(record) else BLUR_CAPTION

    @classmethod
    def linear_kernel(cls, record: Record) -> torch.Tensor:
        """The record's kernel, as :func:`blur_kernels` builds it for ``apply``."""
        return blur_kernels(int(record["kernel_size"]), cls.params_from_records([record]))[0]

    def __post_init__(self) -> None:
        self.kernel_types = tuple(self.kernel_types)
        if not self.kernel_types or any(t not in KERNEL_TYPES for t in self.kernel_types):
            raise OpError(
                f"blur.kernel_types must be a non-empty subset of {KERNEL_TYPES}, "
                f"got {self.kernel_types!r}"
            )
        if self.kernel_weights is None:
            weights = [REALESRGAN_KERNEL_WEIGHTS[t] for t in self.kernel_types]
        else:
            weights = list(self.kernel_weights)
            if (
                len(weights) != len(self.kernel_types)
                or any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights)
                or any(w < 0 for w in weights)
                or sum(weights) <= 0
            ):
                raise OpError(
                    f"blur.kernel_weights must be {len(self.kernel_types)} non-negative numbers "
                    f"(one per kernel type) with a positive sum, got {self.kernel_weights!r}"
                )
        self._weights = weights
        self.sigma = check_range("blur.sigma", self.sigma, 0.0, 50.0)
        if self.sigma_step is not None and (
            isinstance(self.sigma_step, bool)
            or not isinstance(self.sigma_step, int | float)
            or not 0 < self.sigma_step <= 50
        ):
            raise OpError(
                f"blur.sigma_step must be None or a number in (0, 50], got {self.sigma_step!r}"
            )
        if self.sigma_distribution not in SIGMA_DISTRIBUTIONS:
            raise OpError(
                f"blur.sigma_distribution must be one of {SIGMA_DISTRIBUTIONS}, "
                f"got {self.sigma_distribution!r}"
            )
        if self.sigma_step is not None and self.sigma_distribution != "uniform":
            raise OpError(
                "blur.sigma_step needs blur.sigma_distribution 'uniform' "
                f"(a grid of sigmas), got {self.sigma_distribution!r}"
            )
        self.rotation = check_range("blur.rotation", self.rotation, -2 * math.pi, 2 * math.pi)
        self.beta_generalized = check_range("blur.beta_generalized", self.beta_generalized, 0.1, 10)
        self.beta_plateau = check_range("blur.beta_plateau", self.beta_plateau, 0.1, 10)
        self.sinc_prob = check_prob("blur.sinc_prob", self.sinc_prob)
        if isinstance(self.kernel_size, str):
            if self.kernel_size != "auto":
                raise OpError(
                    f"blur.kernel_size must be 'auto' or an odd [low, high] range, "
                    f"got {self.kernel_size!r}"
                )
            if self.sinc_prob > 0:
                raise OpError(
                    "blur.sinc_prob must be 0 when blur.kernel_size is 'auto' "
                    "(the auto size follows sigma; sinc kernels have none)"
                )
        else:
            self.kernel_size = _check_odd_range("blur.kernel_size", self.kernel_size)

    def _draw_sigma(self, rng: BatchStreams) -> torch.Tensor:
        lo, hi = self.sigma
        if self.sigma_distribution == "sqrt_uniform":
            return torch.sqrt(rng.uniform(lo * lo, hi * hi))
        if self.sigma_step is None:
            return rng.uniform(lo, hi)
        return rng.grid(lo, hi, self.sigma_step)

    @staticmethod
    def _draw_beta(side: torch.Tensor, u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """BasicSR's rule: half U(lo, 1), half U(1, hi) when 1 is in range (so
        plateau's [1, 2] gives beta = 1 half the time)."""
        if not lo <= 1 <= hi:
            return lo + u * (hi - lo)
        return torch.where(side, lo + u * (1 - lo), 1 + u * (hi - 1))

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        use_sinc = rng.bernoulli(self.sinc_prob)
        choice = rng.choice(len(self.kernel_types), self._weights)
        sigma_x, sigma_y = self._draw_sigma(rng), self._draw_sigma(rng)
        theta = rng.uniform(*self.rotation)
        beta_side, beta_u = rng.bernoulli(0.5), rng.uniform(0.0, 1.0)
        cutoff_u = rng.uniform(0.0, 1.0)
        size = None if self.kernel_size == "auto" else _draw_odd_sizes(rng, *self.kernel_size)

        codes = torch.tensor([KERNEL_TYPES.index(t) for t in self.kernel_types])[choice]
        iso = _isin(codes, _ISO_CODES)
        sigma_y = torch.where(iso, sigma_x, sigma_y)
        theta = torch.where(iso, 0.0, theta)
        beta = torch.ones(n, dtype=torch.float64)
        generalized = _isin(codes, _GENERALIZED_CODES)
        plateau = _isin(codes, _PLATEAU_CODES)
        beta = torch.where(
            generalized, self._draw_beta(beta_side, beta_u, *self.beta_generalized), beta
        )
        beta = torch.where(plateau, self._draw_beta(beta_side, beta_u, *self.beta_plateau), beta)
        if size is None:
            size = auto_gaussian_size(torch.maximum(sigma_x, sigma_y), MAX_AUTO_SIZE)
        zero = torch.zeros(n, dtype=torch.float64)
        return {
            "kernel": torch.where(use_sinc, _SINC, codes),
            "kernel_size": size,
            "sigma_x": torch.where(use_sinc, zero, sigma_x),
            "sigma_y": torch.where(use_sinc, zero, sigma_y),
            "theta": torch.where(use_sinc, zero, theta),
            "beta": torch.where(use_sinc, 1.0, beta),
            "cutoff": torch.where(use_sinc, _sinc_cutoffs(cutoff_u, size, None), zero),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        separable, sigma_h, sigma_v = _separable_sigmas(params)
        sizes = params["kernel_size"]
        if bool((sizes == 1).all()):
            return x
        if use_opencv(x, int(sizes.max())):
            # One threaded pass over the batch, each sample with its own kind of filter.
            filters: dict[int, SampleFilter] = {}
            for is_separable in separable.unique().tolist():
                positions = (separable == is_separable).nonzero().flatten()
                sigmas = (sigma_h, sigma_v) if is_separable else None
                kernels = _blur_kernels_at(params, positions, sigmas)
                made = separable_opencv(*kernels) if is_separable else filter2d_opencv(*kernels)
                filters.update(zip(positions.tolist(), made, strict=True))
            return run_sample_filters(x, [filters[i] for i in range(x.shape[0])], clamp=True)

        def run(xs: torch.Tensor, positions: torch.Tensor, is_separable: int) -> torch.Tensor:
            if bool((sizes[positions] == 1).all()):
                return xs
            sigmas = (sigma_h, sigma_v) if is_separable else None
            if use_opencv(xs, int(sizes[positions].max())):  # host kernels for OpenCV
                kernels = _blur_kernels_at(params, positions, sigmas)
            else:
                kernels = _blur_kernels_at(params, positions, sigmas, xs.device)
            if is_separable:
                return filter_separable_per_sample(xs, *kernels, clamp=True)
            return filter2d_per_sample(xs, *kernels, clamp=True)

        return map_groups(x, separable.long(), run)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        separable, sigma_h, sigma_v = _separable_sigmas(params)
        sizes = params["kernel_size"]

        def run(data: torch.Tensor, positions: torch.Tensor, is_separable: int) -> torch.Tensor:
            if bool((sizes[positions] == 1).all()):
                return data
            sub = Canvas(data, x.sizes[positions])
            sigmas = (sigma_h, sigma_v) if is_separable else None
            kernels = _blur_kernels_at(params, positions, sigmas, data.device)
            if is_separable:
                return filter_separable_canvas(sub, *kernels, clamp=True).data
            return filter2d_canvas(sub, *kernels, clamp=True).data

        return x.with_data(map_groups(x.data, separable.long(), run))


def _filter_by_size(
    x: torch.Tensor, sizes: torch.Tensor, build: Callable[[int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """2-D filter every sample with its kernel, built per size by ``build(size, positions)``."""
    if bool((sizes == 1).all()):
        return x
    return filter2d_per_sample(x, kernels_by_size(sizes, build), clamp=True)


def _filter_canvas_by_size(
    x: Canvas, sizes: torch.Tensor, build: Callable[[int, torch.Tensor], torch.Tensor]
) -> Canvas:
    """:func:`_filter_by_size` of a ragged batch on a canvas (one pass)."""
    if bool((sizes == 1).all()):
        return x
    return filter2d_canvas(x, kernels_by_size(sizes, build), clamp=True)


@register
@dataclasses.dataclass
class MotionBlur(_KernelSizeOp):
    """Linear motion blur: an anti-aliased segment of ``length`` pixels at ``angle`` degrees.

    The kernel size is the smallest odd size holding the segment (a smaller
    recorded size crops the segment).
    """

    name = "motion_blur"
    version = 1
    family = "blur"
    caption_types = (CaptionType.single("motion blur", "motion_blur", "length", 1, (7.0, 11.0)),)
    flat_columns = (
        FlatColumn(
            "motion_blur_length",
            "float64",
            "length of the last motion blur's segment, pixels",
            field_value("length"),
        ),
        FlatColumn(
            "motion_blur_angle",
            "float64",
            "direction of the last motion blur, degrees counter-clockwise from +x",
            field_value("angle"),
        ),
    )
    param_limits = {
        "kernel_size": (1, MAX_KERNEL_SIZE),
        "length": (0.0, MAX_KERNEL_SIZE - 1.0),
        "angle": (-360.0, 360.0),
    }

    length: tuple[float, float] = (3.0, 15.0)
    angle: tuple[float, float] = (0.0, 180.0)

    def __post_init__(self) -> None:
        self.length = check_range("motion_blur.length", self.length, 0.0, MAX_KERNEL_SIZE - 1.0)
        self.angle = check_range("motion_blur.angle", self.angle, -360.0, 360.0)

    @classmethod
    def linear_kernel(cls, record: Record) -> torch.Tensor:
        """The record's segment kernel, as ``apply`` builds it."""
        size = int(record["kernel_size"])
        return motion_kernels(size, float(record["length"]), float(record["angle"]))[0]

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        length = rng.uniform(*self.length)
        angle = rng.uniform(*self.angle)
        return {"kernel_size": motion_size(length), "length": length, "angle": angle}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return _filter_by_size(
            x,
            params["kernel_size"],
            lambda size, i: motion_kernels(size, params["length"][i], params["angle"][i]),
        )

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        return _filter_canvas_by_size(
            x,
            params["kernel_size"],
            lambda size, i: motion_kernels(size, params["length"][i], params["angle"][i]),
        )


@register
@dataclasses.dataclass
class DefocusBlur(_KernelSizeOp):
    """Defocus (out-of-focus) blur: an anti-aliased disk of ``radius`` pixels."""

    name = "defocus_blur"
    version = 1
    family = "blur"
    caption_types = (CaptionType.single("defocus blur", "defocus_blur", "radius", 1, (2.0, 3.0)),)
    flat_columns = (
        FlatColumn(
            "defocus_blur_radius",
            "float64",
            "disk radius of the last defocus blur, pixels",
            field_value("radius"),
        ),
    )
    param_limits = {"kernel_size": (1, MAX_KERNEL_SIZE), "radius": (0.0, MAX_KERNEL_SIZE / 2 - 1)}

    radius: tuple[float, float] = (1.0, 4.0)

    def __post_init__(self) -> None:
        self.radius = check_range("defocus_blur.radius", self.radius, 0.0, MAX_KERNEL_SIZE / 2 - 1)

    @classmethod
    def linear_kernel(cls, record: Record) -> torch.Tensor:
        """The record's disk kernel, as ``apply`` builds it."""
        return disk_kernels(int(record["kernel_size"]), float(record["radius"]))[0]

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        radius = rng.uniform(*self.radius)
        return {"kernel_size": disk_size(radius), "radius": radius}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return _filter_by_size(
            x, params["kernel_size"], lambda size, i: disk_kernels(size, params["radius"][i])
        )

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        return _filter_canvas_by_size(
            x, params["kernel_size"], lambda size, i: disk_kernels(size, params["radius"][i])
        )


@register
@dataclasses.dataclass
class Ringing(_KernelSizeOp):
    """Ringing and overshoot: a circular sinc low-pass (Real-ESRGAN's final sinc filter).

    ``cutoff`` (radians per pixel) defaults to Real-ESRGAN's size rule
    (``U(pi/3, pi)`` below size 13, else ``U(pi/5, pi)``); DePLSR uses
    ``cutoff=(pi/3, pi)``. A lower cutoff blurs and rings more.
    """

    name = "ringing"
    version = 1
    family = "blur"
    caption_types = (RINGING_CAPTION,)
    flat_columns = (
        FlatColumn("ringing", "bool", _RINGING_DOC, lambda rec: True),
        FlatColumn("ringing_cutoff", "float64", _CUTOFF_DOC, field_value("cutoff")),
    )
    param_limits = {"kernel_size": (1, MAX_KERNEL_SIZE), "cutoff": (0.0, math.pi)}

    kernel_size: tuple[int, int] = (7, 21)
    cutoff: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.kernel_size = _check_odd_range("ringing.kernel_size", self.kernel_size)
        self.cutoff = _check_cutoff("ringing.cutoff", self.cutoff)

    @classmethod
    def linear_kernel(cls, record: Record) -> torch.Tensor:
        """The record's sinc kernel, as ``apply`` builds it."""
        return sinc_kernels(int(record["kernel_size"]), float(record["cutoff"]))[0]

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        size = _draw_odd_sizes(rng, *self.kernel_size)
        cutoff = _sinc_cutoffs(rng.uniform(0.0, 1.0), size, self.cutoff)
        return {"kernel_size": size, "cutoff": cutoff}

    @staticmethod
    def _kernels_on(device: torch.device, params: Params) -> torch.Tensor:
        """All samples' kernels built on ``device`` in one computation."""
        sizes, cutoff = params["kernel_size"], params["cutoff"]
        return kernels_at_fixed_sizes(
            sizes,
            lambda k, i: sinc_kernels(
                k, cutoff[i].to(device, non_blocking=True), sizes[i].to(device, non_blocking=True)
            ),
        )

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        sizes = params["kernel_size"]
        if bool((sizes == 1).all()):
            return x
        if use_opencv(x, int(sizes.max())):
            return _filter_by_size(
                x, sizes, lambda size, i: sinc_kernels(size, params["cutoff"][i])
            )
        return filter2d_per_sample(x, self._kernels_on(x.device, params), clamp=True)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        if bool((params["kernel_size"] == 1).all()):
            return x
        return filter2d_canvas(x, self._kernels_on(x.data.device, params), clamp=True)

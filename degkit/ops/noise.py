"""Additive and impulsive noise: Gaussian, Poisson, speckle, salt-and-pepper.

Units: images are in ``[0, 1]``; ``gaussian_noise.sigma`` is a standard
deviation on the 0-255 scale (Real-ESRGAN's convention), so the field added is
``sigma / 255 * n`` with ``n ~ N(0, 1)``. ``speckle_noise.sigma`` is relative:
``x + x * sigma * n``. ``salt_pepper_noise.amount`` is the probability that a
pixel (all its channels) is replaced, by white with probability
``salt_ratio`` and by black otherwise.

``poisson_noise`` follows Real-ESRGAN: per sample, ``q`` is the image rounded
to 8 bits (its BT.601 luma when ``gray``), ``vals = 2 ** ceil(log2(k))`` where
``k`` is the number of distinct 8-bit levels in ``q``, and the noise is
``(Poisson(q * vals) / vals - q) * scale``, added to the image (a gray noise
is added to every channel). Its variance is ``scale**2 * q / vals``: it grows
with brightness, and a flat image (few levels, small ``vals``) gets strong noise.
Counts are drawn by inversion: one 32-bit draw ``u`` per pixel, and the count
is the smallest ``k`` whose Poisson CDF exceeds ``u / 2**32`` (each count's
probability is the exact one to within ``2**-32``). The CDFs of the 256 levels
at the 9 possible ``vals`` are built once per device with SciPy, in one sorted
table that a single ``searchsorted`` reads for the whole batch.

Gray noise is one field shared by the channels of one sample; different
samples always get different fields. ``gaussian_noise`` can also be
channel-correlated (BSRGAN, ``correlated_prob``; recorded as ``correlated``):
the colour field is mixed by a random matrix drawn from the same seed, giving
covariance ``U^T D U`` (``D`` uniform eigenvalues, ``U`` random orthogonal).
Every field is regenerated in ``apply`` from the sample's recorded ``seed``
by :mod:`degkit.ops.fields`, on the image's device (no copy through the host),
so it never depends on batch size, batch position or device: the integer
draws, Poisson counts and salt-and-pepper masks are the same bits on the CPU
and on CUDA, and Gaussian fields agree to float32 rounding. Outputs are
clamped to ``[0, 1]``; all four ops pass gradients to the image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import torch
from kornia.color import rgb_to_grayscale

from degkit.ops.base import SEED_LIMITS, Op, OpError, Params, check_prob, check_range, register
from degkit.ops.canvas import Canvas, valid_mask
from degkit.ops.fields import (
    canvas_counters,
    draws_at,
    field_draws,
    field_keys,
    field_normals,
    field_uniforms,
    normals_at,
    uniforms_at,
)
from degkit.ops.labels import CaptionType, FlatColumn, field_value
from degkit.ops.poisson_inversion import poisson_counts
from degkit.ops.quantize import level_values, to_uint8
from degkit.rng import BatchStreams

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "SaltPepperNoise",
    "correlation_mixing",
    "gaussian_fields",
    "poisson_fields",
]


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample parameter as an ``N x 1 x 1 x 1`` tensor on ``x``'s device and dtype."""
    return values.to(device=x.device, dtype=x.dtype, non_blocking=True).view(-1, 1, 1, 1)


def _orthonormal_columns(a: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt on the columns of each ``C x C`` matrix (float64): ``Q`` of ``A = QR``
    with a positive diagonal in ``R``, the same on every device."""
    columns: list[torch.Tensor] = []
    for j in range(a.shape[-1]):
        v = a[..., j]
        for q in columns:
            v = v - (q * v).sum(-1, keepdim=True) * q
        columns.append(v / v.norm(dim=-1, keepdim=True))
    return torch.stack(columns, dim=-1)


def correlation_mixing(seeds: torch.Tensor, channels: int, device: torch.device) -> torch.Tensor:
    """``N x C x C`` float32 matrices ``M`` making ``M z`` channel-correlated (BSRGAN's rule).

    The covariance is ``U^T D U`` with ``D = diag(U(0, 1)^C)`` and ``U`` the
    orthogonal factor of a ``C x C`` matrix of ``U(0, 1)`` entries, so
    ``M = U^T sqrt(D)``. The ``C + C * C`` uniforms come from the field seed's
    key after one more mixing step (a stream apart from the field's).
    """
    uniforms = field_uniforms(
        field_keys(field_keys(seeds, device), device), channels * (channels + 1)
    )
    eigen, square = uniforms[:, :channels], uniforms[:, channels:].view(-1, channels, channels)
    orthogonal = _orthonormal_columns(square)
    return (orthogonal.transpose(1, 2) * eigen.sqrt().unsqueeze(1)).float()


def _gray_and_colour(
    gray: torch.Tensor,
    shape: tuple[int, int, int, int],
    device: torch.device,
    make: Callable[[torch.Tensor | None, bool], torch.Tensor],
) -> torch.Tensor:
    """Fields of a batch whose samples are gray (one plane) or colour (``C`` planes).

    ``make(positions, is_gray)`` returns the fields of the samples at
    ``positions`` (None: the whole batch), ``1`` or ``C`` planes each; gray
    samples get their plane repeated over the channels.
    """
    n, c, h, w = shape
    groups = [(torch.nonzero(gray == flag).squeeze(1), flag) for flag in (False, True)]
    groups = [(positions, flag) for positions, flag in groups if positions.numel()]
    if len(groups) == 1:
        return make(None, groups[0][1]).expand(shape)
    fields = torch.empty(shape, dtype=torch.float32, device=device)
    for positions, flag in groups:
        fields[positions.to(device, non_blocking=True)] = make(positions, flag)
    return fields


def _planes(gray: torch.Tensor, channels: int, device: torch.device) -> torch.Tensor:
    """``N x C``: the field plane each channel reads (0 for every channel of a gray sample)."""
    planes = torch.arange(channels, device=device).unsqueeze(0)
    return torch.where(gray.to(device, non_blocking=True).view(-1, 1), 0, planes)


def gaussian_fields(
    seeds: torch.Tensor,
    gray: torch.Tensor,
    shape: tuple[int, int, int],
    device: torch.device,
    correlated: torch.Tensor | None = None,
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standard normal fields, ``N x C x H x W`` float32 on ``device``, one per recorded seed.

    A gray sample's field is its first ``H x W`` normals, repeated over its
    channels; a colour one is its first ``C x H x W``; a correlated one mixes
    its channels with :func:`correlation_mixing`. With ``sizes`` (``N x 2``
    on ``device``) the fields are those of samples ``h x w`` on an ``H x W``
    canvas (see :mod:`degkit.ops.canvas`).
    """
    c, h, w = shape
    n = len(seeds)
    keys = field_keys(seeds, device)

    def normals(positions: torch.Tensor | None, is_gray: bool) -> torch.Tensor:
        planes = 1 if is_gray else c
        chosen = keys if positions is None else keys[positions.to(device, non_blocking=True)]
        return field_normals(chosen, planes * h * w).reshape(-1, planes, h, w)

    if sizes is None:
        fields = _gray_and_colour(gray, (n, c, h, w), device, normals)
    else:
        fields = normals_at(keys, canvas_counters(sizes, _planes(gray, c, device), h, w))
    if correlated is not None and bool(correlated.any()):
        mixed = torch.einsum("nij,njhw->nihw", correlation_mixing(seeds, c, device), fields)
        fields = torch.where(
            correlated.to(device, non_blocking=True).view(n, 1, 1, 1), mixed, fields
        )
    return fields


def _distinct_levels(levels: torch.Tensor) -> torch.Tensor:
    """``N x 1``: how many distinct values each row of ``N x M`` uint8 levels holds.

    ``bincount`` on the CPU (fast there); elsewhere a ``scatter`` (CUDA's
    ``bincount`` reads the input's range back to the host).
    """
    n = levels.shape[0]
    if levels.device.type == "cpu":
        offsets = torch.arange(n, dtype=torch.int32).mul_(256).unsqueeze(1)
        counts = torch.bincount(levels.int().add_(offsets).view(-1), minlength=256 * n)
        return counts.view(n, 256).gt(0).sum(1, keepdim=True)
    present = torch.zeros(n, 256, dtype=torch.int32, device=levels.device)
    return present.scatter_(1, levels.long(), 1).sum(1, keepdim=True)


def _poisson_from_levels(
    levels: torch.Tensor, counted: torch.Tensor, draws: torch.Tensor
) -> torch.Tensor:
    """Real-ESRGAN's field ``Poisson(q vals) / vals - q`` of uint8 levels ``q``, with ``vals``
    from the distinct levels of ``counted`` (the sample's own pixels) and one draw per level."""
    n = levels.shape[0]
    distinct = _distinct_levels(counted.reshape(n, -1))
    # ceil(log2(distinct)) for 1..256, counted exactly: how many of 1, 2, 4, ..., 128 are exceeded
    exponents = (distinct > 2 ** torch.arange(8, device=levels.device)).sum(1).view(n, 1, 1, 1)
    counts = poisson_counts(levels, draws, exponents.expand_as(levels))
    vals = torch.pow(2, exponents).float()  # a power of two: counts / vals is exact
    values = level_values(levels.device).index_select(0, levels.reshape(-1).int())
    return counts.float().div_(vals).sub_(values.view(levels.shape))


def _poisson_planes(x: torch.Tensor, seeds: torch.Tensor, is_gray: bool) -> torch.Tensor:
    """Poisson fields at scale 1 of samples that are all gray (one plane) or all colour."""
    levels = to_uint8(rgb_to_grayscale(x) if is_gray else x)
    draws = field_draws(field_keys(seeds, x.device), levels[0].numel()).view(levels.shape)
    return _poisson_from_levels(levels, levels, draws)


def _poisson_canvas(
    x: torch.Tensor, seeds: torch.Tensor, gray: torch.Tensor, sizes: torch.Tensor
) -> torch.Tensor:
    """Poisson fields of samples ``sizes[i]`` on a canvas, gray and colour in one pass."""
    n, c, h, w = x.shape
    gray_rows = gray.to(x.device, non_blocking=True).view(n, 1, 1, 1)
    levels = to_uint8(torch.where(gray_rows, rgb_to_grayscale(x).expand_as(x), x))
    # pixels outside a sample repeat its first level, so they add no distinct level
    counted = torch.where(valid_mask(sizes, h, w), levels, levels[:, :1, :1, :1])
    keys = field_keys(seeds, x.device)
    draws = draws_at(keys, canvas_counters(sizes, _planes(gray, c, x.device), h, w))
    return _poisson_from_levels(levels, counted, draws)


def poisson_fields(
    x: torch.Tensor, seeds: torch.Tensor, gray: torch.Tensor, sizes: torch.Tensor | None = None
) -> torch.Tensor:
    """Real-ESRGAN Poisson noise at scale 1, ``N x C x H x W`` float32 on ``x``'s device.

    ``q`` is the image rounded to 8 bits (BT.601 luma for gray samples);
    ``vals = 2 ** ceil(log2(distinct levels of q))`` per sample; the field is
    ``Poisson(q * vals) / vals - q`` with one 32-bit draw per pixel of ``q``
    (a gray sample draws one plane and repeats it over its channels). With
    ``sizes`` (``N x 2`` on the device), ``x`` is a canvas of samples ``h x w``.
    """
    x = x.detach().float()
    if sizes is not None:
        return _poisson_canvas(x, seeds, gray, sizes)

    def planes(positions: torch.Tensor | None, is_gray: bool) -> torch.Tensor:
        if positions is None:
            return _poisson_planes(x, seeds, is_gray)
        return _poisson_planes(
            x[positions.to(x.device, non_blocking=True)], seeds[positions], is_gray
        )

    return _gray_and_colour(gray, tuple(x.shape), x.device, planes)


NOISE_KINDS = ("gaussian", "poisson", "speckle", "salt_pepper")


def _noise_columns(kind: str, level: str) -> tuple[FlatColumn, ...]:
    """The columns every noise op shares; ``level`` is the record field of its strength."""
    return (
        FlatColumn(
            "noise_count", "int64", "number of noise ops that ran", lambda rec: 1, count=True
        ),
        FlatColumn(
            "noise_kind",
            "class_label",
            "kind of the last noise op (the one closest to the output)",
            lambda rec: kind,
            labels=NOISE_KINDS,
        ),
        FlatColumn(
            "noise_level",
            "float64",
            "strength of the last noise op (closest to the output) as drawn (the noise left in "
            "the output, per type: *_noise_level): sigma (0-255) for gaussian, scale for "
            "poisson, relative sigma for speckle, pixel fraction for salt_pepper",
            field_value(level),
        ),
        FlatColumn(
            "noise_gray",
            "bool",
            "the last noise op drew one field for all channels (False for salt_pepper)",
            lambda rec: bool(rec.get("gray", False)),
        ),
    )


class _FieldNoise(Op):
    """Noise drawn as (level, gray flag, field seed) per sample; ``level`` names the
    strength field (``sigma`` or ``scale``), valid in ``[0, level_max]``."""

    family = "noise"
    level: ClassVar[str]
    level_max: ClassVar[float]
    gray_prob: float

    def __post_init__(self) -> None:
        field = f"{self.name}.{self.level}"
        setattr(self, self.level, check_range(field, getattr(self, self.level), 0, self.level_max))
        self.gray_prob = check_prob(f"{self.name}.gray_prob", self.gray_prob)

    def _draw_level(self, rng: BatchStreams) -> torch.Tensor:
        return rng.uniform(*getattr(self, self.level))

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            self.level: self._draw_level(rng),
            "gray": rng.bernoulli(self.gray_prob),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return self._add(x, params, None)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        return x.with_data(self._add(x.data, params, x.device_sizes()))

    def _add(self, x: torch.Tensor, params: Params, sizes: torch.Tensor | None) -> torch.Tensor:
        """The noisy batch; ``sizes`` (on the device) when ``x`` is a canvas's data."""
        raise NotImplementedError


@register
@dataclasses.dataclass
class GaussianNoise(_FieldNoise):
    """Additive Gaussian noise, ``sigma`` on the 0-255 scale, gray with ``gray_prob``.

    ``sigma_step`` draws sigma from the grid ``{lo, lo + step, ..., hi}``
    instead of ``U(lo, hi)`` (BSRGAN: whole levels 2..25). Channel-correlated
    samples (``correlated_prob``) use ``correlated_sigma`` when it is set
    (BSRGAN scales its correlated covariance by a fixed 25), else the drawn sigma.
    """

    name = "gaussian_noise"
    version = 1
    caption_types = (
        CaptionType.single("gaussian noise", "gaussian_noise", "sigma", 1, (10.0, 20.0)),
    )
    flat_columns = _noise_columns("gaussian", "sigma")
    level, level_max = "sigma", 255.0
    param_limits = {"sigma": (0.0, 255.0), "gray": (0, 1), "seed": SEED_LIMITS}
    optional_params = {"correlated": (0, 1)}  # absent: no sample is correlated

    sigma: tuple[float, float] = (1.0, 30.0)
    gray_prob: float = 0.4
    correlated_prob: float = 0.0
    sigma_step: float | None = None
    correlated_sigma: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("sigma_step", "correlated_sigma"):
            value = getattr(self, field)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 255
            ):
                raise OpError(
                    f"gaussian_noise.{field} must be None or a number in (0, 255], got {value!r}"
                )
        self.correlated_prob = check_prob("gaussian_noise.correlated_prob", self.correlated_prob)
        if self.gray_prob + self.correlated_prob > 1 + 1e-9:
            raise OpError(
                "gaussian_noise.gray_prob + gaussian_noise.correlated_prob must be <= 1, "
                f"got {self.gray_prob + self.correlated_prob:g}"
            )

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        params = super().sample(rng, n, context)
        colour_left = 1.0 - self.gray_prob
        p_correlated = self.correlated_prob / colour_left if colour_left > 0 else 0.0
        params["correlated"] = ~params["gray"] & rng.bernoulli(min(1.0, p_correlated))
        if self.correlated_sigma is not None:
            params["sigma"] = torch.where(
                params["correlated"], float(self.correlated_sigma), params["sigma"]
            )
        return params

    def _draw_level(self, rng: BatchStreams) -> torch.Tensor:
        if self.sigma_step is None:
            return super()._draw_level(rng)
        return rng.grid(*self.sigma, self.sigma_step)

    def _add(self, x: torch.Tensor, params: Params, sizes: torch.Tensor | None) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        correlated = params.get("correlated")
        field = gaussian_fields(params["seed"], params["gray"], shape, x.device, correlated, sizes)
        return (x + field * _per_sample(params["sigma"] / 255.0, x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class PoissonNoise(_FieldNoise):
    """Real-ESRGAN's Poisson (shot) noise times ``scale``, gray with ``gray_prob``."""

    name = "poisson_noise"
    version = 1
    caption_types = (CaptionType.single("poisson noise", "poisson_noise", "scale", 1, (1.0, 2.0)),)
    flat_columns = _noise_columns("poisson", "scale")
    level, level_max = "scale", 10.0
    param_limits = {"scale": (0.0, 10.0), "gray": (0, 1), "seed": SEED_LIMITS}

    scale: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def _add(self, x: torch.Tensor, params: Params, sizes: torch.Tensor | None) -> torch.Tensor:
        field = poisson_fields(x, params["seed"], params["gray"], sizes)
        return (x + field * _per_sample(params["scale"], x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class SpeckleNoise(_FieldNoise):
    """Multiplicative noise ``x + x * sigma * n``, gray with ``gray_prob``."""

    name = "speckle_noise"
    version = 1
    caption_types = (
        CaptionType.single("speckle noise", "speckle_noise", "sigma", 2, (0.08, 0.14)),
    )
    flat_columns = _noise_columns("speckle", "sigma")
    level, level_max = "sigma", 1.0
    param_limits = {"sigma": (0.0, 1.0), "gray": (0, 1), "seed": SEED_LIMITS}

    sigma: tuple[float, float] = (0.04, 0.2)
    gray_prob: float = 0.4

    def _add(self, x: torch.Tensor, params: Params, sizes: torch.Tensor | None) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        field = gaussian_fields(params["seed"], params["gray"], shape, x.device, sizes=sizes)
        return (x + x * field * _per_sample(params["sigma"], x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class SaltPepperNoise(Op):
    """Impulse noise: a fraction ``amount`` of pixels set to white (``salt_ratio``) or black."""

    name = "salt_pepper_noise"
    version = 1
    family = "noise"
    caption_types = (
        CaptionType.single("salt and pepper noise", "salt_pepper_noise", "amount", 3, (0.01, 0.03)),
    )
    flat_columns = _noise_columns("salt_pepper", "amount")
    param_limits = {"amount": (0.0, 1.0), "salt_ratio": (0.0, 1.0), "seed": SEED_LIMITS}

    amount: tuple[float, float] = (0.001, 0.05)
    salt_ratio: tuple[float, float] = (0.4, 0.6)

    def __post_init__(self) -> None:
        self.amount = check_range("salt_pepper_noise.amount", self.amount, 0.0, 1.0)
        self.salt_ratio = check_range("salt_pepper_noise.salt_ratio", self.salt_ratio, 0.0, 1.0)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "amount": rng.uniform(*self.amount),
            "salt_ratio": rng.uniform(*self.salt_ratio),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n, _, h, w = x.shape
        u = field_uniforms(field_keys(params["seed"], x.device), h * w).view(n, 1, h, w)
        return self._impulses(x, params, u)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        n, _, h, w = x.data.shape
        planes = torch.zeros(n, 1, dtype=torch.int64, device=x.data.device)
        counters = canvas_counters(x.device_sizes(), planes, h, w)
        u = uniforms_at(field_keys(params["seed"], x.data.device), counters)
        return x.with_data(self._impulses(x.data, params, u))

    @staticmethod
    def _impulses(x: torch.Tensor, params: Params, u: torch.Tensor) -> torch.Tensor:
        """One uniform per pixel: below amount * salt_ratio -> salt, below amount -> pepper."""
        amount = _per_sample(params["amount"], u)
        salt = u < amount * _per_sample(params["salt_ratio"], u)
        pepper = (u < amount) & ~salt
        return x.masked_fill(salt, 1.0).masked_fill(pepper, 0.0)

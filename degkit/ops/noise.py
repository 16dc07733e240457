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
Counts are drawn by inversion: one uniform per pixel from the sample's field
generator, looked up in the exact Poisson CDF of its level (there are at most
256 rates per ``vals``; tables are built once with SciPy and cached, with a
guide table that makes a lookup take about one step). This is the same
distribution as NumPy's ``poisson``, drawn from uniforms so it replays from the seed.

Gray noise is one field shared by the channels of one sample; different
samples always get different fields. ``gaussian_noise`` can also be
channel-correlated (BSRGAN, ``correlated_prob``; recorded as ``correlated``):
the colour field is mixed by a random matrix drawn from the same seed, giving
covariance ``U^T D U`` (``D`` uniform eigenvalues, ``U`` random orthogonal).
Every field is regenerated in ``apply`` from the sample's recorded ``seed``
with :func:`degkit.rng.field_generator` (NumPy SFC64 on the CPU, one
vectorised draw per sample) and moved to the image's device, so it never
depends on batch size, batch position or device. Outputs are clamped to
``[0, 1]``; all four ops pass gradients to the image.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import numpy as np
import torch
from kornia.color import rgb_to_grayscale
from scipy import special

from degkit.ops.base import SEED_LIMITS, Op, OpError, Params, check_prob, check_range, register
from degkit.ops.labels import CaptionType, FlatColumn, field_value
from degkit.ops.quantize import to_uint8
from degkit.ops.threads import map_in_threads
from degkit.rng import BatchStreams, field_generator

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "SaltPepperNoise",
    "correlation_mixing",
    "gaussian_fields",
    "poisson_fields",
    "poisson_by_inversion",
]

"""``param_limits`` entry of a recorded field seed (any signed 64-bit integer)."""


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample parameter as an ``N x 1 x 1 x 1`` tensor on ``x``'s device and dtype."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def correlation_mixing(rng: np.random.Generator, channels: int) -> np.ndarray:
    """A random ``C x C`` matrix ``M`` making ``M z`` channel-correlated (BSRGAN's rule).

    The covariance is ``U^T D U`` with ``D = diag(U(0, 1)^C)`` and ``U`` the
    orthogonal factor of a uniform random matrix, so ``M = U^T sqrt(D)``.
    """
    eigen = rng.random(channels)
    orthogonal, _ = np.linalg.qr(rng.random((channels, channels)))
    return orthogonal.T @ np.diag(np.sqrt(eigen))


def gaussian_fields(
    seeds: torch.Tensor,
    gray: torch.Tensor,
    shape: tuple[int, int, int],
    correlated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standard normal fields, ``N x C x H x W`` float32 on the CPU, one per recorded seed.

    A gray sample draws one ``H x W`` plane and repeats it over its channels; a
    correlated one mixes its channels with :func:`correlation_mixing`, drawn
    from the same seed after the field.
    """
    c, h, w = shape
    fields = np.empty((len(seeds), c, h, w), dtype=np.float32)
    seed_list, gray_list = seeds.tolist(), gray.tolist()
    mixed = [False] * len(seed_list) if correlated is None else correlated.tolist()

    def draw(i: int) -> None:
        planes = 1 if gray_list[i] else c
        rng = field_generator(seed_list[i])
        fields[i] = rng.standard_normal((planes, h, w), dtype=np.float32)
        if mixed[i] and not gray_list[i]:
            mixing = correlation_mixing(rng, c).astype(np.float32)
            fields[i] = np.tensordot(mixing, fields[i], axes=1)

    map_in_threads(draw, range(len(seed_list)))
    return torch.from_numpy(fields)


@functools.cache
def _poisson_tables(vals: int) -> tuple[np.ndarray, np.ndarray]:
    """CDF and guide tables of ``Poisson(level / 255 * vals)`` for the 256 8-bit levels.

    Row ``l`` of the CDF (``256 x K``) holds ``P(X <= k)``, its last entry set
    to 1 (the tail cut off is below 1e-30). ``[0, 1)`` is cut into ``B``
    equal buckets, ``B`` a power of two (so ``u * B`` is exact) of at least
    ``4 K``. Guide entry ``(l, j)`` is the first ``k`` whose CDF exceeds
    ``j / B``, stored as ``-1 - k`` when the next bucket's first ``k`` differs
    (a CDF step may fall inside bucket ``j``, so ``u`` must be compared).
    """
    rates = np.arange(256) / 255.0 * vals
    size = int(vals + 12 * math.sqrt(vals) + 30)
    cdf = special.pdtr(np.arange(size)[None, :], rates[:, None])  # Poisson CDF
    cdf[:, -1] = 1.0
    buckets = 4 << (size - 1).bit_length()
    # first[l, j] = #{k : cdf[l, k] <= j / B}, and cdf <= j / B iff ceil(cdf * B) <= j
    # (exact: B is a power of two): count each row's ceilings, then accumulate.
    steps = np.ceil(cdf * buckets).astype(np.intp) + (buckets + 1) * np.arange(256)[:, None]
    first = np.bincount(steps.ravel(), minlength=256 * (buckets + 1))
    first = np.minimum(first.reshape(256, buckets + 1).cumsum(axis=1), size - 1)
    mixed = np.zeros(first.shape, dtype=bool)
    mixed[:, :-1] = first[:, 1:] > first[:, :-1]
    return cdf, np.where(mixed, -1 - first, first).astype(np.int16)


def poisson_by_inversion(levels: np.ndarray, uniforms: np.ndarray, vals: int) -> np.ndarray:
    """Poisson counts of rate ``levels / 255 * vals``, by inverting the CDF at ``uniforms``.

    ``levels`` are uint8, ``uniforms`` in ``[0, 1)`` of the same shape; the count
    is the smallest ``k`` with ``P(X <= k) > u`` (SciPy's ``poisson.ppf(u)``).
    A uniform's guide entry is its count unless a CDF step falls inside its
    bucket (a few percent); those are compared with the CDF, most settle in
    one step, and the rest (tail buckets span many counts) are found by
    bisection up to the next bucket's first count.
    """
    cdf, guide = _poisson_tables(vals)
    size, span = cdf.shape[1], guide.shape[1]
    flat_cdf, flat_guide = cdf.ravel(), guide.ravel()
    u = uniforms.ravel()
    level = levels.ravel().astype(np.intp)
    guide_at = level * span + (u * (span - 1)).astype(np.intp)
    counts = flat_guide[guide_at].astype(np.intp)
    mixed = np.flatnonzero(counts < 0)
    u_mixed, rows = u[mixed], level[mixed] * size
    k = -1 - counts[mixed]
    k += flat_cdf[rows + k] <= u_mixed
    behind = np.flatnonzero(flat_cdf[rows + k] <= u_mixed)
    if behind.size:
        upper = flat_guide[guide_at[mixed[behind]] + 1].astype(np.intp)
        low, high = k[behind] + 1, np.where(upper < 0, -1 - upper, upper)
        u_behind, rows_behind = u_mixed[behind], rows[behind]
        while (open_ := low < high).any():
            middle = (low + high) // 2
            right = flat_cdf[rows_behind + middle] <= u_behind
            low = np.where(open_ & right, middle + 1, low)
            high = np.where(open_ & ~right, middle, high)
        k[behind] = low
    counts[mixed] = k
    return counts.reshape(levels.shape)


def poisson_fields(x: torch.Tensor, seeds: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """Real-ESRGAN Poisson noise at scale 1, ``N x C x H x W`` float32 on the CPU.

    Computed from the image copied to the CPU, so the field is the same on any
    device. The 8-bit levels (luma for gray samples) are rounded for the whole
    batch at once; then each sample counts its levels, draws its uniforms from
    its own generator and inverts them, spread over :func:`map_in_threads`
    (NumPy only, so the threads run in parallel).
    """
    x_cpu = x.detach().to("cpu", torch.float32)
    n, c, h, w = x_cpu.shape
    seed_list, gray_list = seeds.tolist(), gray.tolist()
    levels = list(to_uint8(x_cpu).numpy())
    gray_rows = [i for i in range(n) if gray_list[i]]
    if gray_rows:
        luma = to_uint8(rgb_to_grayscale(x_cpu[gray_rows])).numpy()
        for i, plane in zip(gray_rows, luma, strict=True):
            levels[i] = plane
    fields = np.empty((n, c, h, w), dtype=np.float32)

    def draw(i: int) -> None:
        level = levels[i]
        distinct = np.count_nonzero(np.bincount(level.ravel(), minlength=256))
        vals = 2 ** math.ceil(math.log2(distinct))
        counts = poisson_by_inversion(
            level, field_generator(seed_list[i]).random(level.shape), vals
        )
        fields[i] = counts / vals - level / 255.0

    map_in_threads(draw, range(n))
    return torch.from_numpy(fields)


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

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        correlated = params.get("correlated")
        field = gaussian_fields(params["seed"], params["gray"], shape, correlated).to(x.device)
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

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        field = poisson_fields(x, params["seed"], params["gray"]).to(x.device)
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

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        field = gaussian_fields(params["seed"], params["gray"], tuple(x.shape[1:])).to(x.device)
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
        # One uniform per pixel: below amount * salt_ratio -> salt, below amount -> pepper.
        u = np.stack([field_generator(s).random((1, h, w)) for s in params["seed"].tolist()])
        u = torch.from_numpy(u)
        amount = params["amount"].double().view(n, 1, 1, 1)
        salt = (u < amount * params["salt_ratio"].double().view(n, 1, 1, 1)).to(x.device)
        pepper = (u < amount).to(x.device) & ~salt
        return x.masked_fill(salt, 1.0).masked_fill(pepper, 0.0)

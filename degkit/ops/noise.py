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

Gray noise is one field shared by the channels of one sample; different
samples always get different fields. Every field is regenerated in ``apply``
from the sample's recorded ``seed`` with :func:`degkit.rng.field_generator`
(NumPy Philox on the CPU, one vectorised draw per sample) and moved to the
image's device, so it never depends on batch size, batch position or device.
Outputs are clamped to ``[0, 1]``; all four ops pass gradients to the image.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from kornia.color import rgb_to_grayscale

from degkit.ops.base import SEED_LIMITS, Op, Params, check_prob, check_range, register
from degkit.ops.quantize import to_uint8
from degkit.ops.threads import map_in_threads
from degkit.rng import BatchStreams, field_generator

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "SpeckleNoise",
    "SaltPepperNoise",
    "gaussian_fields",
    "poisson_fields",
]

"""``param_limits`` entry of a recorded field seed (any signed 64-bit integer)."""


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample parameter as an ``N x 1 x 1 x 1`` tensor on ``x``'s device and dtype."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def gaussian_fields(
    seeds: torch.Tensor, gray: torch.Tensor, shape: tuple[int, int, int]
) -> torch.Tensor:
    """Standard normal fields, ``N x C x H x W`` float32 on the CPU, one per recorded seed.

    A gray sample draws one ``H x W`` plane and repeats it over its channels.
    """
    c, h, w = shape
    fields = np.empty((len(seeds), c, h, w), dtype=np.float32)
    seed_list, gray_list = seeds.tolist(), gray.tolist()

    def draw(i: int) -> None:
        planes = 1 if gray_list[i] else c
        fields[i] = field_generator(seed_list[i]).standard_normal((planes, h, w), dtype=np.float32)

    map_in_threads(draw, range(len(seed_list)))
    return torch.from_numpy(fields)


def poisson_fields(x: torch.Tensor, seeds: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """Real-ESRGAN Poisson noise at scale 1, ``N x C x H x W`` float32 on the CPU.

    Computed from the image copied to the CPU, so the field is the same on any device.
    """
    x_cpu = x.detach().to("cpu", torch.float32)
    n, c, h, w = x_cpu.shape
    fields = np.empty((n, c, h, w), dtype=np.float32)
    seed_list, gray_list = seeds.tolist(), gray.tolist()
    sources = [
        rgb_to_grayscale(x_cpu[i : i + 1])[0] if gray_list[i] else x_cpu[i] for i in range(n)
    ]

    def draw(i: int) -> None:
        levels = to_uint8(sources[i]).numpy()
        distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
        vals = 2.0 ** math.ceil(math.log2(distinct))
        q = levels.astype(np.float64) / 255.0
        counts = field_generator(seed_list[i]).poisson(q * vals)
        fields[i] = counts / vals - q

    map_in_threads(draw, range(n))
    return torch.from_numpy(fields)


@register
@dataclasses.dataclass
class GaussianNoise(Op):
    """Additive Gaussian noise, ``sigma`` on the 0-255 scale, gray with ``gray_prob``."""

    name = "gaussian_noise"
    family = "noise"
    param_limits = {"sigma": (0.0, 255.0), "gray": (0, 1), "seed": SEED_LIMITS}

    sigma: tuple[float, float] = (1.0, 30.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        self.sigma = check_range("gaussian_noise.sigma", self.sigma, 0.0, 255.0)
        self.gray_prob = check_prob("gaussian_noise.gray_prob", self.gray_prob)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "sigma": rng.uniform(*self.sigma),
            "gray": rng.bernoulli(self.gray_prob),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        field = gaussian_fields(params["seed"], params["gray"], tuple(x.shape[1:])).to(x.device)
        return (x + field * _per_sample(params["sigma"] / 255.0, x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class PoissonNoise(Op):
    """Real-ESRGAN's Poisson (shot) noise times ``scale``, gray with ``gray_prob``."""

    name = "poisson_noise"
    family = "noise"
    param_limits = {"scale": (0.0, 10.0), "gray": (0, 1), "seed": SEED_LIMITS}

    scale: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        self.scale = check_range("poisson_noise.scale", self.scale, 0.0, 10.0)
        self.gray_prob = check_prob("poisson_noise.gray_prob", self.gray_prob)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "scale": rng.uniform(*self.scale),
            "gray": rng.bernoulli(self.gray_prob),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        field = poisson_fields(x, params["seed"], params["gray"]).to(x.device)
        return (x + field * _per_sample(params["scale"], x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class SpeckleNoise(Op):
    """Multiplicative noise ``x + x * sigma * n``, gray with ``gray_prob``."""

    name = "speckle_noise"
    family = "noise"
    param_limits = {"sigma": (0.0, 1.0), "gray": (0, 1), "seed": SEED_LIMITS}

    sigma: tuple[float, float] = (0.04, 0.2)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        self.sigma = check_range("speckle_noise.sigma", self.sigma, 0.0, 1.0)
        self.gray_prob = check_prob("speckle_noise.gray_prob", self.gray_prob)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "sigma": rng.uniform(*self.sigma),
            "gray": rng.bernoulli(self.gray_prob),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        field = gaussian_fields(params["seed"], params["gray"], tuple(x.shape[1:])).to(x.device)
        return (x + x * field * _per_sample(params["sigma"], x)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class SaltPepperNoise(Op):
    """Impulse noise: a fraction ``amount`` of pixels set to white (``salt_ratio``) or black."""

    name = "salt_pepper_noise"
    family = "noise"
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

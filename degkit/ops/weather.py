"""Weather ops (DA-CLIP's hazy, rainy and snowy types): ``haze``, ``rain``, ``snow``.

Every random field (depth, drop positions, flake sizes) is regenerated in
``apply`` from the sample's recorded ``seed`` with
:func:`degkit.rng.field_generator`, on the CPU, so a record replays exactly and
a sample's weather never depends on its batch or device. Kornia's
``RandomRain`` / ``RandomSnow`` draw from global RNGs and cannot replay one
sample, hence these implementations on top of :mod:`degkit.ops.kernels`.

* ``haze``: atmospheric scattering ``I = J t + A (1 - t)`` with transmission
  ``t = exp(-beta * depth)``. ``depth`` in [0, 1] is half a vertical ramp
  (1 at the top row, 0 at the bottom: the far scene is up) and half a smooth
  random field (an 8 x 8 grid of uniforms, bicubic-upsampled). ``beta`` is the
  scattering density per unit depth, ``airlight`` the grey level ``A``.
* ``rain``: each pixel seeds a drop with probability ``density``; drops of
  random intensity in [0.5, 1] are drawn as anti-aliased streaks of ``length``
  pixels at ``angle`` degrees (counter-clockwise from +x, so 90 is vertical),
  the motion kernel scaled to a peak of 1, and screened over the image:
  ``out = x + (1 - x) * brightness * streaks``.
* ``snow``: each pixel seeds a flake with probability ``density``; a flake is
  an anti-aliased disk of radius ``size * k / 4`` (``k`` random in 1..4) and
  random intensity in [0.6, 1], smeared by a short motion of ``size`` pixels
  at ``angle`` degrees. Light scattered by the flakes brightens the scene
  around them: ``out = x + (1 - x) * clamp(brightness * (flakes + 2 G(flakes)))``
  with ``G`` a Gaussian blur of sigma 4 pixels.

Zero ``beta`` (haze) or zero ``density`` (rain, snow) is the identity; every
distance to the input grows with ``beta``, ``density`` and ``brightness``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from degkit.ops.base import SEED_LIMITS, Op, Params, check_range, register
from degkit.ops.filtering import filter2d_per_sample, filter_separable_per_sample
from degkit.ops.kernels import (
    disk_kernels,
    disk_size,
    gaussian_kernels_1d,
    motion_kernels,
    motion_size,
)
from degkit.ops.labels import CaptionType, FlatColumn, field_value
from degkit.rng import BatchStreams, field_generator

__all__ = ["Haze", "Rain", "Snow"]

DEPTH_GRID = 8
RAIN_INTENSITY = (0.5, 1.0)
SNOW_INTENSITY = (0.6, 1.0)
SNOW_RADIUS_LEVELS = 4
SNOW_GLOW_SIGMA = 4.0
SNOW_GLOW_GAIN = 2.0


def _generator(params: Params, i: int) -> np.random.Generator:
    return field_generator(int(params["seed"][i]))


def _field(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float64 numpy field as a float32 tensor on ``device``."""
    return torch.from_numpy(array.astype(np.float32)).to(device)


def _peak_normalized(kernels: torch.Tensor) -> torch.Tensor:
    return kernels / kernels.amax(dim=(-2, -1), keepdim=True)


def _screen_layers(
    x: torch.Tensor, params: Params, render: Callable[[int, int, int], torch.Tensor]
) -> torch.Tensor:
    """Lighten ``x`` towards white by ``brightness * layer``, ``layer`` rendered per sample.

    ``render(i, h, w)`` returns sample ``i``'s ``1 x 1 x h x w`` layer. Rendering one
    sample at a time keeps each layer independent of the batch: the convolution
    routine torch picks for a single-channel map changes with the batch size.
    """
    n, _, h, w = x.shape
    layer = torch.cat([render(i, h, w) for i in range(n)])
    amount = (params["brightness"].to(x).view(n, 1, 1, 1) * layer).clamp(0.0, 1.0)
    return x + (1 - x) * amount


@register
@dataclasses.dataclass
class Haze(Op):
    """Haze by atmospheric scattering over a smooth random depth map."""

    name = "haze"
    version = 1
    family = "weather"
    caption_types = (CaptionType.single("haze", "haze", "beta", 2, (1.0, 2.0)),)
    flat_columns = (
        FlatColumn(
            "haze_beta",
            "float64",
            "scattering density of the last haze, per unit depth",
            field_value("beta"),
        ),
        FlatColumn(
            "haze_airlight",
            "float64",
            "airlight grey level of the last haze (0-1)",
            field_value("airlight"),
        ),
    )
    param_limits = {"beta": (0.0, 10.0), "airlight": (0.0, 1.0), "seed": SEED_LIMITS}

    beta: tuple[float, float] = (0.5, 2.0)
    airlight: tuple[float, float] = (0.7, 1.0)

    def __post_init__(self) -> None:
        self.beta = check_range("haze.beta", self.beta, 0.0, 10.0)
        self.airlight = check_range("haze.airlight", self.airlight, 0.0, 1.0)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "beta": rng.uniform(*self.beta),
            "airlight": rng.uniform(*self.airlight),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n, _, h, w = x.shape
        grids = [_generator(params, i).random((1, DEPTH_GRID, DEPTH_GRID)) for i in range(n)]
        grid = _field(np.stack(grids), x.device)
        noise = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1)
        ramp = torch.linspace(1.0, 0.0, h, device=x.device).view(1, 1, h, 1)
        depth = 0.5 * ramp + 0.5 * noise
        t = torch.exp(-params["beta"].to(x).view(n, 1, 1, 1) * depth)
        airlight = params["airlight"].to(x).view(n, 1, 1, 1)
        return (x * t + airlight * (1 - t)).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class Rain(Op):
    """Rain streaks: sparse drops drawn as anti-aliased motion lines."""

    name = "rain"
    version = 1
    family = "weather"
    caption_types = (CaptionType.single("rain", "rain", "density", 4, (0.004, 0.008)),)
    flat_columns = (
        FlatColumn(
            "rain_density", "float64", "drops per pixel of the last rain", field_value("density")
        ),
        FlatColumn(
            "rain_length",
            "float64",
            "streak length of the last rain, pixels",
            field_value("length"),
        ),
    )
    param_limits = {
        "density": (0.0, 1.0),
        "length": (0.0, 100.0),
        "angle": (-360.0, 360.0),
        "brightness": (0.0, 1.0),
        "seed": SEED_LIMITS,
    }

    density: tuple[float, float] = (0.002, 0.01)
    length: tuple[float, float] = (8.0, 24.0)
    angle: tuple[float, float] = (60.0, 120.0)
    brightness: tuple[float, float] = (0.3, 0.8)

    def __post_init__(self) -> None:
        self.density = check_range("rain.density", self.density, 0.0, 1.0)
        self.length = check_range("rain.length", self.length, 0.0, 100.0)
        self.angle = check_range("rain.angle", self.angle, -360.0, 360.0)
        self.brightness = check_range("rain.brightness", self.brightness, 0.0, 1.0)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "density": rng.uniform(*self.density),
            "length": rng.uniform(*self.length),
            "angle": rng.uniform(*self.angle),
            "brightness": rng.uniform(*self.brightness),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        def render(i: int, h: int, w: int) -> torch.Tensor:
            g = _generator(params, i)
            seeded = g.random((1, 1, h, w)) < float(params["density"][i])
            drops = _field(
                np.where(seeded, g.uniform(*RAIN_INTENSITY, (1, 1, h, w)), 0.0), x.device
            )
            length, angle = params["length"][i : i + 1], params["angle"][i : i + 1]
            kernel = motion_kernels(int(motion_size(length)), length, angle)
            return filter2d_per_sample(drops, _peak_normalized(kernel))

        return _screen_layers(x, params, render)


@register
@dataclasses.dataclass
class Snow(Op):
    """Snowfall: sparse flakes of random radius with a slight motion, brightening the scene."""

    name = "snow"
    version = 1
    family = "weather"
    caption_types = (CaptionType.single("snow", "snow", "density", 4, (0.002, 0.004)),)
    flat_columns = (
        FlatColumn(
            "snow_density", "float64", "flakes per pixel of the last snow", field_value("density")
        ),
        FlatColumn(
            "snow_size",
            "float64",
            "flake size (motion length) of the last snow, pixels",
            field_value("size"),
        ),
    )
    param_limits = {
        "density": (0.0, 1.0),
        "size": (0.0, 20.0),
        "angle": (-360.0, 360.0),
        "brightness": (0.0, 1.0),
        "seed": SEED_LIMITS,
    }

    density: tuple[float, float] = (0.001, 0.005)
    size: tuple[float, float] = (1.0, 3.0)
    angle: tuple[float, float] = (60.0, 120.0)
    brightness: tuple[float, float] = (0.6, 1.0)

    def __post_init__(self) -> None:
        self.density = check_range("snow.density", self.density, 0.0, 1.0)
        self.size = check_range("snow.size", self.size, 0.0, 20.0)
        self.angle = check_range("snow.angle", self.angle, -360.0, 360.0)
        self.brightness = check_range("snow.brightness", self.brightness, 0.0, 1.0)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "density": rng.uniform(*self.density),
            "size": rng.uniform(*self.size),
            "angle": rng.uniform(*self.angle),
            "brightness": rng.uniform(*self.brightness),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        levels = SNOW_RADIUS_LEVELS
        glow_size = 2 * math.ceil(3 * SNOW_GLOW_SIGMA) + 1
        glow_taps = gaussian_kernels_1d(glow_size, SNOW_GLOW_SIGMA)

        def render(i: int, h: int, w: int) -> torch.Tensor:
            g = _generator(params, i)
            seeded = g.random((h, w)) < float(params["density"][i])
            level = g.integers(0, levels, (h, w))
            intensity = np.where(seeded, g.uniform(*SNOW_INTENSITY, (h, w)), 0.0)
            per_level = (level == np.arange(levels).reshape(-1, 1, 1)) * intensity
            centres = _field(per_level.reshape(levels, 1, h, w), x.device)
            size, angle = params["size"][i : i + 1], params["angle"][i : i + 1]
            k = int(torch.maximum(disk_size(size), motion_size(size)))
            radii = size * torch.arange(1, levels + 1) / levels
            disks = _peak_normalized(disk_kernels(k, radii))
            flakes = filter2d_per_sample(centres, disks).sum(dim=0, keepdim=True)
            flakes = filter2d_per_sample(flakes, motion_kernels(k, size, angle))
            glow = filter_separable_per_sample(flakes, glow_taps, glow_taps)
            return flakes + SNOW_GLOW_GAIN * glow

        return _screen_layers(x, params, render)

"""Colour and exposure degradations (DA-CLIP's "low-light" type and colour casts).

``low_light`` darkens with a gamma curve and a brightness gain, then adds sensor
noise: ``y = brightness * x ** gamma`` (Kornia's ``adjust_gamma`` with per-sample
gamma and gain, clamped to ``[0, 1]``), then ``y + noise_sigma / 255 *
sqrt(max(y, 1e-4)) * n`` with ``n ~ N(0, 1)`` drawn per channel from the
recorded ``seed``: a Gaussian field whose variance grows linearly with the
signal, as photon shot (Poisson) noise does; ``noise_sigma`` is its standard
deviation on the 0-255 scale at full signal (``y = 1``). The floor of ``1e-4``
keeps gradients finite at black pixels. Kornia's ``adjust_brightness`` adds an
offset rather than scaling, so the gain of ``adjust_gamma`` does the scaling.
Neutral values: ``gamma = 1``, ``brightness = 1``, ``noise_sigma = 0``.

``color_shift`` scales the HSV saturation by ``saturation`` (Kornia's
``adjust_saturation``), rotates the hue by ``hue`` radians (``adjust_hue``) and
multiplies the R, G, B channels by ``gains`` (a colour cast), then clamps to
``[0, 1]``. Neutral values: ``saturation = 1``, ``hue = 0``, ``gains = [1, 1, 1]``;
a sample with ``hue = 0`` skips the HSV round trip, so neutral values return
the input unchanged. Both ops pass gradients to the image.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from kornia.enhance import adjust_gamma, adjust_hue, adjust_saturation

from degkit.ops.base import SEED_LIMITS, Op, OpError, Params, check_range, register
from degkit.ops.labels import CaptionType, FlatColumn, Record, field_value
from degkit.ops.noise import gaussian_fields
from degkit.rng import BatchStreams

__all__ = ["LowLight", "ColorShift"]

SHOT_NOISE_FLOOR = 1e-4
"""Smallest signal the low-light noise standard deviation is computed from."""


def _check_rgb(op: str, x: torch.Tensor) -> None:
    if x.shape[1] != 3:
        raise OpError(f"{op}: images must have 3 (RGB) channels, got {x.shape[1]}")


def _midtone(rec: Record) -> float:
    """Where a mid-gray 0.5 lands: ``brightness * 0.5 ** gamma``."""
    return float(rec["brightness"]) * 0.5 ** float(rec["gamma"])


LOW_LIGHT_CAPTION = CaptionType(
    name="low light",
    template="low light with gamma:{gamma:.1f} and brightness:{brightness:.2f}",
    none="low light with gamma:1.0 and brightness:1.00",
    phrase="underexposure",
    bins=(0.2, 0.1),
    heavier_when_lower=True,
    values=lambda rec: {"gamma": float(rec["gamma"]), "brightness": float(rec["brightness"])},
    severity=_midtone,
    to_record=lambda v: {"op": "low_light", "gamma": v["gamma"], "brightness": v["brightness"]},
)


@register
@dataclasses.dataclass
class LowLight(Op):
    """Low-light exposure: gamma darkening, brightness gain and signal-dependent noise."""

    name = "low_light"
    version = 1
    family = "color"
    caption_types = (LOW_LIGHT_CAPTION,)
    flat_columns = (
        FlatColumn(
            "low_light_gamma",
            "float64",
            "gamma of the last low-light op (> 1 darkens)",
            field_value("gamma"),
        ),
        FlatColumn(
            "low_light_brightness",
            "float64",
            "brightness gain of the last low-light op (0-1)",
            field_value("brightness"),
        ),
    )
    param_limits = {
        "gamma": (1.0, 10.0),
        "brightness": (0.0, 1.0),
        "noise_sigma": (0.0, 255.0),
        "seed": SEED_LIMITS,
    }

    gamma: tuple[float, float] = (1.5, 3.5)
    brightness: tuple[float, float] = (0.3, 0.9)
    noise_sigma: tuple[float, float] = (0.0, 20.0)

    def __post_init__(self) -> None:
        self.gamma = check_range("low_light.gamma", self.gamma, *self.param_limits["gamma"])
        self.brightness = check_range(
            "low_light.brightness", self.brightness, *self.param_limits["brightness"]
        )
        self.noise_sigma = check_range(
            "low_light.noise_sigma", self.noise_sigma, *self.param_limits["noise_sigma"]
        )

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {
            "gamma": rng.uniform(*self.gamma),
            "brightness": rng.uniform(*self.brightness),
            "noise_sigma": rng.uniform(*self.noise_sigma),
            "seed": rng.field_seeds(),
        }

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_rgb(self.name, x)
        gamma = params["gamma"].to(device=x.device, dtype=x.dtype)
        gain = params["brightness"].to(device=x.device, dtype=x.dtype)
        dark = adjust_gamma(x, gamma, gain)
        color = torch.zeros(x.shape[0], dtype=torch.bool)
        field = gaussian_fields(params["seed"], color, tuple(x.shape[1:]), x.device)
        sigma = (params["noise_sigma"] / 255.0).to(device=x.device, dtype=x.dtype)
        std = sigma.view(-1, 1, 1, 1) * dark.clamp_min(SHOT_NOISE_FLOOR).sqrt()
        return (dark + std * field).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class ColorShift(Op):
    """Saturation change, hue rotation and per-channel gains (a colour cast)."""

    name = "color_shift"
    version = 1
    family = "color"
    caption_types = ()
    flat_columns = (FlatColumn("color_shift", "bool", "a colour shift ran", lambda rec: True),)
    param_limits = {"saturation": (0.0, 10.0), "hue": (-math.pi, math.pi), "gains": (0.0, 4.0)}

    saturation: tuple[float, float] = (0.5, 1.5)
    hue: tuple[float, float] = (-0.2, 0.2)
    gain: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        self.saturation = check_range(
            "color_shift.saturation", self.saturation, *self.param_limits["saturation"]
        )
        self.hue = check_range("color_shift.hue", self.hue, *self.param_limits["hue"])
        self.gain = check_range("color_shift.gain", self.gain, *self.param_limits["gains"])

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        saturation = rng.uniform(*self.saturation)
        hue = rng.uniform(*self.hue)
        gains = torch.stack([rng.uniform(*self.gain) for _ in range(3)], dim=1)
        return {"saturation": saturation, "hue": hue, "gains": gains}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        _check_rgb(self.name, x)
        n = x.shape[0]
        shape = tuple(params["gains"].shape)
        if shape != (n, 3):
            raise OpError(f"{self.name}: parameter 'gains' must be {n} x 3, got {shape}")
        saturation = params["saturation"].to(device=x.device, dtype=x.dtype)
        hue = params["hue"].to(device=x.device, dtype=x.dtype)
        y = adjust_saturation(x, saturation)
        shifted = (hue != 0).view(n, 1, 1, 1)
        y = torch.where(shifted, adjust_hue(y, hue), y)
        gains = params["gains"].to(device=x.device, dtype=x.dtype).view(n, 3, 1, 1)
        return (y * gains).clamp(0.0, 1.0)

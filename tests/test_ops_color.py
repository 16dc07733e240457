"""Colour ops: low-light exposure and colour shift against analytic references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from op_helpers import assert_config_error
from scipy import stats

from degkit.ops import OpError, create_op
from degkit.rng import BatchStreams
from degkit.testing import (
    check_contract,
    check_gradients,
    check_identity,
    check_monotone_severity,
    check_op,
    image_batches,
    seeds,
)

COLOR_OPS = ["low_light", "color_shift"]
P_FAIL = 1e-6


def _f64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _low_light(gamma: float, brightness: float, sigma: float, n: int) -> dict[str, torch.Tensor]:
    return {
        "gamma": _f64([gamma] * n),
        "brightness": _f64([brightness] * n),
        "noise_sigma": _f64([sigma] * n),
        "seed": torch.arange(7, 7 + n),
    }


def _shift(saturation: float, hue: float, gains: list[float], n: int) -> dict[str, torch.Tensor]:
    return {
        "saturation": _f64([saturation] * n),
        "hue": _f64([hue] * n),
        "gains": _f64([gains] * n),
    }


def _at_level(name: str, level: float, n: int) -> dict[str, torch.Tensor]:
    """Parameters of ``n`` samples at a severity level in [0, 1] (0 = neutral)."""
    if name == "low_light":
        return _low_light(1 + 2 * level, 1 - 0.6 * level, 15 * level, n)
    return _shift(1 - 0.8 * level, 0.5 * level, [1 + 0.3 * level, 1.0, 1 - 0.3 * level], n)


# -- contract --------------------------------------------------------------------
@pytest.mark.parametrize("name", COLOR_OPS)
@settings(max_examples=6, deadline=None)
@given(x=image_batches(), seed=seeds())
def test_contract_and_determinism(name: str, x: torch.Tensor, seed: int) -> None:
    op = create_op(name)
    check_op(op, x, seed)


@pytest.mark.parametrize("name", COLOR_OPS)
@settings(max_examples=6, deadline=None)
@given(x=image_batches())
def test_identity_at_neutral_values(name: str, x: torch.Tensor) -> None:
    check_identity(create_op(name), x, _at_level(name, 0.0, x.shape[0]))


@pytest.mark.parametrize("name", COLOR_OPS)
def test_severity_is_monotone(name: str) -> None:
    x = torch.rand(2, 3, 32, 32)
    levels = [0.0, 0.2, 0.4, 0.7, 1.0]
    check_monotone_severity(create_op(name), x, lambda level: _at_level(name, level, 2), levels)


@pytest.mark.parametrize("name", COLOR_OPS)
def test_gradients_reach_the_image(name: str) -> None:
    x = torch.rand(2, 3, 16, 16)
    x[:, :, :4] = 0.0  # black pixels: the shot-noise floor and HSV guards keep gradients finite
    x[:, :, 4:8] = 0.5  # gray pixels: undefined hue
    check_gradients(create_op(name), x, _at_level(name, 0.6, 2))


# -- low light ----------------------------------------------------------------------
def test_low_light_without_noise_is_gain_times_power() -> None:
    x = torch.rand(3, 3, 20, 20)
    params = _low_light(2.2, 0.6, 0.0, 3)
    params["gamma"] = _f64([1.0, 2.2, 3.7])
    y = create_op("low_light").apply(x, params)
    gamma = params["gamma"].numpy().reshape(3, 1, 1, 1)
    expected = 0.6 * x.double().numpy() ** gamma
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)
    assert (y <= x + 1e-7).all(), "low light brightened a pixel"


@pytest.mark.parametrize("level", [0.04, 0.25, 0.6])
def test_low_light_noise_variance_follows_the_signal(level: float) -> None:
    """At gamma 1 and gain 1 on a flat image, the noise std is sigma / 255 * sqrt(level)."""
    sigma = 12.0
    x = torch.full((1, 3, 96, 96), level)
    y = create_op("low_light").apply(x, _low_light(1.0, 1.0, sigma, 1))
    noise = (y - x).double().flatten().numpy()
    std = sigma / 255 * math.sqrt(level)
    statistic = (noise**2).sum() / std**2
    lo, hi = stats.chi2.ppf(P_FAIL / 2, noise.size), stats.chi2.ppf(1 - P_FAIL / 2, noise.size)
    assert lo <= statistic <= hi, f"variance ratio {statistic / noise.size:.4f} off 1"


def test_low_light_darkens_on_average() -> None:
    x = torch.rand(4, 3, 32, 32)
    y, records = create_op("low_light")(x, BatchStreams(0, range(4)))
    assert (y.mean(dim=(1, 2, 3)) < x.mean(dim=(1, 2, 3))).all()
    assert set(records[0]) == {"op", "gamma", "brightness", "noise_sigma", "seed"}


# -- colour shift -------------------------------------------------------------------------
def test_gains_multiply_the_channels() -> None:
    x = torch.rand(2, 3, 12, 12) * 0.7
    y = create_op("color_shift").apply(x, _shift(1.0, 0.0, [1.2, 0.5, 0.9], 2))
    expected = np.clip(x.numpy() * np.array([1.2, 0.5, 0.9]).reshape(1, 3, 1, 1), 0, 1)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)


def test_hue_rotation_by_a_third_turn_cycles_primaries() -> None:
    """In HSV a hue shift of 2 pi / 3 maps red -> green -> blue -> red."""
    primaries = torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 4, 4).contiguous()
    y = create_op("color_shift").apply(primaries, _shift(1.0, 2 * math.pi / 3, [1, 1, 1], 3))
    expected = torch.stack([primaries[1], primaries[2], primaries[0]])  # red -> green, ...
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_zero_saturation_keeps_the_hsv_value() -> None:
    """HSV saturation 0 turns every pixel into gray at its max(R, G, B)."""
    x = torch.rand(2, 3, 10, 10)
    y = create_op("color_shift").apply(x, _shift(0.0, 0.0, [1, 1, 1], 2))
    value = x.amax(dim=1, keepdim=True).expand_as(x)
    torch.testing.assert_close(y, value, atol=1e-6, rtol=0)


def test_record_fields_and_ranges() -> None:
    op = create_op("color_shift", saturation=(0.7, 0.9), hue=(-0.1, 0.1), gain=(0.9, 1.1))
    y, records = op(torch.rand(3, 3, 8, 8), BatchStreams(4, range(3)))
    for rec in records:
        assert set(rec) == {"op", "saturation", "hue", "gains"}
        assert 0.7 <= rec["saturation"] < 0.9 and -0.1 <= rec["hue"] < 0.1
        assert len(rec["gains"]) == 3 and all(0.9 <= g < 1.1 for g in rec["gains"])


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("low_light", {"gamma": (0.5, 2)}, "low_light.gamma must lie in [1, 10], got [0.5, 2]"),
        ("low_light", {"brightness": (0.5, 1.5)}, "low_light.brightness must lie in [0, 1]"),
        ("low_light", {"noise_sigma": (5, 1)}, "low_light.noise_sigma must have low <= high"),
        ("color_shift", {"saturation": (-1, 1)}, "color_shift.saturation must lie in [0, 10]"),
        ("color_shift", {"hue": (-4, 0)}, "color_shift.hue must lie in [-3.14159, 3.14159]"),
        ("color_shift", {"gain": (0.5, 5)}, "color_shift.gain must lie in [0, 4]"),
    ],
)
def test_invalid_config_names_the_field(name: str, config: dict, message: str) -> None:
    assert_config_error(name, config, message)


def test_invalid_params_name_the_parameter() -> None:
    x = torch.rand(2, 3, 8, 8)
    params = _low_light(2.0, 0.5, 5.0, 2)
    params["gamma"] = _f64([2.0, 0.5])
    with pytest.raises(OpError, match="parameter 'gamma' must be in"):
        create_op("low_light").apply(x, params)
    params = _shift(1.0, 0.1, [1, 1, 1], 2)
    params["gains"] = _f64([[1, 1], [1, 1]])
    with pytest.raises(OpError, match="parameter 'gains' must be 2 x 3"):
        create_op("color_shift").apply(x, params)
    with pytest.raises(OpError, match="3 \\(RGB\\) channels"):
        create_op("color_shift").apply(torch.rand(2, 1, 8, 8), _shift(1.0, 0.1, [1, 1, 1], 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", COLOR_OPS)
def test_cuda_matches_cpu(name: str) -> None:
    x = torch.rand(2, 3, 40, 24)
    op = create_op(name)
    check_contract(op, x.cuda())
    params = op.sample(BatchStreams(0, range(2)), 2)
    gpu = op.apply(x.cuda(), params)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), op.apply(x, params), atol=1e-5, rtol=0)

"""Haze, rain and snow: contract, replayable fields, physics of each model, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from op_helpers import assert_config_error, f64, photo_crops

from degkit.ops import OpError, create_op
from degkit.ops.base import Params
from degkit.rng import BatchStreams
from degkit.testing import (
    check_gradients,
    check_identity,
    check_monotone_severity,
    check_op,
    image_batches,
    seeds,
)

NAMES = ["haze", "rain", "snow"]


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return photo_crops()


def haze_params(beta: list[float], airlight: list[float], seed: list[int]) -> Params:
    return {"beta": f64(beta), "airlight": f64(airlight), "seed": torch.tensor(seed)}


def streak_params(name: str, n: int, seed: int = 11, **values: float) -> Params:
    """Rain / snow parameters shared by ``n`` samples (each its own seed)."""
    defaults = {"density": 0.01, "angle": 90.0, "brightness": 0.8}
    defaults["length" if name == "rain" else "size"] = 6.0 if name == "rain" else 2.0
    defaults.update(values)
    params = {key: f64([v] * n) for key, v in defaults.items()}
    params["seed"] = torch.arange(seed, seed + n)
    return params


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, deadline=None)
@given(x=image_batches(max_n=4, min_size=8, max_size=40), seed=seeds())
def test_contract_and_determinism(name: str, x: torch.Tensor, seed: int) -> None:
    op = create_op(name)
    check_op(op, x, seed)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input(name: str) -> None:
    op = create_op(name)
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    check_gradients(op, x, op.sample(BatchStreams(0, range(2)), 2))


def test_zero_strength_is_identity(photos: torch.Tensor) -> None:
    check_identity(create_op("haze"), photos, haze_params([0.0, 0.0], [1.0, 0.5], [1, 2]))
    for name in ("rain", "snow"):
        check_identity(create_op(name), photos, streak_params(name, 2, density=0.0))
        check_identity(create_op(name), photos, streak_params(name, 2, brightness=0.0))


@pytest.mark.parametrize(
    ("name", "params_at", "levels"),
    [
        (
            "haze",
            lambda b: haze_params([b, b], [0.9, 0.8], [3, 4]),
            [0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
        ),
        ("rain", lambda d: streak_params("rain", 2, density=d), [0.0, 0.002, 0.005, 0.01, 0.05]),
        ("rain", lambda b: streak_params("rain", 2, brightness=b), [0.0, 0.2, 0.5, 1.0]),
        ("snow", lambda d: streak_params("snow", 2, density=d), [0.0, 0.002, 0.005, 0.01, 0.05]),
        ("snow", lambda b: streak_params("snow", 2, brightness=b), [0.0, 0.2, 0.5, 1.0]),
    ],
)
def test_severity_is_monotone(
    photos: torch.Tensor, name: str, params_at, levels: list[float]
) -> None:
    check_monotone_severity(create_op(name), photos, params_at, levels)


@pytest.mark.parametrize("name", ["rain", "snow"])
def test_denser_weather_keeps_every_drop(photos: torch.Tensor, name: str) -> None:
    """Drop sets are nested in the density, so the output only brightens pixel by pixel."""
    op = create_op(name)
    outputs = [op.apply(photos, streak_params(name, 2, density=d)) for d in (0.002, 0.01, 0.03)]
    assert (outputs[0] >= photos).all()
    for lighter, darker in zip(outputs[1:], outputs[:-1], strict=True):
        assert (lighter >= darker).all()


def test_haze_follows_the_scattering_model() -> None:
    """Two flat scenes give the transmission ``t = (I1 - I2) / (J1 - J2)`` everywhere."""
    airlight, beta = 0.9, 1.5
    dark, light = torch.full((1, 3, 48, 40), 0.1), torch.full((1, 3, 48, 40), 0.6)
    params = haze_params([beta], [airlight], [123])
    op = create_op("haze")
    out_dark, out_light = op.apply(dark, params), op.apply(light, params)
    t = (out_light - out_dark) / 0.5
    assert torch.allclose(t, t[:, :1].expand_as(t), atol=1e-6)  # one grey transmission
    assert float(t.min()) >= np.exp(-beta) - 1e-6 and float(t.max()) <= 1 + 1e-6
    assert torch.allclose(out_dark, 0.1 * t + airlight * (1 - t), atol=1e-6)
    rows = t[0, 0].mean(dim=1)
    assert rows[:8].mean() < rows[-8:].mean()  # the far (upper) scene is hazier


def test_rain_streaks_follow_the_angle() -> None:
    """On a black image, vertical rain correlates along columns, horizontal rain along rows."""
    black = torch.zeros(1, 3, 64, 64)
    op = create_op("rain")

    def neighbour_correlation(img: torch.Tensor, dim: int) -> float:
        a = img[0, 0]
        u, v = (a[1:], a[:-1]) if dim == 0 else (a[:, 1:], a[:, :-1])
        return float(torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1])

    vertical = op.apply(black, streak_params("rain", 1, length=12.0, angle=90.0))
    horizontal = op.apply(black, streak_params("rain", 1, length=12.0, angle=0.0))
    assert neighbour_correlation(vertical, 0) > 0.8 > neighbour_correlation(vertical, 1)
    assert neighbour_correlation(horizontal, 1) > 0.8 > neighbour_correlation(horizontal, 0)
    assert torch.equal(vertical[:, 0], vertical[:, 2])  # grey streaks


def test_rain_drop_count_matches_density() -> None:
    """With zero length each drop is one pixel: their count is Binomial(H W, density)."""
    black = torch.zeros(4, 3, 100, 100)
    out = create_op("rain").apply(black, streak_params("rain", 4, density=0.02, length=0.0))
    counts = (out[:, 0] > 0).sum(dim=(1, 2)).double()
    assert abs(float(counts.mean()) - 200) < 3 * np.sqrt(200 * 0.98 / 4)
    intensities = out[:, 0][out[:, 0] > 0] / 0.8
    assert float(intensities.min()) >= 0.5 - 1e-6 and float(intensities.max()) <= 1 + 1e-6


def test_snow_flakes_grow_with_size_and_brighten_the_scene() -> None:
    grey = torch.full((2, 3, 64, 64), 0.3)
    op = create_op("snow")
    covered = []
    for size in (0.5, 2.0, 4.0):
        out = op.apply(grey, streak_params("snow", 2, size=size, density=0.005))
        assert (out >= grey).all()
        covered.append(float((out - grey).mean()))
    assert covered[0] < covered[1] < covered[2]
    glow_only = (out > 0.3 + 1e-4) & (out < 0.5)
    assert glow_only.any()  # light scattered around the flakes lifts the scene


def test_records_replay_the_same_fields() -> None:
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in NAMES:
        op = create_op(name)
        y, records = op(x, BatchStreams(9, range(3)))
        assert set(records[0]) == {"op", *op.param_limits}
        assert isinstance(records[0]["seed"], int)
        assert torch.equal(op.replay(x, records), y)
        other = [{**r, "seed": r["seed"] + 1} for r in records]
        assert not torch.equal(op.replay(x, other), y)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("haze", {"beta": (-1, 1)}, "haze.beta must lie in [0, 10], got [-1, 1]"),
        ("haze", {"airlight": (0.5, 1.5)}, "haze.airlight must lie in"),
        ("rain", {"density": (0.5, 0.1)}, "rain.density must have low <= high"),
        ("rain", {"length": (0, 200)}, "rain.length must lie in"),
        ("rain", {"brightness": "x"}, "rain.brightness must be a number or a"),
        ("snow", {"size": (1, 30)}, "snow.size must lie in"),
        ("snow", {"angle": (0, 1000)}, "snow.angle must lie in"),
        ("snow", {"density": (0, 2)}, "snow.density must lie in"),
    ],
)
def test_invalid_config_names_the_field(name: str, config: dict, message: str) -> None:
    assert_config_error(name, config, message)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("haze", haze_params([-0.5], [0.9], [1]), "'beta' must be in"),
        ("haze", {"beta": f64([1.0]), "airlight": f64([0.9])}, "missing parameter 'seed'"),
        ("rain", {**streak_params("rain", 1), "length": f64([-2.0])}, "'length' must be in"),
        (
            "snow",
            {**streak_params("snow", 1), "brightness": f64([2.0])},
            "'brightness' must be in",
        ),
        (
            "snow",
            {**streak_params("snow", 1), "density": f64([float("nan")])},
            "'density' must be in",
        ),
    ],
)
def test_invalid_params_name_the_parameter(name: str, params: Params, message: str) -> None:
    with pytest.raises(OpError, match=message):
        create_op(name).apply(torch.rand(1, 3, 16, 16), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(photos: torch.Tensor, name: str) -> None:
    op = create_op(name)
    params = op.sample(BatchStreams(5, range(2)), 2)
    cpu = op.apply(photos, params)
    gpu = op.apply(photos.cuda(), params)
    assert gpu.device.type == "cuda"
    assert float((gpu.cpu() - cpu).abs().max()) < 1e-4

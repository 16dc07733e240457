"""Per-sample resize: sizes, interpolation, ragged batches, replay, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_helpers import assert_config_error

from degkit.ops import OpError, create_op
from degkit.ops.base import batch_size
from degkit.rng import BatchStreams
from degkit.testing import (
    check_contract,
    check_op,
    image_batches,
    seeds,
)


def _params(scale: list[float], mode: list[int]) -> dict[str, torch.Tensor]:
    return {
        "scale": torch.tensor(scale, dtype=torch.float64),
        "mode": torch.tensor(mode),
        "antialias": torch.zeros(len(scale), dtype=torch.bool),
    }


@given(x=image_batches(min_size=16), seed=seeds())
def test_resize_contract_and_determinism(x: torch.Tensor, seed: int) -> None:
    op = create_op("resize")
    check_op(op, x, seed, same_shape=False)


@given(x=image_batches(min_size=16), seed=seeds())
def test_final_resize_reaches_target(x: torch.Tensor, seed: int) -> None:
    op = create_op("final_resize")
    target = torch.tensor([[x.shape[2] // 4, x.shape[3] // 4]] * x.shape[0])
    y, records = op(x, BatchStreams(seed, range(x.shape[0])), {"target_size": target})
    assert y.shape == (x.shape[0], 3, x.shape[2] // 4, x.shape[3] // 4)
    assert all(rec["size"] == target[0].tolist() for rec in records)
    check_contract(op, x, seed, context={"target_size": target}, same_shape=False)


def test_sizes_follow_floor_of_scale_per_sample() -> None:
    op = create_op("resize")
    x = torch.rand(3, 3, 40, 30)
    y = op.apply(x, _params([0.5, 1.0, 1.26], [0, 1, 2]))
    assert isinstance(y, list)
    assert [tuple(t.shape[-2:]) for t in y] == [(20, 15), (40, 30), (50, 37)]
    assert torch.equal(y[1], x[1])  # scale 1 keeps the sample untouched


def test_area_downsampling_equals_block_mean() -> None:
    """Integer-factor area resize is the mean of each block (independent numpy reference)."""
    x = torch.rand(2, 3, 32, 24)
    y = create_op("resize").apply(x, _params([0.25, 0.25], [0, 0]))
    ref = x.numpy().reshape(2, 3, 8, 4, 6, 4).mean(axis=(3, 5))
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-6)
    # Unequal factors per axis, and the autograd path (torch pooling) agrees with OpenCV's.
    y = create_op("final_resize", modes=("area",)).apply(
        x,
        {
            "size": torch.tensor([[16, 8], [16, 8]]),
            "mode": torch.tensor([0, 0]),
            "antialias": torch.tensor([False, False]),
        },
    )
    np.testing.assert_allclose(
        y.numpy(), x.numpy().reshape(2, 3, 16, 2, 8, 3).mean((3, 5)), atol=1e-6
    )
    with torch.enable_grad():
        pooled = create_op("resize").apply(
            x.clone().requires_grad_(True), _params([0.25] * 2, [0] * 2)
        )
    np.testing.assert_allclose(pooled.detach().numpy(), ref, atol=1e-6)


def _interpolation_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """``n_out x n_in`` float64 weights of half-pixel bilinear / bicubic (a = -0.75) resampling."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    weights = np.zeros((n_out, n_in))
    for j, position in enumerate(src):
        if mode == "bilinear":
            position = max(position, 0.0)  # torch and OpenCV clamp the left edge
            base = int(np.floor(position))
            t = position - base
            taps = {base: 1 - t, base + 1: t}
        else:
            base = int(np.floor(position))
            t = position - base
            a = -0.75
            distances = [1 + t, t, 1 - t, 2 - t]
            cubic = [
                ((a + 2) * d - (a + 3)) * d * d + 1
                if d <= 1
                else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
                for d in distances
            ]
            taps = {base - 1 + k: w for k, w in enumerate(cubic)}
        for index, w in taps.items():
            weights[j, min(max(index, 0), n_in - 1)] += w  # edge pixels repeat
    return weights


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(17, 23), (40, 40), (64, 30), (90, 131)])
def test_interpolation_matches_float64_reference(mode: str, size: tuple[int, int]) -> None:
    """OpenCV (CPU) and torch (autograd) paths both equal an independent float64 resampler."""
    x = torch.rand(2, 3, 48, 56)
    rows = _interpolation_matrix(48, size[0], mode)
    cols = _interpolation_matrix(56, size[1], mode)
    ref = np.clip(np.einsum("ih,nchw,jw->ncij", rows, x.double().numpy(), cols), 0, 1)
    op = create_op("final_resize", modes=(mode,))
    code = ["area", "bilinear", "bicubic", "nearest"].index(mode)
    params = {
        "size": torch.tensor([list(size)] * 2),
        "mode": torch.tensor([code] * 2),
        "antialias": torch.tensor([False, False]),
    }
    np.testing.assert_allclose(op.apply(x, params).numpy(), ref, atol=2e-6)
    with torch.enable_grad():
        autograd = op.apply(x.clone().requires_grad_(True), params).detach().numpy()
    np.testing.assert_allclose(autograd, ref, atol=3e-5)  # torch maps coordinates in float32


def test_ragged_batch_flows_through_next_op() -> None:
    x = torch.rand(4, 3, 32, 32)
    first = create_op("resize", scale=(0.5, 1.5), p_up=0.5, p_down=0.5)
    y, _ = first(x, BatchStreams(0, range(4)))
    final = create_op("final_resize")
    z, _ = final(y, BatchStreams(0, range(4)), {"target_size": torch.tensor([[8, 8]] * 4)})
    assert isinstance(z, torch.Tensor) and z.shape == (4, 3, 8, 8)
    assert batch_size(y) == 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scale": (2.0, 3.0)}, "resize.scale must have low <= 1"),
        ({"scale": (0.2, 0.5)}, "resize.scale must have high >= 1"),
        ({"scale": (0.5, "x")}, "resize.scale must be a number or a [low, high] pair"),
        ({"p_up": 1.5}, "resize.p_up must be a probability"),
        ({"p_up": 0.6, "p_down": 0.6}, "resize.p_up + resize.p_down must be <= 1"),
        ({"modes": ("lanczos",)}, "unknown interpolation 'lanczos'"),
        ({"relative_to": "hr"}, "resize.relative_to must be"),
        ({"sigma": 1}, "unknown field(s) ['sigma']"),
    ],
)
def test_invalid_config_names_the_field(config: dict, message: str) -> None:
    assert_config_error("resize", config, message)


def test_invalid_params_name_the_parameter() -> None:
    op = create_op("resize")
    with pytest.raises(OpError, match="parameter 'scale' must be in"):
        op.apply(torch.rand(2, 3, 8, 8), _params([0.5, -1.0], [0, 0]))
    with pytest.raises(OpError, match="one row per sample"):
        op.apply(torch.rand(3, 3, 8, 8), _params([0.5, 1.0], [0, 0]))


def test_final_resize_without_target_explains_itself() -> None:
    with pytest.raises(OpError, match="needs the LR target size"):
        create_op("final_resize")(torch.rand(1, 3, 8, 8), BatchStreams(0, [0]))


@given(mode=st.sampled_from(["bilinear", "bicubic"]), seed=seeds())
def test_antialias_smooths_downsampled_noise(mode: str, seed: int) -> None:
    """Antialiased downsampling of white noise averages more pixels: lower variance."""
    noise = torch.from_numpy(np.random.default_rng(seed).random((1, 3, 64, 64)).astype("float32"))
    code = ["area", "bilinear", "bicubic", "nearest"].index(mode)
    params = _params([0.25], [code])
    op = create_op("resize", modes=(mode,))
    aa = op.apply(noise, {**params, "antialias": torch.tensor([True])})
    plain = op.apply(noise, params)
    assert aa.var() < 0.5 * plain.var()

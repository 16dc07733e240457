"""BSRGAN's sampling rules: reciprocal downsample scale and channel-correlated noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from degkit.ops import OpError, create_op
from degkit.recipes import load
from degkit.rng import BatchStreams
from degkit.testing import check_batch_size_invariance, check_contract


def test_reciprocal_down_scale_follows_one_over_uniform() -> None:
    n = 4000
    op = create_op(
        "resize", scale=(0.125, 1.0), p_up=0.0, p_down=1.0, down_distribution="reciprocal"
    )
    scale = op.sample(BatchStreams(0, range(n)), n)["scale"].numpy()
    assert scale.min() >= 0.125 and scale.max() <= 1.0
    # 1 / U(1, 8) < 0.5  <=>  U > 2: probability 6 / 7 (uniform on [1/8, 1] would give 3 / 7).
    freq = (scale < 0.5).mean()
    assert abs(freq - 6 / 7) < 5 * np.sqrt(6 / 49 / n)
    # Kolmogorov-Smirnov against the exact law of 1 / scale ~ U(1, 8).
    inv = np.sort(1 / scale)
    cdf = (inv - 1) / 7
    assert np.abs(cdf - np.arange(1, n + 1) / n).max() < 1.63 / np.sqrt(n)


def test_noise_kinds_follow_bsrgan_probabilities() -> None:
    n = 6000
    op = create_op("gaussian_noise", gray_prob=0.4, correlated_prob=0.2)
    params = op.sample(BatchStreams(1, range(n)), n)
    gray, correlated = params["gray"], params["correlated"]
    assert not (gray & correlated).any()
    for observed, p in ((gray, 0.4), (correlated, 0.2), (~gray & ~correlated, 0.4)):
        assert abs(observed.double().mean().item() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_correlated_field_has_a_valid_random_covariance() -> None:
    """Empirical channel covariance: symmetric PSD with eigenvalues in [0, 1], off-diagonal."""
    op = create_op("gaussian_noise", sigma=(25.5, 25.5), gray_prob=0.0, correlated_prob=1.0)
    x = torch.full((3, 3, 128, 128), 0.5)
    params = op.sample(BatchStreams(2, range(3)), 3)
    noise = (op.apply(x, params) - 0.5) / 0.1  # unit-sigma field (no clamping at this level)
    for i in range(3):
        cov = np.cov(noise[i].reshape(3, -1).double().numpy())
        eigen = np.linalg.eigvalsh(cov)
        assert eigen.min() > -0.02 and eigen.max() < 1.02
        off_diagonal = np.abs(cov - np.diag(np.diag(cov))).max()
        assert off_diagonal > 0.01


def test_correlated_noise_keeps_the_op_contract() -> None:
    op = create_op("gaussian_noise", gray_prob=0.3, correlated_prob=0.5)
    x = torch.rand(4, 3, 16, 16)
    check_contract(op, x, seed=3)
    check_batch_size_invariance(op, x, seed=3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"down_distribution": "log"}, "resize.down_distribution must be"),
    ],
)
def test_resize_rejects_unknown_distribution(config: dict, message: str) -> None:
    with pytest.raises(OpError, match=message):
        create_op("resize", **config)


def test_noise_rejects_probabilities_over_one() -> None:
    with pytest.raises(OpError, match="gray_prob \\+ gaussian_noise.correlated_prob"):
        create_op("gaussian_noise", gray_prob=0.7, correlated_prob=0.5)


def test_bsrgan_recipe_uses_both_rules() -> None:
    records = load("bsrgan").pipeline.plan(seed=0, indices=range(800), hr_size=(64, 64), scale=4)
    scales = [r["scale"] for recs in records for r in recs if r.get("path") == "downsample"]
    kinds = [r for recs in records for r in recs if r["op"] == "gaussian_noise"]
    assert scales and (np.array(scales) < 0.5).mean() > 0.75
    assert 0.1 < np.mean([r["correlated"] for r in kinds]) < 0.3

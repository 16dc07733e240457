"""Noise ops: contract, statistics against analytic laws, gray fields, errors."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_helpers import assert_config_error
from scipy import stats

from degkit.ops import OpError, create_op, poisson_inversion
from degkit.ops.fields import field_draws, field_keys, field_normals
from degkit.ops.poisson_inversion import poisson_counts
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

NOISE_OPS = ["gaussian_noise", "poisson_noise", "speckle_noise", "salt_pepper_noise"]
P_FAIL = 1e-6  # two-sided false-alarm probability of each statistical test


def _f64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _params(name: str, strength: float, n: int, gray: bool = False) -> dict[str, torch.Tensor]:
    """Parameters of ``n`` samples at one strength (seeds 11, 12, ...)."""
    seed = torch.arange(11, 11 + n, dtype=torch.int64)
    gray_t = torch.full((n,), gray)
    if name == "salt_pepper_noise":
        return {"amount": _f64([strength] * n), "salt_ratio": _f64([0.5] * n), "seed": seed}
    key = "scale" if name == "poisson_noise" else "sigma"
    return {key: _f64([strength] * n), "gray": gray_t, "seed": seed}


# strength used for the gradient and monotonicity checks, per op
STRENGTH: dict[str, Callable[[float], float]] = {
    "gaussian_noise": lambda level: 30.0 * level,
    "poisson_noise": lambda level: 2.0 * level,
    "speckle_noise": lambda level: 0.5 * level,
    "salt_pepper_noise": lambda level: 0.2 * level,
}


def _chi2_bounds(dof: int) -> tuple[float, float]:
    return stats.chi2.ppf(P_FAIL / 2, dof), stats.chi2.ppf(1 - P_FAIL / 2, dof)


def _gray_image(n: int, size: int, value: float = 0.5) -> torch.Tensor:
    return torch.full((n, 3, size, size), value, dtype=torch.float32)


# -- contract --------------------------------------------------------------------
@pytest.mark.parametrize("name", NOISE_OPS)
@settings(max_examples=6, deadline=None)
@given(x=image_batches(), seed=seeds())
def test_contract_and_determinism(name: str, x: torch.Tensor, seed: int) -> None:
    op = create_op(name)
    check_op(op, x, seed)


@pytest.mark.parametrize("name", NOISE_OPS)
@pytest.mark.parametrize("gray", [False, True])
def test_identity_at_zero_strength(name: str, gray: bool) -> None:
    x = torch.rand(3, 3, 20, 17)
    check_identity(create_op(name), x, _params(name, 0.0, 3, gray))


@pytest.mark.parametrize("name", NOISE_OPS)
def test_severity_is_monotone(name: str) -> None:
    # Mid-gray: salt and pepper then move a pixel equally far, so the distance is exactly monotone.
    x = torch.rand(2, 3, 32, 32) * 0.2 + 0.4
    if name == "salt_pepper_noise":
        x = _gray_image(2, 32)
    levels = [0.0, 0.1, 0.3, 0.6, 1.0]
    check_monotone_severity(
        create_op(name), x, lambda level: _params(name, STRENGTH[name](level), 2), levels
    )


@pytest.mark.parametrize("name", NOISE_OPS)
def test_gradients_reach_the_image(name: str) -> None:
    x = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    check_gradients(create_op(name), x, _params(name, STRENGTH[name](0.3), 2))


# -- Gaussian ---------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [5.0, 20.0])
def test_gaussian_std_matches_sigma(sigma: float) -> None:
    """Empirical variance on mid-gray follows the chi-square law of sigma / 255."""
    x = _gray_image(2, 96)
    y = create_op("gaussian_noise").apply(x, _params("gaussian_noise", sigma, 2))
    noise = (y - x).double().flatten().numpy()
    m = noise.size
    statistic = (noise**2).sum() / (sigma / 255.0) ** 2  # known mean 0: chi2 with m dof
    lo, hi = _chi2_bounds(m)
    assert lo <= statistic <= hi, f"variance ratio {statistic / m:.4f} off 1"
    z = noise.mean() / (sigma / 255.0 / math.sqrt(m))
    assert abs(z) < stats.norm.ppf(1 - P_FAIL / 2)


def test_gaussian_field_is_the_recorded_seeds_generator_draw() -> None:
    """A user can regenerate the field from the record alone (gray: its first plane)."""
    x = _gray_image(2, 24)
    params = _params("gaussian_noise", 10.0, 2)
    params["gray"] = torch.tensor([False, True])
    y = create_op("gaussian_noise").apply(x, params)
    field = field_normals(field_keys(params["seed"], "cpu"), 3 * 24 * 24).view(2, 3, 24, 24)
    field[1] = field[1, 0]
    expected = (0.5 + field * np.float32(10.0 / 255.0)).clamp(0.0, 1.0)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)


def test_gray_noise_is_shared_by_channels_not_by_samples() -> None:
    x = _gray_image(3, 32)
    for name in ("gaussian_noise", "poisson_noise", "speckle_noise"):
        params = _params(name, STRENGTH[name](0.5), 3, gray=True)
        params["gray"] = torch.tensor([True, True, False])
        noise = create_op(name).apply(x, params) - x
        for i in (0, 1):
            assert torch.equal(noise[i, 0], noise[i, 1]) and torch.equal(noise[i, 0], noise[i, 2])
        assert not torch.equal(noise[0], noise[1]), f"{name}: gray field shared across the batch"
        assert not torch.equal(noise[2, 0], noise[2, 1]), f"{name}: colour noise is gray"


def test_gray_probability_is_respected() -> None:
    n, p = 4000, 0.4
    gray = create_op("gaussian_noise", gray_prob=p).sample(BatchStreams(3, range(n)), n)["gray"]
    k = int(gray.sum())
    dist = stats.binom(n, p)
    assert dist.ppf(P_FAIL / 2) <= k <= dist.ppf(1 - P_FAIL / 2)


def test_sigma_is_drawn_in_range_on_the_255_scale() -> None:
    params = create_op("gaussian_noise", sigma=(2, 7)).sample(BatchStreams(0, range(500)), 500)
    sigma = params["sigma"]
    assert sigma.dtype == torch.float64 and 2 <= sigma.min() and sigma.max() < 7
    assert params["seed"].unique().numel() == 500


# -- Poisson ----------------------------------------------------------------------
def _level_image(levels: list[int], size: int = 48) -> torch.Tensor:
    """One sample whose rows cycle through the given 8-bit levels (exactly representable)."""
    values = torch.tensor(levels, dtype=torch.float32)[torch.arange(size) % len(levels)] / 255
    return values.view(1, 1, size, 1).expand(1, 3, size, size).contiguous()


@pytest.mark.parametrize(
    ("levels", "vals"),
    [([128], 1), ([102, 128, 153], 4), (list(range(60, 193)), 256), (list(range(256)), 256)],
)
def test_poisson_mean_and_variance_law(levels: list[int], vals: int) -> None:
    """noise / scale = Poisson(q * vals) / vals - q: mean 0, variance q / vals.

    ``vals`` is 2 ** ceil(log2(distinct levels)): a flat image (one level) gets
    variance q, far stronger noise than a detailed one (q / 256).
    """
    scale = 0.02  # small enough that the clamp to [0, 1] never acts
    x = _level_image(levels, size=256).repeat(2, 1, 1, 1)
    y = create_op("poisson_noise").apply(x, _params("poisson_noise", scale, 2))
    q = x.double().numpy()
    noise = (y.double().numpy() - q) / scale
    mid = q > 0  # zero variance at black
    var = q[mid] / vals
    z = noise[mid].sum() / math.sqrt(var.sum())
    assert abs(z) < stats.norm.ppf(1 - P_FAIL / 2), f"mean off by {z:.2f} sd"
    statistic = ((noise[mid] ** 2) / var).sum()
    m = int(mid.sum())
    # Poisson noise has excess kurtosis 1 / lambda: the sum's sd is sqrt(2m + sum 1/lambda).
    sd = math.sqrt(2 * m + (1 / (q[mid] * vals)).sum())
    assert abs(statistic - m) < 5 * sd, f"variance ratio {statistic / m:.4f}, vals={vals}"


def test_poisson_gray_uses_luma_and_adds_it_to_every_channel() -> None:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 0.4 + 0.3
    params = _params("poisson_noise", 1.0, 1, gray=True)
    noise = (create_op("poisson_noise").apply(x, params) - x).double()
    # Independent reference: BT.601 luma rounded to 8 bits, SciPy's Poisson quantile
    # function at the sample's uniforms. The luma is scaled by 255 in float32, as the op
    # does (in float64 a value next to a half level can round the other way).
    luma = 0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]
    q = np.round(luma.numpy() * np.float32(255)).astype(np.float64) / 255
    vals = 2 ** math.ceil(math.log2(len(np.unique(q))))
    draws = field_draws(field_keys(params["seed"], "cpu"), 64 * 64).view(1, 64, 64)
    counts = stats.poisson.ppf((draws.double().numpy() + 0.5) / 2**32, q[None] * vals)
    expected = counts[0] / vals - q
    for c in range(3):
        np.testing.assert_allclose(noise[0, c].numpy(), expected, atol=2e-6)


@given(
    vals_exponent=st.integers(0, 8),
    levels=hnp.arrays(np.uint8, (40,)),
    seed=st.integers(0, 2**32),
)
def test_poisson_inversion_is_scipys_quantile_function(
    vals_exponent: int, levels: np.ndarray, seed: int
) -> None:
    """The count of a draw ``u`` is SciPy's ``poisson.ppf`` at ``(u + 0.5) / 2**32``
    (they differ only if a CDF value falls within half a step of ``2**-32``)."""
    draws = torch.from_numpy(np.random.default_rng(seed).integers(0, 2**32, levels.shape))
    exponents = torch.full(levels.shape, vals_exponent)
    counts = poisson_counts(torch.from_numpy(levels).long(), draws, exponents)
    expected = stats.poisson.ppf((draws.numpy() + 0.5) / 2**32, levels / 255.0 * 2**vals_exponent)
    np.testing.assert_array_equal(counts.numpy(), expected)


@settings(max_examples=30, deadline=None)
@given(
    rows=hnp.arrays(np.int32, (64,), elements=st.integers(0, 9 * 256 - 1)),
    draws=hnp.arrays(np.int64, (64,), elements=st.integers(0, 2**32 - 1)),
)
def test_guide_and_search_give_the_same_counts(rows: np.ndarray, draws: np.ndarray) -> None:
    """The CPU's guide-table lookup and CUDA's single search are two routes to one count."""
    rows_t, draws_t = torch.from_numpy(rows), torch.from_numpy(draws)
    by_guide = poisson_inversion._counts_by_guide(rows_t, draws_t)
    assert torch.equal(by_guide, poisson_inversion._counts_by_search(rows_t, draws_t))


def test_poisson_inversion_has_poisson_frequencies() -> None:
    """Chi-square goodness of fit of 200,000 draws at level 191 with vals 4 (rate 2.996)."""
    rate = 191 / 255 * 4
    draws = torch.from_numpy(np.random.default_rng(5).integers(0, 2**32, 200_000))
    levels = torch.full_like(draws, 191)
    counts = poisson_counts(levels, draws, torch.full_like(draws, 2)).numpy()
    observed = np.append(np.bincount(counts, minlength=11)[:11], (counts >= 11).sum())
    expected = np.append(stats.poisson.pmf(np.arange(11), rate), stats.poisson.sf(10, rate))
    _, p_value = stats.chisquare(observed, expected * counts.size)
    assert p_value > 1e-4


# -- speckle and salt-and-pepper ------------------------------------------------------
def test_speckle_relative_std_matches_sigma() -> None:
    sigma, x = 0.1, _gray_image(1, 128, 0.4)
    y = create_op("speckle_noise").apply(x, _params("speckle_noise", sigma, 1))
    rel = ((y - x) / x).double().flatten().numpy()
    lo, hi = _chi2_bounds(rel.size)
    assert lo <= (rel**2).sum() / sigma**2 <= hi


def test_salt_pepper_fraction_and_ratio() -> None:
    amount, ratio, size = 0.1, 0.25, 160
    x = _gray_image(1, size)
    params = {"amount": _f64([amount]), "salt_ratio": _f64([ratio]), "seed": torch.tensor([5])}
    y = create_op("salt_pepper_noise").apply(x, params)
    salt, pepper = (y == 1).all(dim=1), (y == 0).all(dim=1)
    hit = (y != x).any(dim=1)
    assert torch.equal(hit, salt | pepper), "a pixel's channels were not replaced together"
    for count, p in ((int(hit.sum()), amount), (int(salt.sum()), amount * ratio)):
        dist = stats.binom(size * size, p)
        assert dist.ppf(P_FAIL / 2) <= count <= dist.ppf(1 - P_FAIL / 2)


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        (
            "gaussian_noise",
            {"sigma": (-1, 2)},
            "gaussian_noise.sigma must lie in [0, 255], got [-1, 2]",
        ),
        ("gaussian_noise", {"gray_prob": 2}, "gaussian_noise.gray_prob must be a probability"),
        ("poisson_noise", {"scale": (3, 1)}, "poisson_noise.scale must have low <= high"),
        ("poisson_noise", {"gray_prob": -0.1}, "poisson_noise.gray_prob must be a probability"),
        ("speckle_noise", {"sigma": "big"}, "speckle_noise.sigma must be a number"),
        ("salt_pepper_noise", {"amount": (0, 1.5)}, "salt_pepper_noise.amount must lie in [0, 1]"),
        ("salt_pepper_noise", {"salt_ratio": (0.2, 2)}, "salt_pepper_noise.salt_ratio must lie"),
    ],
)
def test_invalid_config_names_the_field(name: str, config: dict, message: str) -> None:
    assert_config_error(name, config, message)


def test_invalid_params_name_the_parameter() -> None:
    x = torch.rand(2, 3, 8, 8)
    params = _params("gaussian_noise", 5.0, 2)
    params["sigma"] = _f64([5.0, 300.0])
    with pytest.raises(OpError, match="parameter 'sigma' must be in"):
        create_op("gaussian_noise").apply(x, params)
    params = _params("poisson_noise", 1.0, 2)
    del params["seed"]
    with pytest.raises(OpError, match="missing parameter 'seed'"):
        create_op("poisson_noise").apply(x, params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NOISE_OPS)
def test_cuda_matches_cpu(name: str) -> None:
    x = torch.rand(3, 3, 40, 24)
    op = create_op(name)
    check_contract(op, x.cuda())
    params = op.sample(BatchStreams(0, range(3)), 3)
    gpu = op.apply(x.cuda(), params)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), op.apply(x, params), atol=1e-6, rtol=0)

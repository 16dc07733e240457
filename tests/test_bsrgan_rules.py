"""BSRGAN's sampling rules: blur kernels, the three ways down, reciprocal scales, noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from degkit.ops import OpError, create_op
from degkit.ops.blur import blur_kernels
from degkit.ops.kernels import shifted_gaussian_kernels
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


@pytest.mark.parametrize("field", ["sigma_step", "correlated_sigma"])
def test_noise_rejects_bad_steps_and_levels(field: str) -> None:
    with pytest.raises(OpError, match=f"gaussian_noise.{field} must be None or a number"):
        create_op("gaussian_noise", **{field: 0})


def test_noise_rejects_probabilities_over_one() -> None:
    with pytest.raises(OpError, match="gray_prob \\+ gaussian_noise.correlated_prob"):
        create_op("gaussian_noise", gray_prob=0.7, correlated_prob=0.5)


# -- the bsrgan recipe against the published rules (Zhang et al. 2021, sf = 4) ----------
N_PLANNED = 4000


@pytest.fixture(scope="module")
def planned() -> list[list[dict]]:
    pipeline = load("bsrgan").pipeline
    return pipeline.plan(seed=0, indices=range(N_PLANNED), hr_size=(64, 64), scale=4)


def _at(planned: list[list[dict]], path: str) -> list[dict]:
    return [r for recs in planned for r in recs if r["path"] == path]


def _check_rate(count: int, n: int, p: float, what: str) -> None:
    assert abs(count / n - p) < 5 * np.sqrt(p * (1 - p) / n), f"{what}: {count}/{n}, expected {p}"


def _check_law(values: list[float], cdf, what: str) -> None:
    p = stats.kstest(values, cdf).pvalue
    assert p > 1e-4, f"{what}: KS p = {p:.2g}"


def _sf_of(recs: list[dict]) -> int:
    return 2 if recs[0]["path"].startswith("sf2/") else 4


def test_branch_frequencies_follow_the_published_probabilities(planned) -> None:
    halved = [recs for recs in planned if _sf_of(recs) == 2]
    _check_rate(len(halved), N_PLANNED, 0.25, "x2 pre-halving")
    antialiased = sum(recs[0]["path"] == "sf2/halve_antialiased" for recs in halved)
    _check_rate(antialiased, len(halved), 0.5, "antialiased halving")
    assert all(recs[0]["scale"] == 0.5 for recs in halved)
    for sf in (4, 2):
        shifted = _at(planned, f"sf{sf}/shifted_subsample")
        resized = _at(planned, f"sf{sf}/downsample_resize")
        _check_rate(len(shifted), len(shifted) + len(resized), 0.25, f"sf{sf} shifted branch")
        for b in (1, 2):
            aniso = len(_at(planned, f"sf{sf}/blur{b}_aniso"))
            iso = len(_at(planned, f"sf{sf}/blur{b}_iso"))
            _check_rate(aniso, aniso + iso, 0.5, f"sf{sf} blur{b} anisotropic")
    jpegs = sum(r["path"].endswith("/jpeg") for recs in planned for r in recs)
    _check_rate(jpegs, N_PLANNED, 0.9, "shuffled JPEG")


def test_every_sample_downsamples_once_before_the_lr_resize(planned) -> None:
    for recs in planned:
        paths = [r["path"].split("/")[-1] for r in recs]
        down = [i for i, p in enumerate(paths) if p in ("downsample_resize", "shifted_subsample")]
        assert len(down) == 1 and paths.count("final_resize") == 1
        assert down[0] < paths.index("final_resize")
        assert sum(p.startswith("blur") for p in paths) == 2
        assert paths[-2:] == ["final_jpeg", "quantize"]


@pytest.mark.parametrize("sf", [4, 2])
def test_anisotropic_kernels_have_uniform_eigenvalues(planned, sf: int) -> None:
    """Covariance eigenvalues sigma_x**2, sigma_y**2 ~ U(0, 4 + sf); theta ~ U(0, pi)."""
    aniso = _at(planned, f"sf{sf}/blur1_aniso") + _at(planned, f"sf{sf}/blur2_aniso")
    eigen = stats.uniform(0, 4 + sf).cdf
    _check_law([r["sigma_x"] ** 2 for r in aniso], eigen, f"sf{sf} sigma_x**2")
    _check_law([r["sigma_y"] ** 2 for r in aniso], eigen, f"sf{sf} sigma_y**2")
    _check_law([r["theta"] for r in aniso], stats.uniform(0, np.pi).cdf, f"sf{sf} theta")
    # The law is not that of uniform sigmas (what the recipe drew before).
    wrong = stats.kstest([r["sigma_x"] for r in aniso], stats.uniform(0, np.sqrt(4 + sf)).cdf)
    assert wrong.pvalue < 1e-6
    assert {r["kernel"] for r in aniso} == {"aniso"}


@pytest.mark.parametrize("sf", [4, 2])
def test_isotropic_sigma_and_kernel_sizes(planned, sf: int) -> None:
    """Isotropic sigma = (2 + 0.2 sf) U(0, 1); sizes 2 randint(2, 11) + 3, every blur."""
    iso = _at(planned, f"sf{sf}/blur1_iso") + _at(planned, f"sf{sf}/blur2_iso")
    assert all(r["sigma_x"] == r["sigma_y"] and r["theta"] == 0 for r in iso)
    _check_law([r["sigma_x"] for r in iso], stats.uniform(0, 2 + 0.2 * sf).cdf, f"sf{sf} sigma")
    blurs = iso + _at(planned, f"sf{sf}/blur1_aniso") + _at(planned, f"sf{sf}/blur2_aniso")
    sizes = np.array([r["kernel_size"] for r in blurs])
    counts = np.array([(sizes == 2 * k + 3).sum() for k in range(2, 12)])
    assert counts.sum() == len(sizes)  # nothing outside 7, 9, ..., 25
    assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("sf", [4, 2])
def test_downsample_branches_follow_the_published_laws(planned, sf: int) -> None:
    scales = [r["scale"] for r in _at(planned, f"sf{sf}/downsample_resize")]
    _check_law([1 / s for s in scales], stats.uniform(1, 2 * sf - 1).cdf, f"sf{sf} 1 / scale")
    shifted = _at(planned, f"sf{sf}/shifted_subsample")
    assert all(r["factor"] == sf and r["kernel_size"] == 25 for r in shifted)
    assert all(r["shift"] == (sf - 1) / 2 for r in shifted)
    _check_law([r["sigma"] for r in shifted], stats.uniform(0.1, 0.6 * sf - 0.1).cdf, "sigma")


def test_noise_levels_are_whole_and_correlated_noise_has_level_25(planned) -> None:
    noise = _at(planned, "sf4/gaussian_noise") + _at(planned, "sf2/gaussian_noise")
    assert len(noise) == N_PLANNED
    correlated = [r for r in noise if r["correlated"]]
    gray = [r for r in noise if r["gray"]]
    _check_rate(len(correlated), N_PLANNED, 0.2, "correlated noise")
    _check_rate(len(gray), N_PLANNED, 0.4, "gray noise")
    assert all(r["sigma"] == 25 for r in correlated)
    levels = np.array([r["sigma"] for r in noise if not r["correlated"]])
    counts = np.array([(levels == level).sum() for level in range(2, 26)])
    assert counts.sum() == len(levels)  # every level a whole number in 2..25
    assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("sigma", [0.1, 0.7, 1.2, 2.4])
@pytest.mark.parametrize("shift", [0.5, 1.5])
def test_shifted_kernel_centroid_equals_the_analytic_shift(sigma: float, shift: float) -> None:
    """Centroid (sf - 1) / 2 right of and below the centre tap; spread sigma once the grid
    resolves it (sampling a narrower Gaussian on integer taps widens it)."""
    k = shifted_gaussian_kernels(25, sigma, shift)[0].double().numpy()
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    k = k / k.sum()
    offsets = np.arange(-12, 13)
    assert (k * offsets[None, :]).sum() == pytest.approx(shift, abs=1e-4)  # columns (x)
    assert (k * offsets[:, None]).sum() == pytest.approx(shift, abs=1e-4)  # rows (y)
    if sigma >= 1:
        variance = (k * (offsets[None, :] - shift) ** 2).sum()
        assert variance == pytest.approx(sigma**2, rel=1e-3)


def _numpy_shifted_subsample(x: np.ndarray, sigma: float, factor: int) -> np.ndarray:
    """Independent reference: analytic shifted Gaussian, reflect-101 borders, nearest pixels."""
    shift, half = (factor - 1) / 2, 12
    d = np.arange(-half, half + 1) - shift
    k = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma**2))
    k /= k.sum()
    padded = np.pad(x, ((0, 0), (half, half), (half, half)), mode="reflect")
    h, w = x.shape[1:]
    out = np.zeros_like(x)
    for dy in range(2 * half + 1):
        for dx in range(2 * half + 1):
            out += k[dy, dx] * padded[:, dy : dy + h, dx : dx + w]
    return np.clip(out, 0, 1)[:, ::factor, ::factor]


@pytest.mark.parametrize("factor", [2, 4])
def test_shifted_subsample_matches_a_numpy_reference(factor: int) -> None:
    x = torch.rand(2, 3, 40, 36)
    op = create_op("shifted_subsample", factor=factor, sigma=(0.3, 1.2))
    params = op.sample(BatchStreams(4, range(2)), 2)
    y = op.apply(x, params)
    assert y.shape == (2, 3, 40 // factor, 36 // factor)
    for i in range(2):
        ref = _numpy_shifted_subsample(x[i].double().numpy(), float(params["sigma"][i]), factor)
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-5)


def test_shifted_subsample_samples_the_block_centres() -> None:
    """On a linear ramp, LR pixel (i, j) takes the value at HR (4 i + 1.5, 4 j + 1.5)."""
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    ramp = ((0.2 + 0.004 * rows + 0.006 * cols) * torch.ones(1, 3, 1, 1)).float()
    op = create_op("shifted_subsample", sigma=(2.4, 2.4))
    y = op.apply(ramp, op.sample(BatchStreams(0, [0]), 1))[0, 0].double()
    centre = torch.arange(16.0) * 4 + 1.5
    expected = 0.2 + 0.004 * centre[:, None] + 0.006 * centre[None, :]
    inner = slice(4, 12)  # away from the reflected borders
    np.testing.assert_allclose(y[inner, inner].numpy(), expected[inner, inner].numpy(), atol=1e-4)


def test_shifted_subsample_keeps_the_op_contract() -> None:
    op = create_op("shifted_subsample", factor=2)
    x = torch.rand(3, 3, 32, 32)
    check_contract(op, x, seed=5, same_shape=False)
    check_batch_size_invariance(op, x, seed=5)


def test_shifted_subsample_rejects_bad_configuration() -> None:
    with pytest.raises(OpError, match="shifted_subsample.kernel_size must be an odd integer"):
        create_op("shifted_subsample", kernel_size=24)
    with pytest.raises(OpError, match="shifted_subsample.factor must be an integer"):
        create_op("shifted_subsample", factor=1.5)


def test_blur_sigma_distribution_is_validated() -> None:
    with pytest.raises(OpError, match="blur.sigma_distribution must be one of"):
        create_op("blur", sigma_distribution="log")
    with pytest.raises(OpError, match="blur.sigma_step needs blur.sigma_distribution"):
        create_op("blur", sigma_step=0.1, sigma_distribution="sqrt_uniform")


def test_anisotropic_kernel_is_the_published_gaussian() -> None:
    """Taps equal the normalised density of N(0, V diag(l1, l2) V^T) at (column, row)
    offsets, V the rotation by theta and l1, l2 the squared sigmas (scipy reference)."""
    op = create_op(
        "blur",
        kernel_types=["aniso"],
        sigma=(0.0, np.sqrt(8.0)),
        sigma_distribution="sqrt_uniform",
        rotation=(0.0, np.pi),
        kernel_size=(7, 25),
    )
    params = op.sample(BatchStreams(7, range(6)), 6)
    for i in range(6):
        size = int(params["kernel_size"][i])
        kernel = blur_kernels(size, {k: v[i : i + 1] for k, v in params.items()})[0]
        l1, l2 = float(params["sigma_x"][i]) ** 2, float(params["sigma_y"][i]) ** 2
        theta = float(params["theta"][i])
        v = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        offsets = np.arange(size) - size // 2
        xx, yy = np.meshgrid(offsets, offsets)
        density = stats.multivariate_normal([0, 0], v @ np.diag([l1, l2]) @ v.T).pdf(
            np.stack([xx, yy], axis=-1)
        )
        np.testing.assert_allclose(kernel.double().numpy(), density / density.sum(), atol=1e-6)

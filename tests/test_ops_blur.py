"""Blur, motion, defocus, ringing and USM ops: contract, invariants, scipy / OpenCV references."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage
import scipy.special
import skimage.data
import torch
from hypothesis import given, settings
from op_helpers import assert_config_error, f64, photo_crops

from degkit.ops import OpError, create_op
from degkit.ops.base import Params
from degkit.ops.blur import KERNEL_LABELS, REALESRGAN_KERNEL_WEIGHTS
from degkit.rng import BatchStreams
from degkit.testing import (
    check_gradients,
    check_identity,
    check_monotone_severity,
    check_op,
    image_batches,
    seeds,
)

CONFIGS = [
    ("blur", {}),
    ("blur", {"sinc_prob": 0.5}),
    ("blur", {"kernel_size": "auto", "sigma": (0.0, 2.9), "sigma_step": 0.1}),
    ("motion_blur", {}),
    ("defocus_blur", {}),
    ("ringing", {}),
    ("usm", {"radius": (1, 60), "weight": (0.0, 2.0), "threshold": (0.0, 20.0)}),
]


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return photo_crops()


def blur_params(n: int, kernel: str = "iso", size: int = 21, **values: float) -> Params:
    """Blur parameters shared by ``n`` samples (sigma_y defaults to sigma_x)."""
    sigma_x = values.get("sigma_x", 0.0)
    return {
        "kernel": torch.full((n,), KERNEL_LABELS.index(kernel)),
        "kernel_size": torch.full((n,), size),
        "sigma_x": f64([sigma_x] * n),
        "sigma_y": f64([values.get("sigma_y", sigma_x)] * n),
        "theta": f64([values.get("theta", 0.0)] * n),
        "beta": f64([values.get("beta", 1.0)] * n),
        "cutoff": f64([values.get("cutoff", 0.0)] * n),
    }


def usm_params(weight: list[float], threshold: list[float], radius: list[int]) -> Params:
    return {"weight": f64(weight), "threshold": f64(threshold), "radius": torch.tensor(radius)}


# -- contract ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "config"), CONFIGS)
@settings(max_examples=5, deadline=None)
@given(x=image_batches(max_n=4, min_size=8, max_size=40), seed=seeds())
def test_contract_and_determinism(name: str, config: dict, x: torch.Tensor, seed: int) -> None:
    op = create_op(name, **config)
    check_op(op, x, seed)


@pytest.mark.parametrize(("name", "config"), CONFIGS)
def test_gradients_reach_the_input(name: str, config: dict) -> None:
    op = create_op(name, **config)
    x = torch.rand(3, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    check_gradients(op, x, op.sample(BatchStreams(0, range(3)), 3))


def test_ragged_batch_is_filtered_per_sample() -> None:
    op = create_op("blur")
    images = [torch.rand(3, 20, 24), torch.rand(3, 30, 16)]
    params = op.sample(BatchStreams(0, range(2)), 2)
    out = op.apply(images, params)
    for i, img in enumerate(images):
        alone = op.apply(img[None], {k: v[i : i + 1] for k, v in params.items()})
        assert torch.equal(out[i], alone[0])


# -- identity at zero strength ---------------------------------------------------------
@pytest.mark.parametrize("kernel", ["iso", "aniso", "generalized_aniso", "plateau_iso"])
def test_blur_with_zero_sigma_is_identity(photos: torch.Tensor, kernel: str) -> None:
    params = blur_params(2, kernel, 21, sigma_x=0.0, theta=0.4, beta=0.7)
    check_identity(create_op("blur"), photos, params)


def test_zero_strength_is_identity(photos: torch.Tensor) -> None:
    n = photos.shape[0]
    check_identity(create_op("blur"), photos, blur_params(n, "sinc", 1, cutoff=1.0))
    for size in (1, 9):
        motion = {
            "kernel_size": torch.full((n,), size),
            "length": f64([0.0] * n),
            "angle": f64([30.0] * n),
        }
        check_identity(create_op("motion_blur"), photos, motion)
        defocus = {"kernel_size": torch.full((n,), size), "radius": f64([0.0] * n)}
        check_identity(create_op("defocus_blur"), photos, defocus)
    ringing = {"kernel_size": torch.full((n,), 1), "cutoff": f64([0.5] * n)}
    check_identity(create_op("ringing"), photos, ringing)
    check_identity(create_op("usm"), photos, usm_params([0.0, 0.0], [10.0, 0.0], [50, 50]))
    check_identity(create_op("usm"), photos, usm_params([2.0, 2.0], [10.0, 0.0], [1, 1]))


# -- monotone severity ----------------------------------------------------------------
def _motion(n: int, length: float) -> Params:
    size = 2 * math.ceil(length / 2) + 1
    return {
        "kernel_size": torch.full((n,), size),
        "length": f64([length] * n),
        "angle": f64([30.0] * n),
    }


def _defocus(n: int, radius: float) -> Params:
    size = 2 * math.ceil(radius + 0.5) - 1
    return {"kernel_size": torch.full((n,), size), "radius": f64([radius] * n)}


@pytest.mark.parametrize(
    ("name", "params_at", "levels"),
    [
        ("blur", lambda s: blur_params(2, "iso", 21, sigma_x=s), [0.0, 0.4, 0.8, 1.6, 3.2]),
        (
            "blur",
            lambda s: blur_params(2, "aniso", 21, sigma_x=s, sigma_y=0.5, theta=0.6),
            [0.0, 0.5, 1.0, 2.0, 4.0],
        ),
        (
            "blur",
            lambda s: blur_params(2, "generalized_iso", 21, sigma_x=s, beta=2.0),
            [0.0, 0.5, 1.0, 2.0],
        ),
        (
            "blur",
            lambda s: blur_params(2, "plateau_iso", 21, sigma_x=s, beta=1.5),
            [0.0, 0.5, 1.0, 2.0],
        ),
        ("motion_blur", lambda length: _motion(2, length), [0.0, 2.0, 4.0, 8.0, 16.0]),
        ("defocus_blur", lambda r: _defocus(2, r), [0.0, 1.0, 2.0, 4.0, 8.0]),
        (
            "ringing",  # severity rises as the cutoff falls
            lambda s: {"kernel_size": torch.full((2,), 21), "cutoff": f64([math.pi / s] * 2)},
            [1.0, 1.5, 2.0, 3.0, 4.0],
        ),
        ("usm", lambda w: usm_params([w, w], [10.0, 10.0], [50, 50]), [0.0, 0.5, 1.0, 2.0]),
    ],
)
def test_severity_is_monotone(
    photos: torch.Tensor, name: str, params_at, levels: list[float]
) -> None:
    check_monotone_severity(create_op(name), photos, params_at, levels)


# -- independent references -------------------------------------------------------------
def _correlate(x: torch.Tensor, kernels: list[np.ndarray]) -> np.ndarray:
    """scipy reference: each sample's channels correlated with its kernel, mirrored borders."""
    out = np.empty(x.shape, dtype=np.float64)
    for i, k in enumerate(kernels):
        for c in range(x.shape[1]):
            out[i, c] = scipy.ndimage.correlate(x[i, c].double().numpy(), k, mode="mirror")
    return out


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(size) - size // 2
    return np.meshgrid(ax, ax)  # column offsets, row offsets


def test_isotropic_blur_matches_scipy(photos: torch.Tensor) -> None:
    x = torch.cat([photos, photos.flip(-1)])
    sigmas, sizes = [0.5, 1.3, 2.0, 2.9], [7, 13, 13, 21]
    params = blur_params(4, "iso")
    params["sigma_x"] = params["sigma_y"] = f64(sigmas)
    params["kernel_size"] = torch.tensor(sizes)
    kernels = []
    for s, k in zip(sigmas, sizes, strict=True):
        xx, yy = _grid(k)
        g = np.exp(-(xx**2 + yy**2) / (2 * s * s))
        kernels.append(g / g.sum())
    out = create_op("blur").apply(x, params)
    np.testing.assert_allclose(out.numpy(), _correlate(x, kernels), atol=2e-6)


def test_rotated_anisotropic_blur_matches_scipy(photos: torch.Tensor) -> None:
    sx, sy, theta = [2.5, 0.8], [0.6, 1.9], [0.5, -2.0]
    params = blur_params(2, "aniso", 15)
    params.update({"sigma_x": f64(sx), "sigma_y": f64(sy), "theta": f64(theta)})
    kernels = []
    for a, b, t in zip(sx, sy, theta, strict=True):
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        inv = np.linalg.inv(rot @ np.diag([a * a, b * b]) @ rot.T)
        xx, yy = _grid(15)
        q = inv[0, 0] * xx**2 + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy**2
        g = np.exp(-0.5 * q)
        kernels.append(g / g.sum())
    out = create_op("blur").apply(photos, params)
    np.testing.assert_allclose(out.numpy(), _correlate(photos, kernels), atol=2e-6)


def test_ringing_matches_scipy_jinc_and_is_clamped() -> None:
    x = (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    cutoffs, sizes = [math.pi / 4, 2.0], [21, 9]
    params = {"kernel_size": torch.tensor(sizes), "cutoff": f64(cutoffs)}
    kernels = []
    for wc, k in zip(cutoffs, sizes, strict=True):
        xx, yy = _grid(k)
        r = np.hypot(xx, yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            jinc = wc * scipy.special.j1(wc * r) / (2 * np.pi * r)
        jinc[k // 2, k // 2] = wc * wc / (4 * np.pi)
        kernels.append(jinc / jinc.sum())
    reference = _correlate(x, kernels)
    assert reference.max() > 1.01 and reference.min() < -0.01  # the sinc overshoots
    out = create_op("ringing").apply(x, params)
    np.testing.assert_allclose(out.numpy(), np.clip(reference, 0, 1), atol=2e-6)


def _usm_reference(img: np.ndarray, weight: float, threshold: float, radius: int) -> np.ndarray:
    """Real-ESRGAN's unsharp mask written directly with OpenCV (H x W x 3 float32)."""
    size = radius + 1 if radius % 2 == 0 else radius
    blurred = cv2.GaussianBlur(img, (size, size), 0)
    residual = img - blurred
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft_mask = cv2.GaussianBlur(mask, (size, size), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


def test_usm_matches_opencv_formula() -> None:
    crops = [skimage.data.astronaut()[:96, 100:180], skimage.data.chelsea()[60:156, 100:180]]
    x = torch.from_numpy(np.stack([crops[0], crops[1], crops[0]])).permute(0, 3, 1, 2)
    x = x.float().div(255).contiguous()
    weights, thresholds, radii = [0.5, 1.0, 0.3], [10.0, 5.0, 2.0], [50, 20, 11]
    out = create_op("usm").apply(x, usm_params(weights, thresholds, radii))
    for i in range(3):
        img = x[i].permute(1, 2, 0).numpy()
        ref = _usm_reference(img, weights[i], thresholds[i], radii[i])
        err = np.abs(out[i].permute(1, 2, 0).numpy() - ref)
        assert err.max() < 1e-4 and err.mean() < 1e-6, (i, err.max(), err.mean())


def test_usm_opencv_and_tensor_paths_agree(photos: torch.Tensor) -> None:
    """The per-sample OpenCV path (CPU, no grad) and the batched tensor path (autograd, CUDA)."""
    params = usm_params([0.5, 2.0], [10.0, 0.0], [50, 7])
    fast = create_op("usm").apply(photos, params)
    with torch.enable_grad():
        batched = create_op("usm").apply(photos.clone().requires_grad_(True), params).detach()
    assert torch.allclose(fast, batched, atol=1e-6)


def test_usm_sharpens(photos: torch.Tensor) -> None:
    """Sharpening raises high-frequency energy (Laplacian variance)."""
    out = create_op("usm").apply(photos, usm_params([1.0, 1.0], [0.0, 0.0], [50, 50]))
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(3, 1, 3, 3)

    def energy(img: torch.Tensor) -> float:
        return float(torch.nn.functional.conv2d(img, lap, groups=3).var())

    assert energy(out) > 1.2 * energy(photos)


# -- sampling and records -------------------------------------------------------------------
def test_blur_records_and_realesrgan_sampling() -> None:
    n = 500
    op = create_op("blur", sinc_prob=0.1)
    records = op.describe(op.sample(BatchStreams(7, range(n)), n))
    assert all(
        list(rec)
        == ["op", "kernel", "kernel_size", "sigma_x", "sigma_y", "theta", "beta", "cutoff"]
        for rec in records
    )
    counts = {label: sum(r["kernel"] == label for r in records) / n for label in KERNEL_LABELS}
    assert counts["sinc"] == pytest.approx(0.1, abs=0.04)
    for label, p in REALESRGAN_KERNEL_WEIGHTS.items():
        assert counts[label] == pytest.approx(0.9 * p, abs=0.05)
    assert {r["kernel_size"] for r in records} == set(range(7, 22, 2))
    for r in records:
        assert isinstance(r["kernel_size"], int) and isinstance(r["sigma_x"], float)
        if r["kernel"] == "sinc":
            low = math.pi / 3 if r["kernel_size"] < 13 else math.pi / 5
            assert low <= r["cutoff"] <= math.pi
            assert (r["sigma_x"], r["sigma_y"], r["theta"], r["beta"]) == (0.0, 0.0, 0.0, 1.0)
            continue
        assert r["cutoff"] == 0.0 and 0.2 <= r["sigma_x"] <= 3 and 0.2 <= r["sigma_y"] <= 3
        if r["kernel"].endswith("iso") and not r["kernel"].endswith("aniso"):
            assert r["sigma_y"] == r["sigma_x"] and r["theta"] == 0.0
        if r["kernel"] in ("iso", "aniso"):
            assert r["beta"] == 1.0
    betas = np.array([r["beta"] for r in records if r["kernel"].startswith("generalized")])
    assert betas.min() >= 0.5 and betas.max() <= 4.0
    assert (betas < 1).mean() == pytest.approx(0.5, abs=0.15)
    plateau = [r["beta"] for r in records if r["kernel"].startswith("plateau")]
    assert min(plateau) >= 1.0 and max(plateau) <= 2.0


def test_paper_sigma_grid_and_auto_size() -> None:
    op = create_op(
        "blur", kernel_types=("iso",), sigma=(0.0, 2.9), sigma_step=0.1, kernel_size="auto"
    )
    records = op.describe(op.sample(BatchStreams(0, range(400)), 400))
    grid = {round(0.1 * k, 1) for k in range(30)}
    assert {r["sigma_x"] for r in records} == grid
    for r in records:
        assert r["kernel"] == "iso"
        assert r["kernel_size"] == min(2 * math.ceil(round(3 * r["sigma_x"], 6)) + 1, 21)


def test_motion_and_defocus_sizes_follow_their_support() -> None:
    motion = create_op("motion_blur", length=(0.0, 30.0))
    for r in motion.describe(motion.sample(BatchStreams(0, range(50)), 50)):
        assert r["kernel_size"] == 2 * math.ceil(r["length"] / 2) + 1
    defocus = create_op("defocus_blur", radius=(0.0, 9.0))
    for r in defocus.describe(defocus.sample(BatchStreams(0, range(50)), 50)):
        assert r["kernel_size"] == 2 * math.ceil(r["radius"] + 0.5) - 1


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("blur", {"sigma": (-1, 2)}, "blur.sigma must lie in [0, 50], got [-1, 2]"),
        ("blur", {"kernel_types": ("gauss",)}, "blur.kernel_types must be a non-empty subset"),
        ("blur", {"kernel_types": ()}, "blur.kernel_types must be a non-empty subset"),
        ("blur", {"kernel_weights": (1.0,)}, "blur.kernel_weights must be 6 non-negative"),
        ("blur", {"kernel_size": (6, 21)}, "blur.kernel_size must be a range of odd integers"),
        ("blur", {"kernel_size": "big"}, "blur.kernel_size must be 'auto'"),
        ("blur", {"kernel_size": "auto", "sinc_prob": 0.1}, "blur.sinc_prob must be 0 when"),
        ("blur", {"sinc_prob": 1.5}, "blur.sinc_prob must be a probability"),
        ("blur", {"sigma_step": 0}, "blur.sigma_step must be None or a number"),
        ("blur", {"beta_generalized": (0, 4)}, "blur.beta_generalized must lie in"),
        ("blur", {"rotation": (-10, 0)}, "blur.rotation must lie in"),
        ("blur", {"foo": 1}, "unknown field"),
        ("motion_blur", {"length": (-1, 5)}, "motion_blur.length must lie in"),
        ("motion_blur", {"angle": (0, 400)}, "motion_blur.angle must lie in"),
        ("defocus_blur", {"radius": (3, 2)}, "defocus_blur.radius must have low <= high"),
        (
            "ringing",
            {"kernel_size": (7, 22)},
            "ringing.kernel_size must be a range of odd integers",
        ),
        ("ringing", {"cutoff": (0, 1)}, "ringing.cutoff must be positive"),
        ("ringing", {"cutoff": (1, 4)}, "ringing.cutoff must lie in [0, 3.14159]"),
        ("usm", {"weight": (-1, 1)}, "usm.weight must lie in"),
        ("usm", {"radius": (1.5, 3)}, "usm.radius must be integers"),
        ("usm", {"threshold": 300}, "usm.threshold must lie in"),
    ],
)
def test_invalid_config_names_the_field(name: str, config: dict, message: str) -> None:
    assert_config_error(name, config, message)


def _with(params: Params, **changes: torch.Tensor) -> Params:
    return {**params, **changes}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("blur", _with(blur_params(1), kernel_size=torch.tensor([8])), "'kernel_size' must be odd"),
        ("blur", _with(blur_params(1), sigma_x=f64([-1.0])), "'sigma_x' must be in"),
        ("blur", _with(blur_params(1), cutoff=f64([4.0])), "'cutoff' must be in"),
        ("blur", _with(blur_params(1), kernel=torch.tensor([9])), "'kernel' must be in"),
        (
            "motion_blur",
            {**_motion(1, 3.0), "kernel_size": torch.tensor([4])},
            "'kernel_size' must be odd",
        ),
        ("defocus_blur", {"kernel_size": torch.tensor([3])}, "missing parameter 'radius'"),
        (
            "ringing",
            {"kernel_size": torch.tensor([0]), "cutoff": f64([1.0])},
            "'kernel_size' must be in",
        ),
        ("usm", usm_params([0.5], [10.0], [0]), "'radius' must be in"),
        (
            "usm",
            _with(usm_params([0.5], [10.0], [3]), radius=f64([2.5])),
            "'radius' must be whole",
        ),
    ],
)
def test_invalid_params_name_the_parameter(name: str, params: Params, message: str) -> None:
    with pytest.raises(OpError, match=message):
        create_op(name).apply(torch.rand(1, 3, 16, 16), params)


def test_unknown_kernel_label_in_record_is_rejected() -> None:
    op = create_op("blur")
    record = op.describe(blur_params(1, "iso", 7, sigma_x=1.0))[0]
    with pytest.raises(OpError, match="'kernel' must be one of"):
        op.params_from_records([{**record, "kernel": "gauss"}])


# -- CUDA -----------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("name", "config"), CONFIGS)
def test_cuda_matches_cpu(photos: torch.Tensor, name: str, config: dict) -> None:
    op = create_op(name, **config)
    x = torch.cat([photos, photos.flip(-2)])
    params = op.sample(BatchStreams(5, range(4)), 4)
    cpu = op.apply(x, params)
    gpu = op.apply(x.cuda(), params)
    assert gpu.device.type == "cuda"
    err = (gpu.cpu() - cpu).abs()
    assert err.max() < 1e-3 and err.mean() < 1e-5

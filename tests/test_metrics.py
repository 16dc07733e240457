"""degkit.metrics: SR-protocol PSNR/SSIM against numpy and pyiqa, properties, weights handling."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pyiqa
import pytest
import scipy.io
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from degkit.metrics import Metric, MetricUnavailable, available_metrics, create_metric
from degkit.metrics.niqe_params import load_params, shipped_params_path
from degkit.metrics.weights import DownloadBlocked, no_downloads

PHOTOS = {
    "astronaut": skimage.data.astronaut(),
    "coffee": skimage.data.coffee(),
    "chelsea": skimage.data.chelsea(),
}
PIXEL_METRICS = ("psnr_y", "ssim_y", "psnr")


# ---------------------------------------------------------------- test images


def _crop(photo: str, top: int, left: int, size: int = 64) -> np.ndarray:
    return PHOTOS[photo][top : top + size, left : left + size]


def _degrade(pixels: np.ndarray, seed: int, sigma: float, blur: float) -> np.ndarray:
    """A blurred, noisy, 8-bit version of ``pixels`` (stand-in SR output)."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(pixels.astype(np.float64), (blur, blur, 0)) if blur else pixels
    x = x + rng.normal(0.0, sigma, pixels.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _tensor(*images: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 images -> float32 N x 3 x H x W in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


@st.composite
def photo_pairs(draw: st.DrawFn, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(sr, hr) uint8 crops of real photos, sr a degraded copy of hr."""
    name = draw(st.sampled_from(sorted(PHOTOS)))
    height, width = PHOTOS[name].shape[:2]
    top = draw(st.integers(0, height - size))
    left = draw(st.integers(0, width - size))
    hr = _crop(name, top, left, size)
    sigma = draw(st.floats(0.5, 12.0))
    blur = draw(st.sampled_from([0.0, 0.8, 1.5]))
    return _degrade(hr, draw(st.integers(0, 2**16)), sigma, blur), hr


# ---------------------------------------------------- independent numpy reference


def _np_unit(rgb8: np.ndarray) -> np.ndarray:
    """The float32 [0, 1] values the metric receives, as float64."""
    return (rgb8.astype(np.float32) / np.float32(255)).astype(np.float64)


def _np_y(rgb8: np.ndarray, round_y: bool = True) -> np.ndarray:
    """BT.601 Y on the 0-255 scale: 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]."""
    y = 16.0 + _np_unit(rgb8) @ np.array([65.481, 128.553, 24.966])
    return np.round(y) if round_y else y


def _np_crop(x: np.ndarray, border: int) -> np.ndarray:
    return x[border : x.shape[0] - border, border : x.shape[1] - border]


def _np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / mse))


def _np_ssim_maps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(SSIM map, contrast-structure map) of two 2-D float images on 0-255 (Wang et al. 2004)."""
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def local_mean(x: np.ndarray) -> np.ndarray:
        return ndimage.correlate(x, window, mode="constant")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    return (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs, cs


def _np_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(_np_ssim_maps(a, b)[0].mean())


def _np_reference(name: str, sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    if name == "psnr":
        return _np_psnr(_np_crop(255 * _np_unit(sr), border), _np_crop(255 * _np_unit(hr), border))
    y_sr, y_hr = _np_crop(_np_y(sr), border), _np_crop(_np_y(hr), border)
    return _np_psnr(y_sr, y_hr) if name == "psnr_y" else _np_ssim(y_sr, y_hr)


# --------------------------------------------------------- SR protocol accuracy


@settings(max_examples=10, deadline=None)
@given(pair=photo_pairs(), scale=st.sampled_from([2, 3, 4]))
def test_pixel_metrics_match_numpy_reference(pair, scale) -> None:
    sr, hr = pair
    for name in PIXEL_METRICS:
        got = create_metric(name, scale=scale)(_tensor(sr), _tensor(hr))
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert got.item() == pytest.approx(_np_reference(name, sr, hr, scale), rel=1e-12, abs=1e-12)


def test_unrounded_y_matches_numpy_reference() -> None:
    hr = _crop("coffee", 100, 200)
    sr = _degrade(hr, 1, 4.0, 0.8)
    y_sr, y_hr = (_np_crop(_np_y(x, round_y=False), 4) for x in (sr, hr))
    got_psnr = create_metric("psnr_y", round_y=False)(_tensor(sr), _tensor(hr)).item()
    got_ssim = create_metric("ssim_y", round_y=False)(_tensor(sr), _tensor(hr)).item()
    assert got_psnr == pytest.approx(_np_psnr(y_sr, y_hr), rel=1e-12)
    assert got_ssim == pytest.approx(_np_ssim(y_sr, y_hr), rel=1e-12)
    rounded = create_metric("psnr_y")(_tensor(sr), _tensor(hr)).item()
    assert rounded != got_psnr  # the setting changes what is measured


@settings(max_examples=10, deadline=None)
@given(pair=photo_pairs(), scale=st.sampled_from([2, 4]))
def test_pixel_metrics_match_pyiqa_with_the_same_settings(pair, scale) -> None:
    sr, hr = pair
    y_sr, y_hr = (_np_crop(_np_y(x), scale) for x in (sr, hr))
    # pyiqa clamps the contrast-structure term at 0; the SR protocol (Wang et al.,
    # MATLAB, BasicSR) does not. The two agree wherever that term is non-negative.
    assert _np_ssim_maps(y_sr, y_hr)[1].min() >= 0
    pyiqa_settings = {
        "psnr_y": ("psnr", {"test_y_channel": True, "color_space": "ycbcr", "data_range": 255}),
        "ssim_y": ("ssim", {"test_y_channel": True, "color_space": "ycbcr"}),
        "psnr": ("psnr", {"test_y_channel": False}),
    }
    for name, (pyiqa_name, kwargs) in pyiqa_settings.items():
        if pyiqa_name == "psnr":
            kwargs["eps"] = 0.0  # pyiqa adds 1e-8 to the MSE by default
        reference = pyiqa.create_metric(pyiqa_name, device="cpu", crop_border=scale, **kwargs)
        # the same values in float64, as degkit computes (pyiqa keeps the input dtype)
        expected = reference(_tensor(sr).double(), _tensor(hr).double()).item()
        got = create_metric(name, scale=scale)(_tensor(sr), _tensor(hr)).item()
        # pyiqa's SSIM window is float32: its rounding, amplified by E[x^2] - mu^2 on
        # 0-255 values, moves SSIM by about 1e-7
        assert got == pytest.approx(expected, rel=1e-12, abs=0 if "psnr" in name else 1e-6), name


def test_batch_scores_equal_single_image_scores() -> None:
    hrs = [_crop("astronaut", 30, 200), _crop("coffee", 150, 100), _crop("chelsea", 80, 250)]
    srs = [_degrade(hr, i, 3.0 + 3 * i, 0.8) for i, hr in enumerate(hrs)]
    for name in PIXEL_METRICS:
        metric = create_metric(name, scale=4)
        batch = metric(_tensor(*srs), _tensor(*hrs))
        singles = torch.cat([metric(_tensor(s), _tensor(h)) for s, h in zip(srs, hrs, strict=True)])
        torch.testing.assert_close(batch, singles, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ properties


@settings(max_examples=10, deadline=None)
@given(pair=photo_pairs())
def test_identical_images_score_the_maximum(pair) -> None:
    _, hr = pair
    x = _tensor(hr)
    assert create_metric("psnr_y")(x, x).item() == float("inf")
    assert create_metric("psnr")(x, x).item() == float("inf")
    assert create_metric("ssim_y")(x, x).item() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(pair=photo_pairs())
def test_pixel_metrics_are_symmetric(pair) -> None:
    sr, hr = _tensor(pair[0]), _tensor(pair[1])
    for name in PIXEL_METRICS:
        metric = create_metric(name)
        assert metric(sr, hr).item() == pytest.approx(metric(hr, sr).item(), rel=1e-12)


@settings(max_examples=10, deadline=None)
@given(
    pair=photo_pairs(),
    crop=st.integers(1, 8),
    edge=st.sampled_from(["top", "bottom", "left", "right"]),
    depth=st.integers(0, 7),
    along=st.integers(0, 63),
)
def test_crop_is_honoured(pair, crop, edge, depth, along) -> None:
    sr, hr = pair
    depth = depth % crop
    row, col = {
        "top": (depth, along),
        "bottom": (63 - depth, along),
        "left": (along, depth),
        "right": (along, 63 - depth),
    }[edge]
    in_border = sr.copy()
    in_border[row, col] = _far_grey(hr[row, col])
    inside = sr.copy()
    inside[32, 32] = _far_grey(hr[32, 32])
    for name in PIXEL_METRICS:
        metric = create_metric(name, scale=4, crop=crop)
        base = metric(_tensor(sr), _tensor(hr)).item()
        assert metric(_tensor(in_border), _tensor(hr)).item() == base, name
        assert metric(_tensor(inside), _tensor(hr)).item() != base, name


def _far_grey(rgb: np.ndarray) -> np.ndarray:
    """Black or white, whichever is farther from ``rgb`` in luma."""
    return np.full(3, 0 if _np_y(rgb[None, None])[0, 0] > 125.5 else 255, dtype=np.uint8)


# ------------------------------------------------------------ input validation


def _expect_error(fragment: str, metric: Metric, sr: object, hr: object = None) -> None:
    with pytest.raises(ValueError, match=fragment):
        metric(sr, hr)


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(PIXEL_METRICS), dtype=st.sampled_from([torch.uint8, torch.float16]))
def test_wrong_dtype_is_named(name, dtype) -> None:
    good = _tensor(_crop("astronaut", 0, 0))
    _expect_error(rf"{name}: sr has dtype {dtype}", create_metric(name), good.to(dtype), good)
    _expect_error(rf"{name}: hr has dtype {dtype}", create_metric(name), good, good.to(dtype))


@settings(max_examples=10, deadline=None)
@given(
    name=st.sampled_from(PIXEL_METRICS),
    bad=st.sampled_from([-0.01, 1.01, 255.0, float("nan"), float("inf")]),
)
def test_values_outside_unit_range_are_named(name, bad) -> None:
    good = _tensor(_crop("coffee", 0, 0))
    out = good.clone()
    out[0, 1, 5, 7] = bad
    _expect_error(
        rf"{name}: sr values span .* expected finite values in \[0, 1\]",
        create_metric(name),
        out,
        good,
    )
    _expect_error(rf"{name}: hr values span", create_metric(name), good, out)


def test_bad_shapes_are_named() -> None:
    metric = create_metric("ssim_y", scale=4)
    x = _tensor(_crop("chelsea", 0, 0))
    _expect_error(r"sr has shape \(3, 64, 64\), expected N x 3 x H x W", metric, x[0], x)
    _expect_error(r"sr has shape \(1, 1, 64, 64\)", metric, x[:, :1], x[:, :1])
    _expect_error(
        r"sr shape \(1, 3, 64, 60\) differs from hr shape \(1, 3, 64, 64\)", metric, x[..., :60], x
    )
    _expect_error(r"needs hr", metric, x)
    _expect_error(r"sr must be a torch.Tensor, got ndarray", metric, x.numpy(), x)
    small = x[..., :18, :18]
    _expect_error(
        r"18x18 are 10x10 after cropping 4 px per edge; ssim_y needs at least 11x11",
        metric,
        small,
        small,
    )


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="unknown metric 'psnr-y'; available: clipiqa"):
        create_metric("psnr-y")
    with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
        create_metric("psnr_y", scale=0)
    with pytest.raises(ValueError, match="crop must be a non-negative integer, got -1"):
        create_metric("psnr_y", crop=-1)
    with pytest.raises(ValueError, match="unknown setting.* round_Y; allowed: round_y"):
        create_metric("ssim_y", round_Y=False)
    with pytest.raises(ValueError, match="round_y must be True or False"):
        create_metric("psnr_y", round_y="no")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pixel_metrics_on_cuda_match_cpu() -> None:
    hr = _crop("astronaut", 200, 200)
    sr, hr = _tensor(_degrade(hr, 3, 5.0, 0.8)), _tensor(hr)
    for name in PIXEL_METRICS:
        metric = create_metric(name)
        torch.testing.assert_close(metric(sr.cuda(), hr.cuda()), metric(sr, hr), rtol=1e-9, atol=0)


def test_empty_batch_gives_empty_scores() -> None:
    empty = torch.zeros(0, 3, 64, 64)
    assert create_metric("psnr_y")(empty, empty).shape == (0,)


# ------------------------------------------------------ registry, n/a, weights


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("test: network use attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty $TORCH_HOME; network connections fail."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _no_network(monkeypatch)
    return tmp_path / "torch"


def test_every_metric_constructs_offline_and_scores_or_says_why_not(empty_caches) -> None:
    hr = _crop("astronaut", 0, 100, 176)
    noisy = _degrade(hr, 0, 20.0, 0.0)
    sr, ref = _tensor(noisy, hr), _tensor(hr, hr)
    names = available_metrics()
    assert names == sorted(names) and set(PIXEL_METRICS) <= set(names)
    for name in names:
        metric = create_metric(name, scale=4)
        assert metric.name == name and metric.reference in ("full", "none")
        assert metric.direction in ("higher", "lower")
        assert metric.protocol["direction"] == metric.direction
        assert metric.protocol["pyiqa_version"] == pyiqa.__version__
        json.dumps(metric.protocol)
        assert metric.protocol["colour_space"] in ("y", "rgb")
        if not metric.available:
            assert metric.na_text == f"n/a ({metric.missing})"
            assert metric.missing.startswith(("weights missing: ", "dependency missing: "))
            with pytest.raises(MetricUnavailable):
                metric(sr, ref)
            continue
        scores = metric(sr, ref)
        assert scores.dtype == torch.float64 and scores.shape == (2,)
        assert torch.isfinite(scores[0]), name
        singles = torch.cat([metric(sr[i : i + 1], ref[i : i + 1]) for i in range(2)])
        torch.testing.assert_close(scores, singles, rtol=1e-5, atol=1e-8)
        noisy_score, clean_score = scores.tolist()
        # the clean image is the better one in the metric's own direction
        assert (clean_score > noisy_score) == (metric.direction == "higher"), name


def test_missing_weights_are_reported_with_file_and_folder(empty_caches) -> None:
    lpips = create_metric("lpips")
    assert not lpips.available
    assert lpips.na_text.startswith("n/a (weights missing: put LPIPS_v0.1_alex-df73285e.pth")
    assert f"{empty_caches / 'hub' / 'pyiqa'}/" in lpips.missing
    assert (
        f"alexnet-owt-7be5be79.pth (torchvision AlexNet) in {empty_caches / 'hub' / 'checkpoints'}"
        in lpips.missing
    )
    x = _tensor(_crop("astronaut", 0, 0))
    with pytest.raises(MetricUnavailable, match="lpips: weights missing"):
        lpips(x, x)
    maniqa = create_metric("maniqa")
    assert "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k" in maniqa.missing


def test_download_attempts_fail_at_once(empty_caches) -> None:
    import torchvision

    with no_downloads(), pytest.raises(DownloadBlocked, match="alexnet-owt-7be5be79.pth"):
        torchvision.models.alexnet(weights="IMAGENET1K_V1")


def test_unforeseen_download_makes_the_metric_unavailable(empty_caches, monkeypatch) -> None:
    from degkit.metrics import weights

    monkeypatch.setattr(weights, "missing_requirements", lambda spec: None)  # checks miss it
    lpips = create_metric("lpips")
    assert not lpips.available
    checkpoints = empty_caches / "hub" / "checkpoints"
    assert lpips.na_text.startswith(
        f"n/a (weights missing: put alexnet-owt-7be5be79.pth in {checkpoints}/"
    )


def test_lpips_loads_weights_from_the_expected_place(empty_caches) -> None:
    import torchvision
    from pyiqa.archs.lpips_arch import LPIPS

    torch.manual_seed(0)
    checkpoints = empty_caches / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision.models.alexnet().state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    with no_downloads():
        lin_layers = LPIPS(pretrained=False).state_dict()
    (empty_caches / "hub" / "pyiqa").mkdir()
    torch.save(lin_layers, empty_caches / "hub" / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")

    metric = create_metric("lpips")
    assert metric.available and metric.na_text == ""
    hr = _crop("coffee", 100, 100)
    scores = metric(_tensor(_degrade(hr, 0, 10.0, 1.0), hr), _tensor(hr, hr))
    assert scores.dtype == torch.float64 and scores.shape == (2,)
    assert torch.isfinite(scores).all() and scores[0] > 0 and scores[1] == 0


# ------------------------------------------------------------------------ NIQE


def test_shipped_niqe_parameters_are_a_valid_gaussian() -> None:
    mu, cov = load_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0


def test_niqe_prefers_clean_photos_and_reads_user_parameters(tmp_path: Path) -> None:
    photos = [_crop("astronaut", 0, 150, 200), _crop("coffee", 100, 200, 200)]
    noisy = [_degrade(p, i, 15.0, 0.0) for i, p in enumerate(photos)]
    niqe = create_metric("niqe", scale=4)
    assert niqe.protocol["crop_border"] == 4 and niqe.protocol["y_transform"] == "bt601_ycbcr"
    clean_scores = niqe(_tensor(*photos))
    noisy_scores = niqe(_tensor(*noisy))
    assert (clean_scores < noisy_scores).all()
    assert ((clean_scores > 1) & (clean_scores < 20)).all()

    mu, cov = load_params()
    mat = tmp_path / "params.mat"
    scipy.io.savemat(mat, {"mu_prisparam": mu[None], "cov_prisparam": cov})
    from_mat = create_metric("niqe", scale=4, params=str(mat))
    torch.testing.assert_close(from_mat(_tensor(*photos)), clean_scores)
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, mu_pris_param=mu + 0.5, cov_pris_param=cov)
    assert not torch.equal(
        create_metric("niqe", params=str(shifted))(_tensor(*photos)), clean_scores
    )


def test_bad_niqe_parameter_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        create_metric("niqe", params=str(tmp_path / "nope.npz"))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu_pris_param=np.zeros(5), cov_pris_param=np.eye(5))
    with pytest.raises(ValueError, match=r"wrong.npz.*expected mu of 36"):
        create_metric("niqe", params=str(wrong))
    assert shipped_params_path().is_file()

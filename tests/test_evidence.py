"""Fixed degradation evidence: noise and sharpness statistics against analytic values and
scipy's Gaussian filter, and the adaptor's evidence head (zero at the start, trained, saved)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from adaptor_helpers import TINY
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from scipy.ndimage import gaussian_filter

from degkit.models.adaptor import DegradationAdaptor, load_adaptor, save_adaptor
from degkit.models.config import AdaptorConfig
from degkit.models.evidence import (
    EVIDENCE_FEATURES,
    NOISE_FEATURES,
    SHARPNESS_FEATURES,
    degradation_evidence,
    noise_statistics,
    sharpness_statistics,
)
from degkit.models.jpeg_grid import GRID_QUALITIES

MEDIAN_ABS_NORMAL = 0.6744897501960817  # median of |N(0, 1)|
PER_FILTER = 16  # 4 planes (luma, R, G, B) x 4 percentiles
MEDIAN = 2  # index of the median among the percentiles
BANDS = slice(3 * PER_FILTER, 3 * PER_FILTER + 4)
CORRELATIONS = slice(3 * PER_FILTER + 4, None)


def _noisy(value: float, sigma: float, size: int = 256, grey: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (1, 1, size, size) if grey else (1, 3, size, size)
    noise = rng.normal(0, sigma / 255, size=shape)
    return torch.tensor(np.clip(value + noise, 0, 1).repeat(3 // shape[1], 1), dtype=torch.float32)


@settings(max_examples=15, deadline=None)
@given(st.floats(3, 40))
def test_every_filter_reads_white_noise_sigma_at_its_median(sigma):
    stats = noise_statistics(_noisy(0.5, sigma))
    medians = torch.expm1(stats[0, : 3 * PER_FILTER]).view(3, 4, 4)[..., MEDIAN]
    # per filter and plane (the luma's noise is the RGB noise times |(.299, .587, .114)|)
    luma_gain = np.sqrt(0.299**2 + 0.587**2 + 0.114**2)
    expected = sigma * MEDIAN_ABS_NORMAL * torch.tensor([luma_gain, 1, 1, 1])
    torch.testing.assert_close(medians, expected.expand(3, 4).float(), rtol=0.08, atol=0.0)


def test_gaussian_noise_is_flat_across_brightness_and_poisson_noise_grows_with_it():
    ramp = torch.linspace(0.05, 0.95, 256).view(1, 1, 1, 256).expand(1, 3, 256, 256)
    rng = np.random.default_rng(1)
    gaussian = ramp + torch.tensor(rng.normal(0, 12 / 255, ramp.shape), dtype=torch.float32)
    counts = rng.poisson(ramp.numpy() * 255) / 255  # Poisson noise, variance proportional to level
    poisson = torch.tensor(counts, dtype=torch.float32)
    g = torch.expm1(noise_statistics(gaussian.clamp(0, 1))[0, BANDS])
    p = torch.expm1(noise_statistics(poisson.clamp(0, 1))[0, BANDS])
    assert g.max() / g.min() < 1.25
    assert torch.all(p[1:] > p[:-1] * 1.1)
    # sqrt law: the brightest band's (~224) detail against the darkest's (~32)
    assert 2.0 < float(p[-1] / p[0]) < 3.3


def test_grey_noise_correlates_across_channels_and_colour_noise_does_not():
    grey = noise_statistics(_noisy(0.5, 10, grey=True))[0, CORRELATIONS]
    colour = noise_statistics(_noisy(0.5, 10))[0, CORRELATIONS]
    assert torch.all(grey > 0.99)
    assert torch.all(colour.abs() < 0.05)


def test_an_empty_brightness_band_reads_minus_one():
    stats = noise_statistics(_noisy(0.1, 2))  # every pixel near 25 of 255
    assert stats[0, BANDS][0] > 0
    assert torch.equal(stats[0, BANDS][2:], torch.tensor([-1.0, -1.0]))


def _grey(plane: np.ndarray) -> torch.Tensor:
    """A 0-255 grey plane as a ``1 x 3 x H x W`` image in [0, 1] (its luma is the plane)."""
    return torch.tensor(plane / 255, dtype=torch.float32)[None, None].expand(1, 3, *plane.shape)


BAND_MEDIANS = slice(0, 15, 3)  # the 50th percentile of each of the 5 detail bands
RINGS = slice(15, None)


@settings(max_examples=10, deadline=None)
@given(st.floats(1.0, 2.5))
def test_the_spectrum_profile_of_blurred_white_noise_gives_back_the_blur_sigma(sigma):
    # A Gaussian of sigma s scales the power at frequency f by exp(-4 pi^2 s^2 f^2).
    rng = np.random.default_rng(4)
    size = 256
    blurred = gaussian_filter(rng.normal(0, 40, (size, size)), sigma, mode="wrap") + 128
    profile = sharpness_statistics(_grey(blurred))[0, RINGS].double().numpy()
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None])
    ring = np.minimum((radius / 0.5 * 16).astype(int), 15)
    mean_f2 = np.array([np.mean(radius[(ring == r) & (radius > 0)] ** 2) for r in range(16)])
    x = -4 * np.pi**2 * (mean_f2 - mean_f2[0])
    used = x * sigma**2 > -6  # well above float32's floor
    fitted = np.sqrt(np.sum(x[used] * profile[used]) / np.sum(x[used] ** 2))
    assert abs(fitted - sigma) < 0.1 * sigma


def test_the_finest_detail_band_of_white_noise_matches_scipys_gaussian_filter():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 20, (256, 256))
    band = noise - gaussian_filter(noise, 0.5, mode="reflect")
    expected = np.median(np.abs(band[3:-3, 3:-3]))
    finest = np.expm1(float(sharpness_statistics(_grey(noise + 128))[0, 0]))
    assert abs(finest - expected) < 0.03 * expected


@settings(max_examples=10, deadline=None)
@given(st.floats(0.3, 1.5), st.floats(0.2, 1.0))
def test_more_blur_leaves_less_fine_detail(sigma, more):
    rng = np.random.default_rng(6)
    texture = rng.normal(128, 30, (96, 96))
    light = sharpness_statistics(_grey(gaussian_filter(texture, sigma)))[0]
    heavy = sharpness_statistics(_grey(gaussian_filter(texture, sigma + more)))[0]
    assert heavy[BAND_MEDIANS][0] < light[BAND_MEDIANS][0]
    assert heavy[RINGS][-1] < light[RINGS][-1]


def test_a_flat_image_has_no_detail_and_small_images_fill_their_empty_rings():
    flat = sharpness_statistics(torch.full((1, 3, 12, 12), 0.5))
    torch.testing.assert_close(flat, torch.zeros(1, SHARPNESS_FEATURES), atol=1e-4, rtol=0)
    small = sharpness_statistics(
        torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    )
    assert torch.isfinite(small).all()
    assert torch.equal(small[:, RINGS][:, 0], torch.zeros(2))  # the first ring is the reference
    f = np.fft.fftfreq(16)
    radius = np.hypot(f[:, None], f[None])
    ring = np.minimum((radius / 0.5 * 16).astype(int), 15)
    empty = [r for r in range(1, 16) if not np.any((ring == r) & (radius > 0))]
    assert empty  # at 16 px some rings hold no frequency of the Fourier grid
    for r in empty:
        assert torch.equal(small[:, RINGS][:, r], small[:, RINGS][:, r - 1])


def test_degradation_evidence_is_the_grid_scores_then_the_noise_and_sharpness_statistics():
    rng = np.random.default_rng(2)
    photo = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=40)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    images = torch.tensor(decoded).permute(2, 0, 1)[None].float() / 255
    evidence = degradation_evidence(images)
    grid, noise = len(GRID_QUALITIES), len(GRID_QUALITIES) + NOISE_FEATURES
    assert evidence.shape == (1, EVIDENCE_FEATURES) == (1, noise + SHARPNESS_FEATURES)
    assert evidence[0, GRID_QUALITIES.index(40)] > 0.6  # libjpeg's own quality fits its quantiser
    torch.testing.assert_close(evidence[:, grid:noise], noise_statistics(images))
    torch.testing.assert_close(evidence[:, noise:], sharpness_statistics(images))
    assert torch.isfinite(evidence).all()


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 1, 64, 64), (1, 3, 2, 64)])
@pytest.mark.parametrize("statistics", [noise_statistics, sharpness_statistics])
def test_bad_input_is_refused_with_its_shape(statistics, shape):
    with pytest.raises(ValueError, match="images must"):
        statistics(torch.rand(shape))


EVIDENCE_TINY = dataclasses.replace(TINY, evidence=True)


def test_an_untrained_evidence_head_changes_nothing():
    torch.manual_seed(0)
    plain = DegradationAdaptor(TINY)
    torch.manual_seed(0)
    with_evidence = DegradationAdaptor(EVIDENCE_TINY)
    assert plain.evidence_head is None
    images = torch.rand(3, 3, 16, 16)
    a, b = plain(images), with_evidence(images)
    for name in ("content", "degradation", "per_type"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-6, rtol=0)
    assert any(n.startswith("evidence_head.") for n, _ in with_evidence.trainable_parameters())


def test_the_evidence_head_learns_to_move_per_type_embeddings_towards_a_target():
    torch.manual_seed(0)
    model = DegradationAdaptor(EVIDENCE_TINY)
    images = torch.rand(4, 3, 16, 16)
    target = torch.nn.functional.normalize(torch.randn(4, TINY.num_types, TINY.embed_dim), dim=-1)
    optimizer = torch.optim.Adam(model.evidence_head.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = (1 - (model(images).per_type * target).sum(-1)).mean()
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert all(p.grad is None for p in model.clip.parameters())


def test_a_trained_evidence_head_reads_each_image_alone_in_eval_mode():
    # the batch norm standardises each statistic by running statistics once trained,
    # so in eval mode an image's embeddings do not depend on the rest of its batch
    torch.manual_seed(0)
    model = DegradationAdaptor(EVIDENCE_TINY)
    with torch.no_grad():
        model.evidence_head.mlp[-1].weight.normal_()
    model.train()
    for _ in range(3):
        model(torch.rand(8, 3, 16, 16))
    norm = model.evidence_head.mlp[0]
    assert norm.num_batches_tracked == 3 and norm.running_mean.abs().sum() > 0
    model.eval()
    images = torch.rand(4, 3, 16, 16)
    batched = model(images).per_type
    alone = torch.cat([model(image[None]).per_type for image in images])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_an_evidence_adaptor_survives_a_checkpoint_and_old_configs_load_without_it(tmp_path):
    torch.manual_seed(0)
    model = DegradationAdaptor(EVIDENCE_TINY)
    with torch.no_grad():
        model.evidence_head.mlp[-1].weight.normal_()
    save_adaptor(model, tmp_path / "a.safetensors")
    loaded, _, _ = load_adaptor(tmp_path / "a.safetensors")
    assert loaded.config.evidence
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(images).per_type, model(images).per_type)
    old = {k: v for k, v in TINY.to_dict().items() if k != "evidence"}
    assert AdaptorConfig.from_dict(old).evidence is False
    with pytest.raises(ValueError, match="evidence must be true or false"):
        dataclasses.replace(TINY, evidence=1)


def test_an_evidence_head_of_other_statistics_is_refused_by_name(tmp_path):
    save_adaptor(DegradationAdaptor(EVIDENCE_TINY), tmp_path / "a.safetensors")
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name in ("weight", "bias"):  # an older head: 136 statistics in
        tensors[f"model.evidence_head.mlp.0.{name}"] = torch.ones(136)
    first = "model.evidence_head.mlp.1.weight"
    tensors[first] = tensors[first][:, :136].contiguous()
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata)
    with pytest.raises(
        ValueError, match=f"old.safetensors: its evidence head reads 136 .* {EVIDENCE_FEATURES}"
    ):
        load_adaptor(tmp_path / "old.safetensors")


def test_the_percentiles_are_numpys_linear_percentiles():
    images = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    red = images[0, 0].double().numpy() * 255
    diagonal = (red[0::2, 0::2] - red[0::2, 1::2] - red[1::2, 0::2] + red[1::2, 1::2]) / 2
    expected = np.log1p(np.percentile(np.abs(diagonal), [10, 25, 50, 75]))
    red_diagonal = noise_statistics(images)[0, 4:8]  # diagonal filter, planes luma, R, G, B
    np.testing.assert_allclose(red_diagonal.numpy(), expected, rtol=1e-5)

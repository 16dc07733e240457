"""Fixed degradation evidence: noise statistics against analytic values, and the adaptor's
evidence head (zero at the start, trained, saved)."""

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

from degkit.models.adaptor import DegradationAdaptor, load_adaptor, save_adaptor
from degkit.models.config import AdaptorConfig
from degkit.models.evidence import (
    EVIDENCE_FEATURES,
    NOISE_FEATURES,
    degradation_evidence,
    noise_statistics,
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


def test_degradation_evidence_is_the_grid_scores_then_the_noise_statistics():
    rng = np.random.default_rng(2)
    photo = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=40)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    images = torch.tensor(decoded).permute(2, 0, 1)[None].float() / 255
    evidence = degradation_evidence(images)
    assert evidence.shape == (1, EVIDENCE_FEATURES) == (1, len(GRID_QUALITIES) + NOISE_FEATURES)
    grid = evidence[0, : len(GRID_QUALITIES)]
    assert grid[GRID_QUALITIES.index(40)] > 0.6  # libjpeg's own quality fits its quantiser
    torch.testing.assert_close(evidence[:, len(GRID_QUALITIES) :], noise_statistics(images))
    assert torch.isfinite(evidence).all()


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 1, 64, 64), (1, 3, 2, 64)])
def test_bad_input_is_refused_with_its_shape(shape):
    with pytest.raises(ValueError, match="images must"):
        noise_statistics(torch.rand(shape))


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


def test_the_percentiles_are_numpys_linear_percentiles():
    images = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    red = images[0, 0].double().numpy() * 255
    diagonal = (red[0::2, 0::2] - red[0::2, 1::2] - red[1::2, 0::2] + red[1::2, 1::2]) / 2
    expected = np.log1p(np.percentile(np.abs(diagonal), [10, 25, 50, 75]))
    red_diagonal = noise_statistics(images)[0, 4:8]  # diagonal filter, planes luma, R, G, B
    np.testing.assert_allclose(red_diagonal.numpy(), expected, rtol=1e-5)

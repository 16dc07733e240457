"""The level regressor (the non-VLM control): targets from flat columns, masked loss, learning."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
import torch
from adaptor_helpers import scalar
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from degkit.captions import PAPER_TYPES, flat_columns
from degkit.models.estimator import (
    LEVEL_SCALES,
    LEVEL_SPAN,
    LevelRegressor,
    histogram_edges,
    histogram_median,
    histogram_target,
    level_loss,
    levels_from_flat,
    levels_from_records,
)
from degkit.models.jpeg_grid import GRID_QUALITIES
from degkit.train.regressor import augment_batch
from degkit.train.sr_data import dihedral


def test_levels_from_flat_columns_of_hand_made_records():
    records = [
        {"op": "blur", "kernel": "iso", "kernel_size": 7, "sigma_x": 1.5, "sigma_y": 1.5},
        {"op": "poisson_noise", "scale": 2.0, "gray": False, "seed": 1},
        {"op": "jpeg", "quality": 40.0, "mode": "codec"},
    ]
    levels, present = levels_from_flat(flat_columns(records))
    assert dict(zip(PAPER_TYPES, present, strict=True)) == {
        "blur": True,
        "gaussian noise": False,
        "poisson noise": True,
        "jpeg": True,
        "ringing": False,
    }
    assert levels == [1.5, 0.0, 2.0, 40.0, 0.0]
    levels, present = levels_from_flat(
        flat_columns([{"op": "gaussian_noise", "sigma": 12.0, "gray": True, "seed": 2}])
    )
    assert present == [False, True, False, False, False] and levels[1] == 12.0
    levels, present = levels_from_flat(flat_columns([{"op": "ringing", "cutoff": 1.2}]))
    assert present == [False, False, False, False, True] and levels[4] == 1.0


def test_outputs_per_type_for_any_image_size():
    model = LevelRegressor()
    for size in (16, 23):
        out = model(torch.rand(2, 3, size, size))
        assert out.presence_logits.shape == out.levels.shape == (2, len(PAPER_TYPES))
    with pytest.raises(ValueError, match="no level scale"):
        LevelRegressor(types=("blur", "haze"))
    with pytest.raises(ValueError, match="pool must be one of"):
        LevelRegressor(pool="max")


def test_stem_zero_and_mean_pooling_is_the_plain_four_block_network():
    plain = LevelRegressor(width=8, stem=0, pool="mean", jpeg_grid=False, level_bins=0)
    assert sorted(plain.state_dict()) == sorted(
        [f"features.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
        + ["head.weight", "head.bias"]
    )
    assert (plain.head.in_features, plain.head.out_features) == (4 * 8, 2 * len(PAPER_TYPES))
    full = LevelRegressor(width=8, stem=2, level_bins=64)
    assert full.head.out_features == len(PAPER_TYPES) * (1 + 64)  # presence, 64 bins
    assert [m.stride for m in full.stem if isinstance(m, torch.nn.Conv2d)] == [(1, 1)] * 2
    # mean and std of the stem and last block, and the JPEG grid scores' features
    assert full.head.in_features == 2 * (8 + 4 * 8) + 64
    assert full.grid[0].in_features == len(GRID_QUALITIES)


@pytest.mark.parametrize("bins", [0, 64], ids=["scalar", "histogram"])
def test_loss_ignores_the_level_predicted_for_absent_types(bins):
    model = LevelRegressor(level_bins=bins)
    out = model(torch.rand(3, 3, 16, 16))
    levels = torch.tensor([[1.0, 0, 0, 50, 0]] * 3)
    present = torch.tensor([[True, False, False, True, False]] * 3)
    scales = torch.tensor([LEVEL_SCALES[t] for t in PAPER_TYPES])
    before = level_loss(out, levels, present, scales).detach()
    field = "level_logits" if bins else "levels"
    predicted = getattr(out, field).detach().clone()
    setattr(out, field, predicted)
    predicted[:, 1] += torch.linspace(0, 100, predicted.shape[-1]) if bins else 100.0  # absent
    assert scalar(level_loss(out, levels, present, scales)) == pytest.approx(scalar(before))
    if bins:  # a present one, now confidently at the top of the span
        predicted[:, 0] = torch.linspace(-50, 50, bins)
    else:  # a present one, now further off
        predicted[:, 0] = levels[:, 0] + 3.0
    assert scalar(level_loss(out, levels, present, scales)) > scalar(before)


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0, 1), bins=st.sampled_from([16, 64, 100]))
def test_a_histogram_target_is_a_distribution_whose_median_is_its_level(share, bins):
    width = LEVEL_SPAN / bins
    level = 3 * width + share * (LEVEL_SPAN - 6 * width)  # 4 sd of the blur from either end
    target = histogram_target(torch.tensor([level], dtype=torch.float64), bins)[0]
    assert target.min() >= 0 and float(target.sum()) == pytest.approx(1.0, abs=1e-9)
    edges = histogram_edges(bins).double()
    peak = int(target.argmax())
    assert edges[peak] - width <= level <= edges[peak + 1] + width
    # a Gaussian's bins, read linearly within the median bin: the level, to a tenth of a bin
    median = float(histogram_median(target.log()))
    assert median == pytest.approx(level, abs=0.1 * width)


def test_histogram_median_of_hand_made_histograms():
    flat = torch.zeros(1, 10)
    assert float(histogram_median(flat)) == pytest.approx(LEVEL_SPAN / 2)
    one_bin = torch.full((1, 10), -1e9)
    one_bin[0, 3] = 0.0  # all the mass in bin 3: the middle of that bin
    assert float(histogram_median(one_bin)) == pytest.approx(3.5 * LEVEL_SPAN / 10)
    two = torch.full((1, 10), -1e9)
    two[0, [0, 9]] = 0.0  # half the mass in each end bin: the median ends bin 0
    assert float(histogram_median(two)) == pytest.approx(LEVEL_SPAN / 10, abs=1e-6)
    with pytest.raises(ValueError, match="level_bins must be 0"):
        LevelRegressor(level_bins=1)


def test_regressor_learns_noise_level_and_presence_on_a_toy_set():
    g = torch.Generator().manual_seed(0)
    n = 64
    sigma = 5 + torch.rand(n, generator=g) * 25  # Gaussian noise sigma on 0-255
    present = torch.zeros(n, 5, dtype=torch.bool)
    present[: n // 2, 1] = True  # the first half is noisy, the second clean
    sigma = torch.where(present[:, 1], sigma, torch.zeros(n))
    base = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.25
    images = (base + torch.randn(n, 3, 16, 16, generator=g) * sigma.view(-1, 1, 1, 1) / 255).clamp(
        0, 1
    )
    levels = torch.zeros(n, 5)
    levels[:, 1] = sigma
    torch.manual_seed(0)
    model = LevelRegressor(width=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        loss = level_loss(model(images), levels, present, model.scales)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]  # the histogram term cannot go below its target's entropy
    with torch.no_grad():
        out = model(images)
    noisy = present[:, 1]
    error = (out.levels[noisy, 1] - sigma[noisy]).abs().mean()
    assert error < 3.0  # sigma spans 5-30
    assert ((out.presence_logits[:, 1] > 0) == noisy).float().mean() > 0.9


def test_levels_from_flat_reads_the_level_columns_not_the_last_op():
    noises = [
        {"op": "gaussian_noise", "sigma": 3.0, "gray": False, "seed": 1},
        {"op": "gaussian_noise", "sigma": 4.0, "gray": False, "seed": 2},
    ]
    row = flat_columns(noises)
    assert row["noise_level"] == 4.0  # the last op
    assert levels_from_flat(row) == levels_from_records(noises)
    assert levels_from_flat(row)[0][1] == pytest.approx(5.0)  # sqrt(3**2 + 4**2)
    flag = {**row, "ringing": torch.tensor(True)}  # a collated flag may be a tensor
    assert levels_from_flat(flag)[1] == [False, True, False, False, True]


def test_augment_batch_flips_turns_and_crops_on_the_jpeg_grid():
    images = torch.rand(6, 3, 64, 64)
    out = augment_batch(images, torch.Generator().manual_seed(0), True, 32)
    assert out.shape == (6, 3, 32, 32)
    for x, y in zip(images, out, strict=True):
        found = [
            (top, left)
            for hflip in (False, True)
            for turns in range(4)
            for top in range(0, 33, 16)
            for left in range(0, 33, 16)
            if torch.equal(dihedral(x, hflip, turns)[..., top : top + 32, left : left + 32], y)
        ]
        assert found  # a flip / rotation of the image, cut on the 16-pixel grid
    same = augment_batch(images, torch.Generator().manual_seed(0), False, 0)
    assert torch.equal(same, images)
    wide = augment_batch(torch.rand(4, 3, 16, 32), torch.Generator().manual_seed(1), True, 0)
    assert wide.shape == (4, 3, 16, 32)  # non-square: no quarter turns
    with pytest.raises(ValueError, match="--crop 80 is larger"):
        augment_batch(images, torch.Generator(), False, 80)


def test_the_jpeg_grid_lets_the_regressor_read_the_quality_of_photo_crops():
    g = torch.Generator().manual_seed(0)
    photos = [skimage.data.astronaut(), skimage.data.coffee()]
    images, qualities = [], []
    for i in range(64):
        photo = photos[i % 2]
        top, left = (int(torch.randint(0, s - 32, (), generator=g)) for s in photo.shape[:2])
        quality = int(torch.randint(30, 91, (), generator=g))
        buffer = io.BytesIO()
        Image.fromarray(photo[top : top + 32, left : left + 32]).save(
            buffer, "JPEG", quality=quality
        )
        decoded = np.array(Image.open(buffer).convert("RGB"))
        images.append(torch.from_numpy(decoded).permute(2, 0, 1).float() / 255)
        qualities.append(float(quality))
    images, quality = torch.stack(images), torch.tensor(qualities)
    levels = torch.zeros(len(images), 5)
    levels[:, 3] = quality
    present = torch.zeros(len(images), 5, dtype=torch.bool)
    present[:, 3] = True
    train, test = slice(0, 48), slice(48, 64)
    torch.manual_seed(0)
    model = LevelRegressor(width=4, stem=0, pool="mean")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        out = model(images[train])
        loss = level_loss(out, levels[train], present[train], model.scales)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        error = (model(images[test]).levels[:, 3] - quality[test]).abs().mean()
    assert error < 8.0  # qualities span 30-90; the mean guess is off by about 15

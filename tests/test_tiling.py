"""Tiled upscaling equals one pass for a network whose receptive field fits the overlap."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from degkit.models.tiling import upscale_tiled


def _local_net(scale: int) -> nn.Module:
    """Three 3x3 convolutions (receptive radius 3 LR pixels), then pixel shuffle."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
        nn.PixelShuffle(scale),
    ).eval()


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(5, 40),
    width=st.integers(5, 40),
    tile=st.integers(4, 24),
    scale=st.sampled_from([2, 3, 4]),
)
def test_tiled_equals_whole_when_overlap_covers_the_receptive_field(height, width, tile, scale):
    net = _local_net(scale)
    lr = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.no_grad():
        whole = net(lr)
        tiled = upscale_tiled(net, lr, scale, tile=tile, overlap=3)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


def test_too_little_overlap_shows_seams():
    net = _local_net(2)
    lr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        error = (upscale_tiled(net, lr, 2, tile=8, overlap=0) - net(lr)).abs().max()
    assert error > 1e-3


def test_wrong_scale_and_bad_arguments_are_refused():
    net = _local_net(2)
    lr = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="expected scale 4"):
        upscale_tiled(net, lr, 4, tile=8)
    with pytest.raises(ValueError, match="tile must be >= 1"):
        upscale_tiled(net, lr, 2, tile=0)

"""Hypothesis strategies for property-testing degradation operators.

Images are drawn as float32 ``N x 3 x H x W`` tensors in ``[0, 1]``: random
pixels (from a drawn seed, so shrinking stays cheap) blended with smooth
gradients, so both noise-like and photo-like content are exercised.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

__all__ = ["image_batches", "seeds", "indices"]


def seeds() -> st.SearchStrategy[int]:
    """Dataset seeds (non-negative 32-bit integers)."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def indices(max_n: int = 8) -> st.SearchStrategy[list[int]]:
    """Distinct global sample indices, in arbitrary order."""
    return st.lists(
        st.integers(min_value=0, max_value=10**9), min_size=1, max_size=max_n, unique=True
    )


@st.composite
def image_batches(
    draw: st.DrawFn,
    min_n: int = 1,
    max_n: int = 4,
    min_size: int = 8,
    max_size: int = 48,
    channels: int = 3,
) -> torch.Tensor:
    """A float32 batch ``N x C x H x W`` in ``[0, 1]`` mixing texture and smooth gradients."""
    n = draw(st.integers(min_n, max_n))
    h = draw(st.integers(min_size, max_size))
    w = draw(st.integers(min_size, max_size))
    smoothness = draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(draw(seeds()))
    texture = rng.random((n, channels, h, w))
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    phase = rng.random((n, channels, 1, 1))
    gradient = (0.5 + 0.5 * np.sin(2 * np.pi * (xx + yy + phase))) * np.ones_like(texture)
    images = (1 - smoothness) * texture + smoothness * gradient
    return torch.from_numpy(images.astype(np.float32)).clamp_(0.0, 1.0)

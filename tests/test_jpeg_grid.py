"""JPEG grid scores against libjpeg (through Pillow): a JPEG's own quality fits, coarser
quantisers and uncompressed photos do not."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from degkit.models.jpeg_grid import GRID_QUALITIES, jpeg_grid_scores
from degkit.ops.jpeg_tensor import quant_tables

PHOTO = skimage.data.astronaut()[100:356:2, 150:406:2]  # 128 x 128, real detail


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def _pillow_jpeg(pixels: np.ndarray, quality: int, subsampling: int = 2) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return _tensor(np.asarray(Image.open(buffer).convert("RGB")))


def _coarser(quality: int) -> list[int]:
    """Candidate qualities whose luma steps are all at least those of ``quality``, one larger."""
    own = quant_tables(torch.tensor([quality]))[0, 0]
    tables = quant_tables(torch.tensor(GRID_QUALITIES))[:, 0]
    return [
        q
        for q, t in zip(GRID_QUALITIES, tables, strict=True)
        if (t >= own).all() and (t > own).any()
    ]


@settings(max_examples=12, deadline=None)
@given(quality=st.integers(30, 90), subsampling=st.sampled_from([0, 2]))
def test_a_jpegs_own_quality_fits_and_coarser_ones_do_not(quality, subsampling):
    scores = jpeg_grid_scores(_pillow_jpeg(PHOTO, quality, subsampling))[0]
    own = scores[GRID_QUALITIES.index(quality)]
    assert own > 0.6
    coarser = [scores[GRID_QUALITIES.index(q)] for q in _coarser(quality) if q <= quality - 5]
    assert all(s < own - 0.4 for s in coarser)


def test_an_uncompressed_photo_fits_no_quality():
    scores = jpeg_grid_scores(_tensor(PHOTO))[0]
    assert scores[: GRID_QUALITIES.index(90) + 1].abs().max() < 0.2


def test_a_crop_off_the_grid_loses_the_evidence():
    decoded = _pillow_jpeg(PHOTO, 50)
    on, off = jpeg_grid_scores(decoded[..., 8:, 8:]), jpeg_grid_scores(decoded[..., 3:, 5:])
    index = GRID_QUALITIES.index(50)
    assert on[0, index] > 0.6 and off[0, index] < 0.3


def test_shapes_partial_blocks_and_bad_input():
    scores = jpeg_grid_scores(torch.rand(3, 3, 21, 30), qualities=(50, 90))
    assert scores.shape == (3, 2) and scores.abs().max() <= 1
    assert torch.equal(
        jpeg_grid_scores(torch.rand(1, 3, 7, 7)), torch.zeros(1, len(GRID_QUALITIES))
    )
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        jpeg_grid_scores(torch.rand(3, 16, 16))

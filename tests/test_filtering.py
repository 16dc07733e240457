"""Per-sample filtering: the OpenCV (CPU) and conv2d (autograd / CUDA) paths agree,
sizes mix freely in a batch, and the border is a mirror without edge repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from degkit.ops.filtering import (
    _fft_is_cheaper,
    filter2d_per_sample,
    filter_separable_per_sample,
)
from degkit.testing import image_batches


def center_pad_kernels(kernels: list[torch.Tensor]) -> torch.Tensor:
    """Stack odd square kernels of different sizes into ``N x K x K`` (zero padded)."""
    size = max(k.shape[-1] for k in kernels)
    out = kernels[0].new_zeros(len(kernels), size, size)
    for i, k in enumerate(kernels):
        off = (size - k.shape[-1]) // 2
        out[i, off : off + k.shape[-2], off : off + k.shape[-1]] = k
    return out


def _random_kernels(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    # 13 and 21 are past OpenCV's direct filter2D limit (121 taps): split into strips.
    sizes = rng.choice([1, 3, 5, 7, 9, 13, 21], size=n)
    kernels = [torch.from_numpy(rng.random((s, s))).float() for s in sizes]
    kernels = [k / k.sum() for k in kernels]
    return center_pad_kernels(kernels)


@given(x=image_batches(min_size=12), seed=st.integers(0, 1000))
def test_opencv_and_conv2d_separable_paths_agree(x: torch.Tensor, seed: int) -> None:
    kernels = _random_kernels(x.shape[0], seed)
    rows, cols = kernels.sum(1), kernels.sum(2)
    fast = filter_separable_per_sample(x, rows, cols)
    with torch.enable_grad():
        slow = filter_separable_per_sample(x.clone().requires_grad_(True), rows, cols).detach()
    assert torch.allclose(fast, slow, atol=2e-6)
    reference = filter2d_per_sample(x, cols[:, :, None] * rows[:, None, :])
    assert torch.allclose(fast, reference, atol=2e-6)
    with torch.enable_grad():
        outer = cols[:, :, None] * rows[:, None, :]
        slow2d = filter2d_per_sample(x.clone().requires_grad_(True), outer).detach()
    assert torch.allclose(reference, slow2d, atol=2e-6)


@given(x=image_batches(min_size=12, max_n=3), seed=st.integers(0, 1000))
def test_matches_scipy_mirror_correlation(x: torch.Tensor, seed: int) -> None:
    """Independent reference: scipy's correlate with 'mirror' borders, per sample."""
    kernels = _random_kernels(x.shape[0], seed)
    y = filter2d_per_sample(x, kernels)
    for i in range(x.shape[0]):
        for c in range(3):
            ref = ndimage.correlate(
                x[i, c].double().numpy(), kernels[i].double().numpy(), mode="mirror"
            )
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=2e-6)


def test_batch_equals_each_sample_with_its_own_size() -> None:
    x = torch.rand(4, 3, 20, 24)
    kernels = _random_kernels(4, 7)
    batched = filter2d_per_sample(x, kernels)
    for i in range(4):
        size = int((kernels[i].abs().sum(0) > 0).sum())
        off = (kernels.shape[-1] - size) // 2
        own = kernels[i : i + 1, off : off + size, off : off + size]
        assert torch.allclose(batched[i : i + 1], filter2d_per_sample(x[i : i + 1], own), atol=1e-6)


def test_conv2d_path_gives_a_sample_the_same_bits_alone_or_in_a_batch() -> None:
    """The autograd / CUDA path pads every kernel to the largest: mixing sizes changes nothing."""
    x = torch.rand(5, 3, 24, 24)
    kernels = _random_kernels(5, 3)
    rows, cols = kernels.sum(1), kernels.sum(2)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        batch2d = filter2d_per_sample(xg, kernels).detach()
        batch_sep = filter_separable_per_sample(xg, rows, cols).detach()
        for i in range(5):
            one = xg[i : i + 1]
            assert torch.equal(
                filter2d_per_sample(one, kernels[i : i + 1]).detach(), batch2d[i : i + 1]
            )
            alone = filter_separable_per_sample(one, rows[i : i + 1], cols[i : i + 1]).detach()
            assert torch.equal(alone, batch_sep[i : i + 1])


def test_subnormal_taps_count_as_zero() -> None:
    """A tap below float32's smallest normal (as in a sigma 0.3 Gaussian) is dropped,
    on both paths, and the result is the zero-tap kernel's."""
    x = torch.rand(2, 3, 16, 16)
    kernels = torch.zeros(2, 5, 5)
    kernels[:, 2, 2] = 0.5
    kernels[:, 2, 1] = kernels[:, 2, 3] = 0.25
    tiny = kernels.clone()
    tiny[:, 0, 0] = 1e-40
    expected = filter2d_per_sample(x, kernels)
    assert torch.equal(filter2d_per_sample(x, tiny), expected)
    with torch.enable_grad():
        slow = filter2d_per_sample(x.clone().requires_grad_(True), tiny).detach()
    assert torch.allclose(slow, expected, atol=1e-6)


def test_clamp_clips_to_the_unit_range_on_both_paths() -> None:
    x = torch.rand(3, 3, 20, 20)
    sharpen = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]]).expand(3, 3, 3)
    raw = filter2d_per_sample(x, sharpen)
    assert raw.min() < 0 and raw.max() > 1
    clamped = filter2d_per_sample(x, sharpen, clamp=True)
    assert torch.equal(clamped, raw.clamp(0, 1))
    with torch.enable_grad():
        slow = filter2d_per_sample(x.clone().requires_grad_(True), sharpen, clamp=True).detach()
    assert torch.allclose(slow, clamped, atol=1e-6)
    taps = torch.tensor([-0.5, 2.0, -0.5]).expand(3, 3)
    separable = filter_separable_per_sample(x, taps, taps, clamp=True)
    assert separable.min() >= 0 and separable.max() <= 1


@pytest.mark.parametrize(("h", "w", "k"), [(96, 80, 21), (64, 64, 15), (40, 36, 13), (30, 30, 21)])
def test_fft_and_strip_paths_match_scipy(h: int, w: int, k: int) -> None:
    """Large kernels go through FFTs or direct strips (whichever is cheaper); both must be
    the mirrored correlation (scipy reference)."""
    rng = np.random.default_rng(k)
    x = torch.from_numpy(rng.random((2, 3, h, w), dtype=np.float32))
    kernels = torch.from_numpy(rng.random((2, k, k))).float()
    kernels /= kernels.sum((1, 2), keepdim=True)
    y = filter2d_per_sample(x, kernels)
    for i in range(2):
        for c in range(3):
            ref = ndimage.correlate(
                x[i, c].double().numpy(), kernels[i].double().numpy(), mode="mirror"
            )
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=2e-6)


def test_both_large_kernel_paths_are_used() -> None:
    assert _fft_is_cheaper(256, 256, 21) and _fft_is_cheaper(96, 80, 21)
    assert not _fft_is_cheaper(40, 36, 13) and not _fft_is_cheaper(256, 256, 11)

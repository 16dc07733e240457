"""Filtering ragged batches on canvases: the blur family in one pass, each sample's border
its own (reflected, or replicated where the sample is too small to reflect)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from op_helpers import assert_canvas_matches_groups, f64, without_host_waits
from scipy import ndimage

from degkit.ops import create_op
from degkit.ops.blur import KERNEL_LABELS
from degkit.ops.canvas import Canvas
from degkit.ops.filtering import filter2d_canvas, filter_separable_canvas
from degkit.rng import BatchStreams

# Heights and widths mixing samples smaller than a 21-tap kernel's radius (replicated
# border) with larger ones (reflected border).
SIZES = [(5, 40), (40, 3), (2, 2), (33, 47), (64, 50), (9, 12), (1, 30), (70, 64)]


def ragged_images(seed: int = 0, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g).requires_grad_(requires_grad) for h, w in SIZES]


def mixed_blur_params() -> dict[str, torch.Tensor]:
    """Separable Gaussians, rotated and generalized 2-D kernels, a sinc, size 1, and a
    sigma so small that the support (5) is far below the kernel size (21): its 9 x 12
    sample is reflected as its support allows, not replicated as its size would say."""
    kernels = ["iso", "aniso", "generalized_aniso", "plateau_iso", "sinc", "iso", "aniso", "iso"]
    return {
        "kernel": torch.tensor([KERNEL_LABELS.index(k) for k in kernels]),
        "kernel_size": torch.tensor([7, 21, 13, 9, 21, 21, 15, 1]),
        "sigma_x": f64([1.5, 2.5, 1.2, 2.0, 0.0, 0.2, 3.0, 1.0]),
        "sigma_y": f64([1.5, 0.8, 2.2, 2.0, 0.0, 0.2, 1.0, 1.0]),
        "theta": f64([0.0, 0.6, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        "beta": f64([1.0, 1.0, 0.7, 1.5, 1.0, 1.0, 1.0, 1.0]),
        "cutoff": f64([0.0, 0.0, 0.0, 0.0, 1.2, 0.0, 0.0, 0.0]),
    }


OP_CONFIGS = [
    ("blur", {"sinc_prob": 0.3}),
    ("motion_blur", {}),
    ("defocus_blur", {}),
    ("ringing", {}),
    ("usm", {"radius": (1, 60), "weight": (0.0, 2.0), "threshold": (0.0, 20.0)}),
]


# Grouping by shape on the CPU filters the samples large enough to reflect through OpenCV,
# whose sums round differently from conv2d's (at most 1.3e-6 measured over 10 draws of
# every op here); the samples it replicates go through conv2d as on the canvas.
OPENCV_ATOL = 2e-6


def test_blur_with_mixed_kernels_matches_groups() -> None:
    op = create_op("blur")
    assert_canvas_matches_groups(op, ragged_images(), mixed_blur_params(), atol=OPENCV_ATOL)


def test_blur_matches_the_grouped_conv2d_path_bit_for_bit() -> None:
    """With autograd the grouped path uses conv2d on every sample, as the canvas does."""
    op = create_op("blur")
    assert_canvas_matches_groups(op, ragged_images(requires_grad=True), mixed_blur_params())


@pytest.mark.parametrize(("name", "config"), OP_CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_ops_on_a_canvas_match_groups(name: str, config: dict, seed: int) -> None:
    op = create_op(name, **config)
    params = op.sample(BatchStreams(seed, range(len(SIZES))), len(SIZES))
    assert_canvas_matches_groups(op, ragged_images(seed), params, atol=OPENCV_ATOL)
    # usm's 0/1 mask needs no gradient, so grouping filters it through OpenCV even then.
    if name != "usm":
        assert_canvas_matches_groups(op, ragged_images(seed, requires_grad=True), params)


def _centred(kernels: list[torch.Tensor]) -> torch.Tensor:
    """Odd 1-D or square kernels zero-padded and centred in the largest size."""
    largest = max(k.shape[-1] for k in kernels)
    out = torch.zeros(len(kernels), *[largest] * kernels[0].ndim)
    for i, k in enumerate(kernels):
        off = (largest - k.shape[-1]) // 2
        out[(i, *[slice(off, off + k.shape[-1])] * k.ndim)] = k
    return out


def _random_kernels(sizes: list[int], seed: int) -> list[torch.Tensor]:
    """Positive ``k x k`` float32 kernels summing to 1."""
    rng = np.random.default_rng(seed)
    taps = [rng.random((k, k)) for k in sizes]
    return [torch.from_numpy(t / t.sum()).float() for t in taps]


def _on_canvas(images: list[torch.Tensor], height: int, width: int, fill: float) -> Canvas:
    """``images`` on a canvas of ``height x width`` whose padding holds ``fill``."""
    data = torch.full((len(images), 3, height, width), fill)
    for i, img in enumerate(images):
        data[i, :, : img.shape[-2], : img.shape[-1]] = img
    return Canvas(data, torch.tensor([list(img.shape[-2:]) for img in images]))


odd_sizes = st.integers(0, 12).map(lambda half: 2 * half + 1)
lengths = st.integers(1, 40)


@given(
    shape=st.tuples(lengths, lengths),
    size=odd_sizes,
    neighbours=st.lists(st.tuples(lengths, lengths, odd_sizes), max_size=3),
    place=st.integers(0, 3),
    extra=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    fill=st.sampled_from([0.0, -3.0, 7.5]),
    separable=st.booleans(),
)
def test_a_sample_gets_the_same_bits_on_any_canvas(
    shape, size, neighbours, place, extra, fill, separable
) -> None:
    """Canvas size, padding, neighbours and their kernels (larger or smaller) change no bit."""
    g = torch.Generator().manual_seed(size)
    sample = torch.rand(3, *shape, generator=g)
    kernel = _random_kernels([size], 0)[0]

    def filtered(others: list[tuple[int, int, int]], canvas_size: tuple[int, int]):
        place_at = min(place, len(others))
        images = [torch.rand(3, h, w, generator=g) for h, w, _ in others]
        images.insert(place_at, sample)
        kernels = _random_kernels([k for _, _, k in others], 1)
        kernels.insert(place_at, kernel)
        canvas = _on_canvas(images, *canvas_size, fill)
        if separable:
            rows = _centred([k.sum(0) for k in kernels])
            cols = _centred([k.sum(1) for k in kernels])
            return filter_separable_canvas(canvas, rows, cols).views()[place_at]
        return filter2d_canvas(canvas, _centred(kernels)).views()[place_at]

    alone = filtered([], shape)
    heights = [shape[0], *(h for h, _, _ in neighbours)]
    widths = [shape[1], *(w for _, w, _ in neighbours)]
    crowded = filtered(neighbours, (max(heights) + extra[0], max(widths) + extra[1]))
    assert torch.equal(crowded, alone)


def test_matches_scipy_mirror_or_nearest_per_sample() -> None:
    """Independent reference: scipy's correlate per sample, 'mirror' borders where the
    sample is larger than the kernel's radius, else 'nearest' (the edge repeated)."""
    images = ragged_images(3)
    sizes = [5, 21, 3, 13, 21, 1, 7, 9]
    kernels = _centred(_random_kernels(sizes, 3))
    out = filter2d_canvas(Canvas.from_images(images), kernels).views()
    rows, cols = kernels.sum(1), kernels.sum(2)
    separable = filter_separable_canvas(Canvas.from_images(images), rows, cols).views()
    for i, (img, k) in enumerate(zip(images, sizes, strict=True)):
        mode = "mirror" if k // 2 < min(img.shape[-2:]) else "nearest"
        outer = (cols[i, :, None] * rows[i, None, :]).double().numpy()
        for c in range(3):
            plane = img[c].double().numpy()
            ref = ndimage.correlate(plane, kernels[i].double().numpy(), mode=mode)
            np.testing.assert_allclose(out[i][c].numpy(), ref, atol=2e-6, err_msg=f"sample {i}")
            ref = ndimage.correlate(plane, outer, mode=mode)
            np.testing.assert_allclose(separable[i][c].numpy(), ref, atol=2e-6)


# -- CUDA -----------------------------------------------------------------------------------
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@CUDA
@pytest.mark.parametrize(("name", "config"), OP_CONFIGS)
def test_canvas_on_cuda_never_waits_and_matches_the_cpu(name: str, config: dict) -> None:
    op = create_op(name, **config)
    params = op.sample(BatchStreams(4, range(len(SIZES))), len(SIZES))
    canvas = Canvas.from_images(ragged_images(4))
    cpu = op.apply_batched(canvas, params)
    on_gpu = canvas.with_data(canvas.data.cuda())
    op.apply_batched(on_gpu, params)  # warm-up: libraries load once
    gpu = without_host_waits(lambda: op.apply_batched(on_gpu, params))
    for a, b in zip(cpu.views(), gpu.views(), strict=True):
        torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=0)


@CUDA
def test_a_sample_gets_the_same_bits_on_any_cuda_canvas() -> None:
    op = create_op("blur", sinc_prob=0.3)
    params = op.sample(BatchStreams(6, range(len(SIZES))), len(SIZES))
    images = [img.cuda() for img in ragged_images(6)]
    full = op.apply_batched(Canvas.from_images(images), params).views()
    for i in range(len(SIZES)):
        one = {key: value[i : i + 1] for key, value in params.items()}
        alone = op.apply_batched(Canvas.from_images(images[i : i + 1]), one).views()[0]
        assert torch.equal(alone, full[i]), f"sample {i}"

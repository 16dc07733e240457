"""Resize on canvases: each sample equals ``F.interpolate`` of it alone, bit for bit
independent of its canvas and neighbours; ops and pipelines agree with grouping by shape."""

from __future__ import annotations

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
import yaml
from hypothesis import given
from hypothesis import strategies as st
from op_helpers import assert_canvas_matches_groups
from scipy.signal import correlate2d

from degkit import recipes
from degkit.ops import create_op
from degkit.ops.canvas import Canvas, ragged_batches
from degkit.ops.kernels import shifted_gaussian_kernels
from degkit.ops.resample import RESAMPLE_MODES, resample

# Worst measured over 600 random cases (sizes 1..450): 5.4e-7 (bicubic 66x266 -> 300x400).
ATOL = 1e-6

Request = tuple[tuple[int, int], tuple[int, int], str, bool]


def _interpolate_alone(
    img: torch.Tensor, size: tuple[int, int], mode: str, aa: bool
) -> torch.Tensor:
    """``F.interpolate`` of one ``C x H x W`` sample (clamped for bicubic): the reference."""
    x = img.unsqueeze(0)
    if mode in ("area", "nearest"):
        return F.interpolate(x, size=size, mode=mode)[0]
    if aa and size[1] == 1 and size[0] != x.shape[2]:
        # torch's CPU antialiased kernel returns one value for every row when the output
        # is one column wide; run its two separable passes (columns, then rows) apart.
        x = F.interpolate(x, size=(x.shape[2], 1), mode=mode, antialias=True).expand(-1, -1, -1, 2)
        x = F.interpolate(x, size=(size[0], 2), mode=mode, antialias=True)[..., :1]
    else:
        x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=aa)
    return x[0].clamp(0.0, 1.0) if mode == "bicubic" else x[0]


def _garbage_padded(images: list[torch.Tensor], height: int = 0, width: int = 0) -> Canvas:
    """The images on a canvas at least ``height x width`` whose padding holds large values."""
    canvas = Canvas.from_images(images)
    h, w = max(height, canvas.data.shape[2]), max(width, canvas.data.shape[3])
    data = torch.rand(len(images), images[0].shape[0], h, w) * 200.0 - 100.0
    for i, img in enumerate(images):
        data[i, :, : img.shape[1], : img.shape[2]] = img
    return Canvas(data, canvas.sizes)


def _run(canvas: Canvas, requests: list[Request]) -> list[torch.Tensor]:
    sizes = torch.tensor([list(out) for _, out, _, _ in requests])
    out = resample(canvas, sizes, [m for *_, m, _ in requests], [aa for *_, aa in requests])
    return out.views() if isinstance(out, Canvas) else list(out)


small = st.tuples(st.integers(1, 24), st.integers(1, 24))
request = st.tuples(
    small,
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from(RESAMPLE_MODES),
    st.booleans(),
)


@given(requests=st.lists(request, min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_each_sample_equals_interpolate_alone(requests: list[Request], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, *size, generator=gen) for size, *_ in requests]
    for i, (img, got) in enumerate(
        zip(images, _run(_garbage_padded(images), requests), strict=True)
    ):
        _, size, mode, aa = requests[i]
        expected = _interpolate_alone(img, size, mode, aa)
        assert got.shape == expected.shape
        torch.testing.assert_close(
            got, expected, atol=ATOL, rtol=0, msg=f"sample {i}: {requests[i]}"
        )


def test_large_resizes_match_interpolate() -> None:
    """Coordinates far from 0 (float32 rounding of source positions), every mode, up and down."""
    img = torch.rand(3, 257, 190, generator=torch.Generator().manual_seed(0))
    for size in [(38, 29), (385, 284), (128, 95), (1, 1)]:
        for mode in RESAMPLE_MODES:
            for aa in (False, True):
                (got,) = _run(
                    Canvas(img.unsqueeze(0), torch.tensor([[257, 190]])),
                    [((257, 190), size, mode, aa)],
                )
                torch.testing.assert_close(
                    got, _interpolate_alone(img, size, mode, aa), atol=ATOL, rtol=0
                )


@given(first=request, others=st.lists(request, min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_sample_is_bit_exact_whatever_the_canvas(
    first: Request, others: list[Request], seed: int
) -> None:
    """Alone on its own canvas, or among other samples (other modes, more taps) on a larger
    canvas with garbage padding: the same bits."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand(3, *first[0], generator=gen)
    alone = _run(Canvas(img.unsqueeze(0), torch.tensor([list(first[0])])), [first])[0]
    neighbours = [torch.rand(3, *size, generator=gen) for size, *_ in others]
    for position in (0, len(others)):
        images, requests = [*neighbours], [*others]
        images.insert(position, img)
        requests.insert(position, first)
        crowded = _run(_garbage_padded(images, 47, 51), requests)[position]
        assert torch.equal(alone, crowded)


def test_output_is_a_canvas_only_when_sizes_differ() -> None:
    images = [torch.rand(3, 10, 12), torch.rand(3, 7, 5)]
    same = resample(
        Canvas.from_images(images),
        torch.tensor([[6, 6], [6, 6]]),
        ["area", "bicubic"],
        [False, True],
    )
    assert isinstance(same, torch.Tensor) and same.shape == (2, 3, 6, 6)
    ragged = resample(
        Canvas.from_images(images),
        torch.tensor([[6, 6], [9, 4]]),
        ["area", "nearest"],
        [False, False],
    )
    assert isinstance(ragged, Canvas) and ragged.sizes.tolist() == [[6, 6], [9, 4]]


def _resize_params(
    scales: list[float], modes: list[int], aa: list[bool]
) -> dict[str, torch.Tensor]:
    return {
        "scale": torch.tensor(scales, dtype=torch.float64),
        "mode": torch.tensor(modes),
        "antialias": torch.tensor(aa),
    }


# OpenCV (the grouped CPU path) maps coordinates in double precision, torch in float32.
GROUPS_ATOL = 5e-5


def test_resize_on_a_canvas_matches_groups() -> None:
    gen = torch.Generator().manual_seed(1)
    images = [
        torch.rand(3, h, w, generator=gen)
        for h, w in [(40, 33), (17, 50), (64, 64), (9, 9), (30, 31)]
    ]
    params = _resize_params(
        [0.37, 1.5, 0.25, 1.0, 0.5], [0, 1, 2, 3, 2], [False, True, False, False, True]
    )
    op = create_op("resize", modes=RESAMPLE_MODES)
    assert_canvas_matches_groups(op, images, params, atol=GROUPS_ATOL)
    relative = create_op("resize", modes=RESAMPLE_MODES, relative_to="target")
    ref = {"ref_size": torch.tensor([[10, 8], [4, 12], [16, 16], [2, 2], [7, 7]])}
    assert_canvas_matches_groups(relative, images, {**params, **ref}, atol=GROUPS_ATOL)


def test_final_resize_on_a_canvas_returns_one_batch() -> None:
    gen = torch.Generator().manual_seed(2)
    images = [
        torch.rand(3, h, w, generator=gen) for h, w in [(40, 33), (17, 50), (64, 64), (12, 12)]
    ]
    params = {
        "size": torch.tensor([[12, 12]] * 4),
        "mode": torch.tensor([0, 1, 2, 2]),
        "antialias": torch.tensor([False, False, False, True]),
    }
    op = create_op("final_resize")
    assert_canvas_matches_groups(op, images, params, atol=GROUPS_ATOL)
    with ragged_batches("canvas"):
        out = op.apply_batched(Canvas.from_images(images), params)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 3, 12, 12)


def test_resize_of_a_batch_goes_to_a_canvas_only_when_enabled() -> None:
    x = torch.rand(3, 3, 32, 24, generator=torch.Generator().manual_seed(3))
    params = _resize_params([0.5, 1.2, 0.8], [1, 2, 0], [False] * 3)
    op = create_op("resize")
    grouped = op.apply_batched(x, params)  # CPU default: per-shape groups, a list
    assert isinstance(grouped, list)
    with ragged_batches("canvas"):
        canvas = op.apply_batched(x, params)
    assert isinstance(canvas, Canvas)
    for got, expected in zip(canvas.views(), grouped, strict=True):
        torch.testing.assert_close(got, expected, atol=GROUPS_ATOL, rtol=0)


def _photo_crops(n: int, size: int = 64) -> torch.Tensor:
    """``n`` photo crops (four photos, a different window each round), N x 3 x size x size."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    photos.append(skimage.data.rocket())
    crops = []
    for i in range(n):
        top, left = (40 + 53 * (i // 4)) % 230, (100 + 71 * (i // 4)) % 380
        crops.append(photos[i % 4][top : top + size, left : left + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).contiguous()


def _without_op(node: object, op: str) -> object:
    """Recipe data with every ``{op: <op>, ...}`` step removed."""
    if isinstance(node, list):
        return [_without_op(n, op) for n in node if not (isinstance(n, dict) and n.get("op") == op)]
    if isinstance(node, dict):
        return {key: _without_op(value, op) for key, value in node.items()}
    return node


def _lr_both_ways(recipe: recipes.Recipe, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    hr, runs = _photo_crops(n), {}
    for mode in ("groups", "canvas"):
        with ragged_batches(mode):
            runs[mode] = recipe.pipeline(hr, seed, range(n), recipe.scale)
    assert runs["canvas"].records == runs["groups"].records
    return runs["canvas"].lr, runs["groups"].lr


def test_realesrgan_recipe_on_canvases_matches_groups() -> None:
    """Same records. Without JPEG the LR agrees within one 8-bit level (resize rounding
    can flip a quantisation step); JPEG after a resize can turn such a flip into a
    changed DCT coefficient, a few levels over a block, so there only few pixels may differ."""
    canvas, groups = _lr_both_ways(recipes.load("realesrgan"), 16, 11)
    assert ((canvas - groups).abs() > 0.5 / 255).float().mean() < 0.02
    data = yaml.safe_load((recipes.RECIPES_DIR / "realesrgan.yaml").read_text())
    canvas, groups = _lr_both_ways(recipes.from_dict(_without_op(data, "jpeg")), 16, 11)
    assert (canvas - groups).abs().max() <= 1.5 / 255


def _subsample_params(sizes: list[int], sigmas: list[float], factors: list[int]) -> dict:
    return {
        "kernel_size": torch.tensor(sizes),
        "sigma": torch.tensor(sigmas, dtype=torch.float64),
        "shift": torch.tensor([(f - 1) / 2 for f in factors], dtype=torch.float64),
        "factor": torch.tensor(factors),
    }


def test_shifted_subsample_on_a_canvas_matches_groups() -> None:
    gen = torch.Generator().manual_seed(4)
    shapes = [(40, 33), (17, 50), (64, 64), (30, 31), (13, 16)]
    images = [torch.rand(3, h, w, generator=gen) for h, w in shapes]
    params = _subsample_params([25, 25, 13, 7, 25], [0.1, 2.4, 1.0, 0.5, 1.7], [4, 4, 3, 2, 1])
    op = create_op("shifted_subsample")
    assert_canvas_matches_groups(op, images, params, atol=ATOL)


def test_shifted_subsample_of_images_smaller_than_the_kernel() -> None:
    """Borders keep reflecting (numpy's ``reflect`` padding, an independent reference)."""
    gen = torch.Generator().manual_seed(5)
    images = [torch.rand(3, h, w, generator=gen) for h, w in [(1, 9), (12, 3), (2, 2), (5, 7)]]
    params = _subsample_params([25, 13, 7, 25], [2.4, 1.0, 0.5, 0.1], [4, 3, 2, 4])
    with ragged_batches("canvas"):
        out = create_op("shifted_subsample").apply_batched(Canvas.from_images(images), params)
    got = out.views() if isinstance(out, Canvas) else list(out)
    kernels = [
        shifted_gaussian_kernels(k, params["sigma"][i : i + 1], params["shift"][i : i + 1])[0]
        for i, k in enumerate(params["kernel_size"].tolist())
    ]
    for i, (img, kernel) in enumerate(zip(images, kernels, strict=True)):
        r, f = kernel.shape[0] // 2, int(params["factor"][i])
        planes = [np.pad(p, r, mode="reflect") for p in img.double().numpy()]
        blurred = np.stack([correlate2d(p, kernel.double().numpy(), mode="valid") for p in planes])
        expected = np.clip(blurred, 0, 1)[:, ::f, ::f]
        np.testing.assert_allclose(got[i].numpy(), expected, atol=ATOL, err_msg=f"sample {i}")

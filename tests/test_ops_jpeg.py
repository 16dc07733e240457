"""JPEG (libjpeg codec and differentiable model) and 8-bit quantisation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from op_helpers import assert_canvas_matches_groups, assert_config_error
from PIL import Image
from skimage import data

from degkit.ops import OpError, create_op
from degkit.ops.canvas import Canvas
from degkit.ops.jpeg import MODES, SUBSAMPLINGS
from degkit.ops.jpeg_tensor import jpeg_round_trip
from degkit.rng import BatchStreams
from degkit.testing import (
    check_batch_size_invariance,
    check_contract,
    check_gradients,
    check_monotone_severity,
    check_op,
    image_batches,
    seeds,
)

# Smallest PSNR (dB, RGB, 0-255) between differentiable and codec output at
# qualities 30..95 on the three photos; measured 40.8, asserted with a margin.
DIFFERENTIABLE_PSNR_BOUND = 40.0


def _params(
    quality: list[float], mode: str = "codec", subsampling: str = "4:2:0"
) -> dict[str, torch.Tensor]:
    return {
        "quality": torch.tensor(quality, dtype=torch.float64),
        "mode": torch.full((len(quality),), MODES.index(mode)),
        "subsampling": torch.full((len(quality),), SUBSAMPLINGS.index(subsampling)),
    }


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 -> float32 1 x 3 x H x W in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def _pillow_roundtrip(pixels: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / err))


def _photos() -> list[np.ndarray]:
    return [data.astronaut(), data.chelsea(), data.coffee()]


def _photo_crops(size: int = 192) -> torch.Tensor:
    """A batch of centre crops of the three photos."""
    crops = []
    for photo in _photos():
        top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
        crops.append(_to_tensor(np.ascontiguousarray(photo[top : top + size, left : left + size])))
    return torch.cat(crops)


# -- codec: Pillow's libjpeg, exactly ----------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 41),
    w=st.integers(1, 41),
    qualities=st.lists(st.integers(1, 100), min_size=1, max_size=3),
    subsampling=st.sampled_from(SUBSAMPLINGS),
    seed=seeds(),
)
def test_codec_equals_pillow_byte_for_byte(
    h: int, w: int, qualities: list[int], subsampling: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.random((len(qualities), 3, h, w), dtype=np.float32))
    y = create_op("jpeg").apply(x, _params(qualities, subsampling=subsampling))
    # Reference: numpy rounds to 8 bits, Pillow encodes and decodes on its own.
    pixels = np.round(x.numpy() * 255).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    for i, q in enumerate(qualities):
        expected = _pillow_roundtrip(np.ascontiguousarray(pixels[i]), q, subsampling)
        got = y[i].permute(1, 2, 0).numpy() * 255
        assert np.array_equal(np.round(got).astype(np.uint8), expected), f"quality {q}"
        assert np.array_equal(got, np.round(got)), "codec output is off the 8-bit grid"


def test_codec_samples_integer_qualities_in_range() -> None:
    params = create_op("jpeg", quality=(30.5, 95)).sample(BatchStreams(0, range(400)), 400)
    q = params["quality"]
    assert q.dtype == torch.float64 and torch.equal(q, q.round())
    assert q.min() == 31 and q.max() == 95  # inclusive integer range


def test_quality_100_is_near_lossless() -> None:
    x = _photo_crops()
    y = create_op("jpeg").apply(x, _params([100.0] * 3, subsampling="4:4:4"))
    assert _psnr((y * 255).round().numpy(), (x * 255).round().numpy()) > 45


# -- the tensor codec (any device) -------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 41),
    w=st.integers(1, 41),
    qualities=st.lists(st.integers(1, 100), min_size=1, max_size=4),
    subsampling=st.sampled_from(SUBSAMPLINGS),
    smooth=st.booleans(),
    seed=seeds(),
)
def test_tensor_codec_gives_libjpegs_pixels(
    h: int, w: int, qualities: list[int], subsampling: str, smooth: bool, seed: int
) -> None:
    """libjpeg's lossy steps in integer tensor ops equal Pillow's encode and decode byte
    for byte, at any size, quality and subsampling, each sample at its own quality."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(qualities), h, w, 3), dtype=np.uint8)
    if smooth:  # photo-like gradients instead of noise
        pixels = np.cumsum(rng.normal(0, 12, (len(qualities), h, w, 3)), axis=2) + 128
        pixels = pixels.clip(0, 255).astype(np.uint8)
    out = jpeg_round_trip(
        torch.from_numpy(pixels).permute(0, 3, 1, 2), torch.tensor(qualities), subsampling
    )
    for i, q in enumerate(qualities):
        expected = _pillow_roundtrip(np.ascontiguousarray(pixels[i]), q, subsampling)
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), expected), f"quality {q}"


def test_tensor_codec_equals_the_op_on_photos() -> None:
    x = _photo_crops()
    for subsampling in SUBSAMPLINGS:
        params = _params([35, 60, 90], subsampling=subsampling)
        y = create_op("jpeg").apply(x, params)
        pixels = jpeg_round_trip(
            (x * 255).round().to(torch.uint8), torch.tensor([35, 60, 90]), subsampling
        )
        assert torch.equal(y, pixels.float() / 255), subsampling


# -- canvases (ragged batches) ------------------------------------------------------------
def _canvas(
    images: list[np.ndarray], rng: np.random.Generator, margin: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``h x w x 3`` images on an ``N x 3 x Hc x Wc`` canvas with random padding."""
    sizes = torch.tensor([img.shape[:2] for img in images])
    h, w = (sizes.amax(0) + margin).tolist()
    canvas = torch.from_numpy(rng.integers(0, 256, (len(images), 3, h, w), dtype=np.uint8))
    for i, img in enumerate(images):
        canvas[i, :, : img.shape[0], : img.shape[1]] = torch.from_numpy(img).permute(2, 0, 1)
    return canvas, sizes


_SIDES = st.one_of(st.integers(1, 2), st.integers(1, 70))


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.tuples(_SIDES, _SIDES), min_size=1, max_size=5),
    subsampling=st.sampled_from(SUBSAMPLINGS),
    margin=st.integers(0, 9),
    data=st.data(),
    seed=seeds(),
)
def test_tensor_codec_on_a_canvas_gives_each_sample_libjpegs_pixels(
    sizes: list[tuple[int, int]], subsampling: str, margin: int, data: st.DataObject, seed: int
) -> None:
    """Each sample of a ragged canvas, garbage around it, comes out as Pillow's round trip
    of that sample alone, byte for byte."""
    qualities = data.draw(st.lists(st.integers(1, 100), min_size=len(sizes), max_size=len(sizes)))
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    canvas, sizes_t = _canvas(images, rng, margin)
    out = jpeg_round_trip(canvas, torch.tensor(qualities), subsampling, sizes=sizes_t)
    assert out.shape == canvas.shape and out.dtype == torch.uint8
    for i, (img, q) in enumerate(zip(images, qualities, strict=True)):
        h, w = img.shape[:2]
        expected = _pillow_roundtrip(img, q, subsampling)
        got = out[i, :, :h, :w].permute(1, 2, 0).numpy()
        assert np.array_equal(got, expected), f"sample {i} ({h} x {w}) at quality {q}"


@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_a_sample_ignores_its_canvas_and_neighbours(subsampling: str) -> None:
    rng = np.random.default_rng(7)
    sample = rng.integers(0, 256, (21, 35, 3), dtype=np.uint8)
    alone = jpeg_round_trip(
        torch.from_numpy(sample).permute(2, 0, 1)[None], torch.tensor([40]), subsampling
    )[0]
    layouts = [
        [sample, rng.integers(0, 256, (64, 2, 3), dtype=np.uint8)],
        [rng.integers(0, 256, (3, 70, 3), dtype=np.uint8), sample, sample[:5, :1]],
    ]
    for images in layouts:
        for margin in (0, 13):
            canvas, sizes = _canvas(images, rng, margin)
            row = next(i for i, img in enumerate(images) if img is sample)
            quality = torch.full((len(images),), 90).index_fill_(0, torch.tensor(row), 40)
            out = jpeg_round_trip(canvas, quality, subsampling, sizes=sizes)
            assert torch.equal(out[row, :, :21, :35], alone), (len(images), margin)


def test_the_op_on_a_canvas_equals_libjpeg_per_sample() -> None:
    """Codec mode on a canvas (each subsampling in one batch) equals OpenCV's libjpeg on each
    sample; differentiable samples in the batch get Kornia on their own views."""
    photos = [data.astronaut()[:37, :53], data.chelsea()[:64, :2], data.coffee()[:9, :70]]
    images = [_to_tensor(np.ascontiguousarray(p))[0] for p in (*photos, photos[0][:20, :1])]
    params = _params([25.0, 60.0, 95.0, 70.0])
    params["subsampling"] = torch.tensor([2, 0, 1, 2])
    op = create_op("jpeg")
    assert_canvas_matches_groups(op, images, params, atol=0.0)
    params["mode"] = torch.tensor([0, 0, 0, MODES.index("differentiable")])
    params["quality"][3] = 70.5
    assert_canvas_matches_groups(op, images, params, atol=0.0)
    canvas = Canvas.from_images(images)
    pixels = canvas.data.requires_grad_()
    op.apply_batched(canvas, params).views()[3].sum().backward()
    assert pixels.grad[3, :, :20, :1].abs().sum() > 0, "no gradient reaches the sample"


# -- differentiable -----------------------------------------------------------------
@pytest.mark.parametrize("quality", [30, 50, 70, 95])
def test_differentiable_is_close_to_codec_on_photos(quality: int) -> None:
    op = create_op("jpeg", mode="differentiable")
    for photo in _photos():
        x = _to_tensor(photo)
        codec = op.apply(x, _params([quality], "codec"))
        diff = op.apply(x, _params([quality], "differentiable"))
        psnr = _psnr((diff * 255).numpy(), (codec * 255).numpy())
        assert psnr >= DIFFERENTIABLE_PSNR_BOUND, f"quality {quality}: {psnr:.2f} dB"


@pytest.mark.parametrize("mode", MODES)
def test_falling_quality_increases_distortion(mode: str) -> None:
    x = _photo_crops()
    levels = [5, 20, 35, 50, 65, 80, 90]  # quality = 100 - level
    check_monotone_severity(
        create_op("jpeg", mode=mode), x, lambda level: _params([100 - level] * 3, mode), levels
    )


def test_differentiable_gradients_reach_the_image() -> None:
    x = torch.rand(2, 3, 24, 20)
    check_gradients(
        create_op("jpeg", mode="differentiable"), x, _params([40.0, 85.5], "differentiable")
    )


@pytest.mark.parametrize("quality", [1.0, 100.0])
def test_differentiable_has_no_singularity_at_the_ends(quality: float) -> None:
    x = torch.rand(2, 3, 19, 35, requires_grad=True)
    y = create_op("jpeg", mode="differentiable").apply(x, _params([quality] * 2, "differentiable"))
    y.square().sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 13), (17, 33), (40, 24)])
def test_differentiable_keeps_any_size(h: int, w: int) -> None:
    x = torch.rand(2, 3, h, w)
    y = create_op("jpeg", mode="differentiable").apply(x, _params([50.0, 90.0], "differentiable"))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1


def test_recorded_modes_are_honoured_per_sample() -> None:
    """Replaying a mixed batch of records runs each sample through its own mode."""
    x = torch.rand(2, 3, 16, 16)
    op = create_op("jpeg")
    records = [
        {"op": "jpeg", "quality": 60.0, "mode": "codec", "subsampling": "4:2:0"},
        {"op": "jpeg", "quality": 60.5, "mode": "differentiable", "subsampling": "4:2:0"},
    ]
    y = op.replay(x, records)
    assert torch.equal(y[0:1], op.apply(x[0:1], _params([60.0], "codec")))
    assert torch.equal(y[1:2], op.apply(x[1:2], _params([60.5], "differentiable")))


# -- contract -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=6, deadline=None)
@given(x=image_batches(), seed=seeds())
def test_contract_and_determinism(mode: str, x: torch.Tensor, seed: int) -> None:
    op = create_op("jpeg", mode=mode)
    # Kornia's batched DCT rounds differently per batch size (a few float32 ulps);
    # the libjpeg codec is bit-identical.
    check_op(op, x, seed, atol=1e-6 if mode == "differentiable" else 0.0)


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"quality": (0, 50)}, "jpeg.quality must lie in [1, 100], got [0, 50]"),
        ({"quality": (50, 101)}, "jpeg.quality must lie in [1, 100], got [50, 101]"),
        ({"quality": (30.2, 30.8)}, "jpeg.quality must contain an integer in codec mode"),
        ({"mode": "fast"}, "jpeg.mode must be one of"),
        ({"subsampling": "4:1:1"}, "jpeg.subsampling must be one of"),
        ({"mode": "differentiable", "subsampling": "4:4:4"}, "jpeg.subsampling must be '4:2:0'"),
    ],
)
def test_invalid_config_names_the_field(config: dict, message: str) -> None:
    assert_config_error("jpeg", config, message)


def test_invalid_params_name_the_parameter() -> None:
    x = torch.rand(2, 3, 16, 16)
    op = create_op("jpeg")
    with pytest.raises(OpError, match="parameter 'quality' must be in"):
        op.apply(x, _params([50.0, 101.0]))
    with pytest.raises(OpError, match="parameter 'quality' must be in"):
        op.apply(x, _params([0.0, 50.0], "differentiable"))
    with pytest.raises(OpError, match="'quality' must be an integer in codec mode"):
        op.apply(x, _params([50.5, 60.0]))
    with pytest.raises(OpError, match="3 \\(RGB\\) channels"):
        op.apply(torch.rand(1, 1, 16, 16), _params([50.0]))


# -- quantize -------------------------------------------------------------------------
@settings(max_examples=10, deadline=None)
@given(x=image_batches(), seed=seeds(), bits=st.integers(1, 16))
def test_quantize_matches_numpy_and_is_idempotent(x: torch.Tensor, seed: int, bits: int) -> None:
    op = create_op("quantize", bits=bits)
    check_contract(op, x, seed)
    check_batch_size_invariance(op, x, seed)
    params = op.sample(BatchStreams(seed, range(x.shape[0])), x.shape[0])
    y = op.apply(x, params)
    levels = 2**bits - 1
    np.testing.assert_allclose(y.numpy(), np.round(x.numpy() * levels) / levels, atol=1e-7)
    assert torch.equal(op.apply(y, params), y), "quantize is not idempotent"


def test_quantize_8_bits_equals_an_8_bit_file_roundtrip() -> None:
    x = torch.rand(1, 3, 21, 13)
    y = create_op("quantize").apply(x, {"bits": torch.tensor([8])})
    buffer = io.BytesIO()
    Image.fromarray(np.round(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
        buffer, "PNG"
    )
    png = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    assert torch.equal(y, _to_tensor(png))
    assert create_op("quantize").describe({"bits": torch.tensor([8])}) == [
        {"op": "quantize", "bits": 8}
    ]


@pytest.mark.parametrize("bits", [0, 17, 8.5, True, "8"])
def test_quantize_invalid_bits_names_the_field(bits: object) -> None:
    with pytest.raises(OpError, match="quantize.bits must be an integer in"):
        create_op("quantize", bits=bits)
    with pytest.raises(OpError, match="parameter 'bits'"):
        create_op("quantize").apply(torch.rand(1, 3, 4, 4), {"bits": torch.tensor([20])})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode: str) -> None:
    x = _photo_crops()
    op = create_op("jpeg", mode=mode)
    check_contract(op, x.cuda())
    params = op.sample(BatchStreams(0, range(3)), 3)
    gpu = op.apply(x.cuda(), params).cpu()
    cpu = op.apply(x, params)
    if mode == "codec":  # libjpeg's integer steps on the GPU: the same pixels
        assert torch.equal(gpu, cpu)
    else:  # rounding a DCT coefficient near a half step may flip between devices
        assert _psnr((gpu * 255).numpy(), (cpu * 255).numpy()) > 50


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
def test_cuda_codec_runs_on_the_device_with_libjpegs_pixels(subsampling: str) -> None:
    x = _photo_crops()[:, :, :45, :61]  # sizes that are not whole blocks
    params = _params([20, 55, 95], subsampling=subsampling)
    op = create_op("jpeg")
    gpu = op.apply(x.cuda(), params)
    assert gpu.is_cuda
    assert torch.equal(gpu.cpu(), op.apply(x, params))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_canvas_codec_matches_the_cpu() -> None:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((38, 2), (96, 61))]
    canvas, sizes = _canvas(images, rng)
    quality = torch.tensor([30, 85])
    for subsampling in SUBSAMPLINGS:
        gpu = jpeg_round_trip(canvas.cuda(), quality.cuda(), subsampling, sizes=sizes)
        cpu = jpeg_round_trip(canvas, quality, subsampling, sizes=sizes)
        for i, (h, w) in enumerate(sizes.tolist()):
            assert torch.equal(gpu[i, :, :h, :w].cpu(), cpu[i, :, :h, :w]), subsampling

"""HR preparation: decoding odd files to RGB8 (checked against independent references),
skip reasons for broken files, crop placement."""

from __future__ import annotations

import io

import numpy as np
import pytest
from data_corpus import expected_palette_rgb, photo_like, write_corpus
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from degkit.data.prepare import (
    CropPlan,
    SkipImage,
    crop_boxes,
    cut_crops,
    decode_rgb8,
    mod_crop_size,
)
from degkit.data.sources import SourceImage
from degkit.data.work import ImageTask, encode_png, run_image_task

SIZE = 80


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder, SIZE)


def _decode(folder, name, **kwargs):
    return decode_rgb8((folder / name).read_bytes(), **kwargs)


def test_rgb_png_is_unchanged(corpus):
    folder, _ = corpus
    expected = np.asarray(Image.open(folder / "good_rgb.png"))
    assert np.array_equal(_decode(folder, "good_rgb.png"), expected)


def test_grayscale_is_replicated(corpus):
    folder, _ = corpus
    gray = photo_like(SIZE, SIZE + 16, 1)[..., 0]
    out = _decode(folder, "gray.png")
    assert out.shape == (SIZE, SIZE + 16, 3)
    assert all(np.array_equal(out[..., c], gray) for c in range(3))


def test_16_bit_keeps_high_byte(corpus):
    folder, _ = corpus
    values = np.arange(SIZE * SIZE, dtype=np.uint32).reshape(SIZE, SIZE) * 9 % 65536
    out = _decode(folder, "gray16.png")
    assert np.array_equal(out[..., 1], (values >> 8).astype(np.uint8))


def test_palette_with_transparency_over_white(corpus):
    folder, _ = corpus
    assert np.array_equal(_decode(folder, "palette.png"), expected_palette_rgb(SIZE))


def test_rgba_composited_over_white(corpus):
    folder, _ = corpus
    rgb = photo_like(SIZE, SIZE, 4).astype(np.float64)
    alpha = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None].astype(np.float64)
    expected = np.floor((rgb * alpha + 255 * (255 - alpha)) / 255 + 0.5)
    assert np.abs(_decode(folder, "rgba.png") - expected).max() == 0


def test_cmyk_pure_inks():
    # C, M, Y, K and white: analytic RGB values of the subtractive inks.
    inks = np.array(
        [[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255], [0, 0, 0, 0]], np.uint8
    )
    expected = np.array([[0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0], [255, 255, 255]])
    image = Image.frombytes("CMYK", (5, 1), inks.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    assert np.array_equal(decode_rgb8(buffer.getvalue())[0], expected)


def test_cmyk_tiff_decodes_to_rgb(corpus):
    folder, _ = corpus
    out = _decode(folder, "cmyk.tif")
    # RGB -> CMYK -> RGB with Pillow's naive (ICC-free) formulas is lossless.
    assert np.array_equal(out, photo_like(SIZE, SIZE + 16, 1))


def test_exif_orientation_is_applied(corpus):
    folder, _ = corpus
    rgb = photo_like(SIZE, SIZE + 16, 1)
    assert np.array_equal(_decode(folder, "exif_rotated.png"), np.rot90(rgb, k=-1))


@pytest.mark.parametrize(
    "name", ["truncated.png", "corrupt.jpg", "zero.png", "text.png", "huge.png"]
)
def test_broken_files_skip_with_reason(corpus, name):
    folder, expected = corpus
    with pytest.raises(SkipImage) as info:
        _decode(folder, name)
    assert expected[name] in info.value.reason


def test_pixel_limit_is_checked_before_decoding(corpus):
    folder, _ = corpus
    with pytest.raises(SkipImage, match="too many pixels: 96x80 = 7680 > max_pixels 7000"):
        _decode(folder, "good_rgb.png", max_pixels=7000)


def test_task_skips_missing_and_small_files(corpus, tmp_path):
    folder, _ = corpus
    plan = CropPlan(32, 4, 1, "grid")
    missing = run_image_task(
        ImageTask(SourceImage("x", str(tmp_path / "nope.png")), (0,), (0,), plan, None)
    )
    assert missing.skip_reason == "missing file"
    small = run_image_task(
        ImageTask(SourceImage("s", str(folder / "small.png")), (0,), (0,), plan, None)
    )
    assert small.skip_reason == "smaller than the crop: 16x16 < 32x32"


def test_task_encodes_crops_losslessly(corpus):
    folder, _ = corpus
    plan = CropPlan(32, 4, 3, "grid")
    out = run_image_task(
        ImageTask(SourceImage("g", str(folder / "good_rgb.png")), (0, 1, 2), (0, 1, 2), plan, None)
    )
    source = photo_like(SIZE, SIZE + 16, 1)
    for (top, left, h, w), crop, png in zip(out.boxes, out.crops, out.pngs, strict=True):
        assert np.array_equal(crop, source[top : top + h, left : left + w])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), crop)
    assert encode_png(out.crops[0]) == out.pngs[0]


def test_plan_validation_names_the_option():
    with pytest.raises(ValueError, match="CropPlan.crop 250 is not a multiple of the scale 4"):
        CropPlan(250, 4)
    with pytest.raises(ValueError, match="CropPlan.per_image must be 1"):
        CropPlan(None, 4, per_image=2)
    with pytest.raises(ValueError, match="CropPlan.mode"):
        CropPlan(64, 4, mode="centre")


sizes = st.integers(1, 300)


@settings(max_examples=60, deadline=None)
@given(
    h=sizes,
    w=sizes,
    crop=st.sampled_from([8, 16, 64]),
    n=st.integers(1, 9),
    mode=st.sampled_from(["random", "grid"]),
    u=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)),
        min_size=9,
        max_size=9,
    ),
)
def test_crop_boxes_lie_inside_the_image(h, w, crop, n, mode, u):
    plan = CropPlan(crop, 4, n, mode)
    ks = list(range(n))
    if h < crop or w < crop:
        with pytest.raises(SkipImage, match="smaller than the crop"):
            crop_boxes(h, w, plan, ks, u[:n])
        return
    boxes = crop_boxes(h, w, plan, ks, u[:n])
    assert len(boxes) == n
    for top, left, bh, bw in boxes:
        assert (bh, bw) == (crop, crop)
        assert 0 <= top <= h - crop and 0 <= left <= w - crop
    if mode == "grid":
        # grid crops depend only on the crop number: asking for a subset agrees
        assert crop_boxes(h, w, plan, ks[-1:], None) == boxes[-1:]
        if n <= (h // crop) * (w // crop) and n > 1:
            assert len(set(boxes)) == n
    else:
        extremes = crop_boxes(h, w, plan, [0, 1], [(0.0, 0.0), (0.999999999, 0.999999999)])
        assert extremes == [(0, 0, crop, crop), (h - crop, w - crop, crop, crop)]


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, scale=st.integers(1, 8))
def test_mod_crop_whole_image(h, w, scale):
    mh, mw = mod_crop_size(h, w, scale)
    assert mh % scale == 0 and mw % scale == 0 and 0 <= h - mh < scale and 0 <= w - mw < scale
    plan = CropPlan(None, scale)
    if mh and mw:
        assert crop_boxes(h, w, plan, [0]) == [(0, 0, mh, mw)]
        image = np.zeros((h, w, 3), np.uint8)
        assert cut_crops(image, crop_boxes(h, w, plan, [0]))[0].shape == (mh, mw, 3)
    else:
        with pytest.raises(SkipImage, match="smaller than the scale"):
            crop_boxes(h, w, plan, [0])

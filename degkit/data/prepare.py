"""HR preparation: decode any image to RGB8, then cut the crops of one source image.

Decoding (:func:`decode_rgb8`) always yields an ``H x W x 3`` uint8 RGB array:

* EXIF orientation is applied (the pixels are turned upright, the tag dropped);
* multi-frame files (GIF, animated WebP, multi-page TIFF) give their first frame;
* grayscale (``1``, ``L``) is replicated to the three channels;
* 16-bit and 32-bit integer images keep their high byte (``v >> 8`` for 16-bit,
  as Pillow does for 16-bit colour PNGs); 32-bit float images are taken to lie
  in ``[0, 1]``, clipped and scaled by 255 and rounded;
* palette images are expanded through their palette;
* transparency (``RGBA``, ``LA``, ``PA``, palette transparency) is composited
  over white: ``round((rgb * a + 255 * (255 - a)) / 255)``;
* CMYK (and YCbCr, LAB, HSV) use Pillow's conversion to RGB; embedded ICC
  profiles are ignored (values are taken as sRGB).

Before any pixel is decoded, the header's width x height is checked against a
pixel-count limit (a defence against decompression bombs; Pillow's own limit,
``PIL.Image.MAX_IMAGE_PIXELS`` x 2, still applies on top). Every failure
raises :class:`SkipImage` with a readable reason; a build records it and goes on.

Crops (:func:`crop_boxes`) are ``crop x crop`` squares: ``"random"`` places crop
``k`` at ``floor(u * (H - crop + 1))`` from a pair of uniforms ``u`` drawn from
that sample's own stream by the caller; ``"grid"`` spreads the ``n`` crops over
an evenly spaced grid of rows x columns (``columns = ceil(sqrt(n * W / H))``),
in raster order, overlapping when the image is small. With no crop size the
whole image is kept, mod-cropped (bottom and right edges trimmed) to a multiple
of the scale. This module uses only NumPy and Pillow, so worker processes stay light.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from degkit.data.defaults import CROP_MODES, DEFAULT_MAX_PIXELS

__all__ = [
    "CROP_MODES",
    "DEFAULT_MAX_PIXELS",
    "SkipImage",
    "CropPlan",
    "decode_rgb8",
    "to_rgb8",
    "crop_boxes",
    "mod_crop_size",
    "cut_crops",
]


class SkipImage(Exception):
    """A source image that cannot be used; ``reason`` says why (for skipped.jsonl)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class CropPlan:
    """How to cut each image: crop size (``None``: whole image), crops per image, mode, limits."""

    crop: int | None
    scale: int
    per_image: int = 1
    mode: str = "random"
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"CropPlan.scale must be a positive integer, got {self.scale}")
        if self.crop is not None:
            if self.crop < self.scale:
                raise ValueError(
                    f"CropPlan.crop must be at least the scale {self.scale}, got {self.crop}"
                )
            if self.crop % self.scale:
                raise ValueError(
                    f"CropPlan.crop {self.crop} is not a multiple of the scale {self.scale}; "
                    f"try {self.crop - self.crop % self.scale}"
                )
        if self.per_image < 1:
            raise ValueError(f"CropPlan.per_image must be at least 1, got {self.per_image}")
        if self.crop is None and self.per_image != 1:
            raise ValueError("CropPlan.per_image must be 1 when whole images are kept (crop None)")
        if self.mode not in CROP_MODES:
            raise ValueError(f"CropPlan.mode must be one of {CROP_MODES}, got {self.mode!r}")
        if self.max_pixels < 1:
            raise ValueError(f"CropPlan.max_pixels must be positive, got {self.max_pixels}")


def decode_rgb8(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to an upright ``H x W x 3`` uint8 RGB array.

    Raises:
        SkipImage: empty, unrecognised, truncated or corrupt data, or more than
            ``max_pixels`` pixels declared in the header.
    """
    if not data:
        raise SkipImage("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise SkipImage("not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise SkipImage(f"too many pixels: {exc}") from None
    except Exception as exc:  # Pillow raises assorted types on malformed headers
        raise SkipImage(f"unreadable header: {type(exc).__name__}: {exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise SkipImage(
            f"too many pixels: {width}x{height} = {width * height} > max_pixels {max_pixels}"
        )
    if width < 1 or height < 1:
        raise SkipImage(f"empty image: {width}x{height}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            return to_rgb8(ImageOps.exif_transpose(img))
    except Exception as exc:  # truncated / corrupt data surfaces as OSError, SyntaxError, ...
        raise SkipImage(f"cannot decode: {type(exc).__name__}: {exc}") from None


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to ``H x W x 3`` uint8 RGB (see module doc)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        return to_rgb8(img)
    if mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(img.convert("L"), dtype=np.uint8))
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(img).astype(np.int64)
        shift = 8 if mode.startswith("I;16") or values.max(initial=0) <= 0xFFFF else 24
        return _gray_to_rgb((np.clip(values, 0, None) >> shift).clip(0, 255).astype(np.uint8))
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0)
        return _gray_to_rgb(np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint32)
        alpha = rgba[..., 3:4]
        over_white = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return over_white.astype(np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def mod_crop_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """Largest size not above ``(height, width)`` divisible by ``scale``."""
    return height - height % scale, width - width % scale


def crop_boxes(
    height: int,
    width: int,
    plan: CropPlan,
    crop_numbers: Sequence[int],
    uniforms: Sequence[tuple[float, float]] | None = None,
) -> list[tuple[int, int, int, int]]:
    """``(top, left, crop height, crop width)`` of the crops numbered ``crop_numbers``.

    ``uniforms`` (one ``(u_y, u_x)`` pair in ``[0, 1)`` per requested crop)
    places random crops; grid crops depend on the crop number only.

    Raises:
        SkipImage: the image is smaller than the crop (or than the scale).
    """
    if plan.crop is None:
        h, w = mod_crop_size(height, width, plan.scale)
        if h == 0 or w == 0:
            raise SkipImage(f"smaller than the scale: {width}x{height} < {plan.scale}")
        return [(0, 0, h, w) for _ in crop_numbers]
    c = plan.crop
    if height < c or width < c:
        raise SkipImage(f"smaller than the crop: {width}x{height} < {c}x{c}")
    if plan.mode == "random":
        if uniforms is None or len(uniforms) != len(crop_numbers):
            raise ValueError(f"random crops need {len(crop_numbers)} uniform pairs")
        return [(_offset(uy, height, c), _offset(ux, width, c), c, c) for uy, ux in uniforms]
    grid = _grid(height, width, c, plan.per_image)
    return [grid[k] for k in crop_numbers]


def _offset(u: float, size: int, crop: int) -> int:
    return min(int(u * (size - crop + 1)), size - crop)


def _grid(height: int, width: int, crop: int, n: int) -> list[tuple[int, int, int, int]]:
    cols = max(1, math.ceil(math.sqrt(n * width / height)))
    rows = math.ceil(n / cols)
    tops = np.linspace(0, height - crop, rows).round().astype(int).tolist()
    lefts = np.linspace(0, width - crop, cols).round().astype(int).tolist()
    return [(t, x, crop, crop) for t in tops for x in lefts][:n]


def cut_crops(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Contiguous copies of the boxes of an ``H x W x 3`` array."""
    return [np.ascontiguousarray(image[t : t + h, x : x + w]) for t, x, h, w in boxes]

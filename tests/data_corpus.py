"""Test helpers for the data builder: odd and broken image files, a fast recipe, hashes."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FAST_RECIPE = """\
description: test recipe, bicubic to LR then colour Gaussian noise, 8-bit
scale: 4
pipeline:
  - {op: final_resize, name: to_lr, modes: [bicubic]}
  - {op: gaussian_noise, sigma: [1, 10], gray_prob: 0}
  - {op: quantize, bits: 8}
"""


def write_fast_recipe(folder: Path) -> Path:
    """A quick x4 recipe (resize, noise, quantise) as a YAML file."""
    path = Path(folder) / "fast.yaml"
    path.write_text(FAST_RECIPE)
    return path


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus mild noise: a stand-in photo, ``H x W x 3`` uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [128 + 100 * np.sin(x / (7 + c) + y / (11 + 2 * c) + seed) for c in range(3)], axis=2
    )
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_declared_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG whose header declares ``width x height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def corrupt_jpeg(seed: int = 0) -> bytes:
    """A JPEG whose header is intact but whose scan data is random bytes."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(photo_like(48, 64, seed)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    noise = rng.integers(0, 255, len(data) - 400, dtype=np.uint8).tobytes()
    return data[:200] + noise + data[-200:]


def write_corpus(folder: Path, size: int = 80) -> dict[str, str | None]:
    """Write good, odd and broken images; return ``name -> expected skip reason part`` (None: ok).

    Good images are at least ``size`` pixels on each side.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo_like(size, size + 16, 1)
    good = png_bytes(Image.fromarray(rgb))
    files: dict[str, tuple[bytes, str | None]] = {
        "good_rgb.png": (good, None),
        "nested/good_jpeg.jpg": (_jpeg(photo_like(size + 8, size, 2)), None),
        "gray.png": (png_bytes(Image.fromarray(rgb[..., 0])), None),
        "gray16.png": (png_bytes(Image.fromarray(_gray16(size))), None),
        "palette.png": _palette(size),
        "rgba.png": (png_bytes(Image.fromarray(_rgba(size))), None),
        "cmyk.tif": (_tiff(Image.fromarray(rgb).convert("CMYK")), None),
        "exif_rotated.png": (_exif_rotated(rgb), None),
        "truncated.png": (good[: len(good) // 2], "cannot decode"),
        "corrupt.jpg": (corrupt_jpeg(), "cannot decode"),
        "zero.png": (b"", "empty file"),
        "text.png": (b"this is not an image\n", "not a recognised image"),
        "huge.png": (huge_declared_png(), "too many pixels"),
        "small.png": (png_bytes(Image.fromarray(photo_like(16, 16, 3))), "smaller than the crop"),
    }
    for name, (data, _) in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "notes.txt").write_text("not listed: wrong extension")
    (folder / ".hidden").mkdir(exist_ok=True)
    (folder / ".hidden" / "ignored.png").write_bytes(good)
    return {name: reason for name, (_, reason) in files.items()}


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    return buffer.getvalue()


def _gray16(size: int) -> np.ndarray:
    return (np.arange(size * size, dtype=np.uint32).reshape(size, size) * 9 % 65536).astype(
        np.uint16
    )


def _rgba(size: int) -> np.ndarray:
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = photo_like(size, size, 4)
    rgba[..., 3] = np.linspace(0, 255, size, dtype=np.uint8)[None, :]
    return rgba


def _palette(size: int) -> tuple[bytes, None]:
    indices = (np.arange(size * size).reshape(size, size) % 4).astype(np.uint8)
    image = Image.frombytes("P", (size, size), indices.tobytes())
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 * 3 - 12))
    return png_bytes(image, transparency=3), None


def _exif_rotated(rgb: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return png_bytes(Image.fromarray(rgb), exif=exif)


def expected_palette_rgb(size: int) -> np.ndarray:
    """Independent expectation for ``palette.png``: index 3 is transparent (white)."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)
    return colours[np.arange(size * size).reshape(size, size) % 4]


def file_digests(folder: Path, pattern: str = "data/*.parquet") -> dict[str, str]:
    """SHA-256 of every file matching ``pattern`` under ``folder``, by relative path."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob(pattern))
    }

"""Worker-side tasks of a build: read, decode, crop and PNG-encode one source image.

Tasks are pure functions of picklable inputs, so they give the same bytes in
the main process or in any worker process. This module uses only NumPy and
Pillow. PNG encoding uses Pillow with a fixed compression level and no
metadata chunks, so the same array always encodes to the same bytes.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
from PIL import Image

from degkit.data.defaults import DEFAULT_PNG_LEVEL
from degkit.data.prepare import CropPlan, SkipImage, crop_boxes, cut_crops, decode_rgb8
from degkit.data.sources import SourceImage

__all__ = ["DEFAULT_PNG_LEVEL", "ImageTask", "PreparedImage", "encode_png", "run_image_task"]


@dataclasses.dataclass(frozen=True)
class ImageTask:
    """Cut crops ``crop_numbers`` (global ``indices``) of one source image."""

    source: SourceImage
    crop_numbers: tuple[int, ...]
    indices: tuple[int, ...]
    plan: CropPlan
    uniforms: tuple[tuple[float, float], ...] | None
    png_level: int = DEFAULT_PNG_LEVEL


@dataclasses.dataclass
class PreparedImage:
    """The outcome of a task: crops with their boxes and PNG bytes, or a skip reason."""

    task: ImageTask
    crops: list[np.ndarray]
    boxes: list[tuple[int, int, int, int]]
    pngs: list[bytes]
    skip_reason: str | None = None
    planned: list[dict[str, Any]] | None = None
    """Per crop, its planned records and the row cells made of them, when a worker planned
    them (:func:`degkit.data.rows.plan_image_task`)."""


def encode_png(image: np.ndarray, level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """PNG bytes of an ``H x W x 3`` uint8 array (deterministic for a given level)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def run_image_task(task: ImageTask) -> PreparedImage:
    """Read, decode and crop the image, and encode each HR crop; never raises on bad data."""
    try:
        data = task.source.read_bytes()
    except FileNotFoundError:
        return PreparedImage(task, [], [], [], "missing file")
    except OSError as exc:
        return PreparedImage(task, [], [], [], f"cannot read: {type(exc).__name__}: {exc}")
    try:
        image = decode_rgb8(data, task.plan.max_pixels)
        boxes = crop_boxes(
            image.shape[0], image.shape[1], task.plan, task.crop_numbers, task.uniforms
        )
    except SkipImage as skip:
        return PreparedImage(task, [], [], [], skip.reason)
    crops = cut_crops(image, boxes)
    return PreparedImage(task, crops, boxes, [encode_png(c, task.png_level) for c in crops])

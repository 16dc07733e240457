"""Tiled super-resolution for images too large to upscale in one pass.

The LR image is cut into ``tile x tile`` cores on a regular grid (the last row
and column end at the image edge). Each core is upscaled together with up to
``overlap`` LR pixels of real image context on every side, and only the
core's part of the output is kept, so tiles never blend. For a network whose
receptive field reaches at most ``overlap`` LR pixels (a plain CNN), the
result equals the untiled one; windowed-attention networks (DAT, SwinIR)
differ slightly at tile seams, less the larger the overlap.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["tile_starts", "upscale_tiled"]


def tile_starts(size: int, tile: int) -> list[int]:
    """Start offsets of the cores along one axis of ``size`` pixels."""
    return list(range(0, size, tile))


def upscale_tiled(
    upscale: Callable[[torch.Tensor], torch.Tensor],
    lr: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int = 16,
) -> torch.Tensor:
    """``upscale`` applied to ``lr`` (``N x C x H x W``) tile by tile (see the module doc).

    Args:
        upscale: maps ``N x C x h x w`` to ``N x C x h*scale x w*scale``.
        lr: the LR batch.
        scale: the upscaling factor of ``upscale``.
        tile: core side in LR pixels; an image no larger than one core is upscaled whole.
        overlap: LR pixels of context on each side of a core.

    Raises:
        ValueError: ``tile`` < 1, ``overlap`` < 0, or ``upscale`` gives another size.
    """
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile {tile}, overlap {overlap}")
    height, width = lr.shape[-2:]
    if height <= tile and width <= tile:
        return upscale(lr)
    out: torch.Tensor | None = None
    for top in tile_starts(height, tile):
        for left in tile_starts(width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(bottom + overlap, height), min(right + overlap, width)
            sr = upscale(lr[..., y0:y1, x0:x1])
            if sr.shape[-2:] != ((y1 - y0) * scale, (x1 - x0) * scale):
                raise ValueError(
                    f"upscale gave {tuple(sr.shape[-2:])} for a {y1 - y0} x {x1 - x0} tile; "
                    f"expected scale {scale}"
                )
            if out is None:
                out = sr.new_empty((*sr.shape[:-2], height * scale, width * scale))
            core = sr[
                ...,
                (top - y0) * scale : (bottom - y0) * scale,
                (left - x0) * scale : (right - x0) * scale,
            ]
            out[..., top * scale : bottom * scale, left * scale : right * scale] = core
    assert out is not None
    return out

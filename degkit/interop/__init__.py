"""degkit inside other libraries' pipelines.

:mod:`degkit.interop.albumentations` wraps an op or a recipe as an
albumentations transform; :mod:`degkit.nn` wraps one as a ``torch.nn.Module``.
Both call it through :class:`Degrader`, exactly as degkit itself does, so the
same seed and sample index give the same LR and records as a plain call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from degkit.ops.base import Images, Op, Record
from degkit.ops.quantize import to_uint8
from degkit.pipeline import Pipeline
from degkit.recipes import Recipe
from degkit.recipes import load as load_recipe
from degkit.rng import BatchStreams

__all__ = ["Degrader", "image_to_tensor", "tensor_to_image"]


class Degrader:
    """An op, a pipeline or a recipe (name, path or loaded), called the way degkit calls it.

    * op: ``op(x, BatchStreams(seed, indices, op.name))``, one record per sample;
    * recipe / pipeline: ``pipeline(x, seed, indices, scale)``; ``scale``
      defaults to the recipe's (a bare pipeline needs one).
    """

    def __init__(self, what: str | Path | Recipe | Pipeline | Op, scale: int | None = None):
        if isinstance(what, str | Path):
            what = load_recipe(what)
        if isinstance(what, Recipe):
            scale = what.scale if scale is None else scale
            what = what.pipeline
        if isinstance(what, Pipeline) and scale is None:
            raise ValueError("a pipeline needs a scale (a recipe brings its own)")
        if not isinstance(what, Pipeline | Op):
            raise TypeError(f"expected an op, a pipeline or a recipe, got {type(what).__name__}")
        self.target, self.scale = what, scale

    def __call__(
        self, x: Images, seed: int, indices: Sequence[int]
    ) -> tuple[Images, list[list[Record]]]:
        """Degrade samples ``indices`` of ``x``; return the output and each sample's records."""
        if isinstance(self.target, Op):
            y, records = self.target(x, BatchStreams(seed, list(indices), self.target.name))
            return y, [[rec] for rec in records]
        result = self.target(x, seed=seed, indices=list(indices), scale=self.scale)
        return result.lr, result.records


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """An ``H x W x 3`` uint8 (0-255) or float (0-1) image -> a ``1 x 3 x H x W`` float32 batch."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"degkit degrades H x W x 3 RGB images, got shape {image.shape}")
    if image.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
    elif image.dtype.kind == "f":
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    else:
        raise ValueError(f"degkit degrades uint8 or float images, got {image.dtype}")
    return x.permute(2, 0, 1).unsqueeze(0)


def tensor_to_image(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    """A ``3 x H x W`` float image -> ``H x W x 3`` of ``like``'s dtype (uint8 is rounded)."""
    x = x.detach().cpu()
    if like.dtype == np.uint8:
        return to_uint8(x).permute(1, 2, 0).numpy()
    return x.permute(1, 2, 0).numpy().astype(like.dtype)

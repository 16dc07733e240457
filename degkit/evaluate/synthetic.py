"""Synthetic test pairs: HR crops of a source degraded by a recipe, as a build makes them.

Crops are cut as :mod:`degkit.data.prepare` cuts them (``grid``: fixed
positions; ``random``: each crop's uniforms from its own stream, as in
``degkit build``); sample ``index`` is ``ordinal * crops_per_image + k`` for crop
``k`` of the ``ordinal``-th source image (sorted by source id), so a pair
depends only on (source image, crop number, seed, recipe, level), never on the
batch. The LR is quantised to 8 bits as ``round(255 * x)``, like a build.
With ``levels``, the recipe's ``level`` choice is forced to each listed level
in turn (its other draws are unchanged) and every crop gives one pair a level.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from degkit import recipes
from degkit.data.prepare import CropPlan, SkipImage, crop_boxes, cut_crops, decode_rgb8
from degkit.data.sources import SourceImage, resolve_source
from degkit.evaluate.pairs import Pair, safe_id
from degkit.evaluate.set_spec import SetSpec

__all__ = ["DEFAULT_BATCH_SIZE", "load_recipe", "level_recipes", "set_sources", "synthetic_pairs"]

DEFAULT_BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class _Crop:
    id: str
    source_id: str
    index: int
    box: tuple[int, int, int, int]
    hr: np.ndarray


def load_recipe(spec: SetSpec, overrides: dict | None = None) -> recipes.Recipe:
    """The set's recipe; a bad name or file is a :class:`SetError` on field ``recipe``."""
    try:
        return recipes.load(spec.recipe, overrides=overrides)
    except ValueError as exc:
        raise spec.error("recipe", str(exc)) from None


def level_recipes(spec: SetSpec) -> list[tuple[str | None, recipes.Recipe]]:
    """``(level, recipe)`` for each listed level (the ``level`` choice forced to it),
    or ``[(None, recipe)]`` for a set without levels."""
    recipe = load_recipe(spec)
    if not spec.levels:
        return [(None, recipe)]
    node = dict(recipe.pipeline.root.stream_paths("")).get("level")
    names = [getattr(child, "name", None) for child in node.children()] if node else []
    absent = [level for level in spec.levels if level not in names]
    if absent:
        raise spec.error(
            "levels",
            f"recipe {recipe.name!r} has no 'level' choice between stages {list(spec.levels)}",
        )
    forced = []
    for level in spec.levels:
        weights = [1.0 if name == level else 0.0 for name in names]
        forced.append((level, load_recipe(spec, {"level": {"weights": weights}})))
    return forced


def set_sources(spec: SetSpec) -> list[SourceImage]:
    """The set's source images; a bad ``source`` is a :class:`SetError` on that field."""
    try:
        return resolve_source(spec.source)
    except (ValueError, FileNotFoundError) as exc:
        raise spec.error("source", str(exc)) from None


def _crops(spec: SetSpec, sources: Sequence[SourceImage], scale: int) -> list[_Crop]:
    plan = CropPlan(spec.crop, scale, spec.crops_per_image, spec.crop_mode)
    numbers = list(range(spec.crops_per_image))
    crops = []
    for ordinal, source in enumerate(sources):
        indices = [ordinal * spec.crops_per_image + k for k in numbers]
        uniforms = None
        if spec.crop is not None and spec.crop_mode == "random":
            from degkit.data.build import crop_uniforms

            uniforms = crop_uniforms(spec.seed, indices)
        try:
            image = decode_rgb8(source.read_bytes())
            boxes = crop_boxes(image.shape[0], image.shape[1], plan, numbers, uniforms)
        except (SkipImage, OSError) as exc:
            raise spec.error("source", f"{source.source_id}: {exc}") from None
        base = safe_id(source.source_id.removeprefix("embedded/"))
        for k, index, box, hr in zip(numbers, indices, boxes, cut_crops(image, boxes), strict=True):
            crop_id = base if spec.crop is None else f"{base}_c{k}"
            crops.append(_Crop(crop_id, source.source_id, index, box, hr))
    return crops


def _degrade(
    recipe: recipes.Recipe, crops: Sequence[_Crop], seed: int, scale: int, batch_size: int
) -> dict[int, tuple[np.ndarray, list]]:
    """``{index: (LR uint8, records)}``: batches of equal-sized crops through the recipe."""
    import torch

    out: dict[int, tuple[np.ndarray, list]] = {}
    by_shape = sorted(crops, key=lambda c: c.hr.shape)
    for _, group in itertools.groupby(by_shape, key=lambda c: c.hr.shape):
        group = list(group)
        for start in range(0, len(group), batch_size):
            batch = group[start : start + batch_size]
            hr = torch.from_numpy(np.stack([c.hr for c in batch])).permute(0, 3, 1, 2)
            hr = hr.contiguous().float().div_(255.0)
            result = recipe.pipeline(hr, seed=seed, indices=[c.index for c in batch], scale=scale)
            lr = result.lr if isinstance(result.lr, torch.Tensor) else torch.stack(list(result.lr))
            expected = (len(batch), 3, hr.shape[2] // scale, hr.shape[3] // scale)
            if tuple(lr.shape) != expected:
                raise RuntimeError(
                    f"recipe {recipe.name!r} gave LR {tuple(lr.shape)}, not {expected}"
                )
            lr8 = lr.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for i, crop in enumerate(batch):
                out[crop.index] = (np.ascontiguousarray(lr8[i]), result.records[i])
    return out


def _recipe_type(recipe: recipes.Recipe) -> str:
    return recipe.name.removeprefix("single_")


def synthetic_pairs(
    spec: SetSpec,
    variants: Sequence[tuple[str | None, recipes.Recipe]],
    sources: Sequence[SourceImage],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Pair]:
    """The pairs of a ``synthetic`` set (``variants`` from :func:`level_recipes`,
    ``sources`` from :func:`set_sources`), sorted by id; the same for any ``batch_size``."""
    scale = spec.scale or variants[0][1].scale
    crops = _crops(spec, sources, scale)
    pairs = []
    for level, recipe in variants:
        degraded = _degrade(recipe, crops, spec.seed, scale, batch_size)
        for crop in crops:
            lr, records = degraded[crop.index]
            meta = {
                "source_id": crop.source_id,
                "index": crop.index,
                "crop_box": list(crop.box),
                "records": records,
            }
            pair_id = crop.id
            if level is not None:
                meta.update(type=_recipe_type(recipe), level=level)
                pair_id = f"{crop.id}_{level}"
            pairs.append(Pair(pair_id, lr, crop.hr, meta))
    return sorted(pairs, key=lambda p: p.id)

"""From prepared HR crops to dataset rows: degrade in batches, encode LR, caption.

A *chunk* is a run of consecutive source images of one shard holding at most
``batch_size`` samples (more only when one image alone has more crops); its
samples are degraded together in batches of equal-shape crops. Because every
op draws from per-sample streams, a row does not depend on which chunk or batch
its sample was in, nor on the process that made it.

Two ways to run chunks, with byte-identical results:

* in worker processes (CPU builds without a captioner model): each worker
  reads, decodes, crops, degrades (one torch thread) and encodes whole chunks,
  so the build scales with the cores;
* in the main process (GPU builds, or with a captioner model): workers read,
  decode, crop and encode HR, and plan each crop's degradation (its records,
  captions and flat columns: :func:`plan_image_task`); the main process only
  replays the records on whole batches on the device and encodes the LR.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from degkit import captions as captions_module
from degkit import recipes
from degkit.data.captioner import ContentCaptioner
from degkit.data.shards import image_cell
from degkit.data.work import ImageTask, PreparedImage, encode_png, run_image_task
from degkit.ops.base import Record
from degkit.ops.threads import map_in_threads

__all__ = [
    "Chunk",
    "ChunkRows",
    "RowMaker",
    "chunk_tasks",
    "plan_image_task",
    "record_cells",
    "rows_of_chunk",
    "start_planner",
    "start_worker",
    "worker_chunk_rows",
]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Consecutive image tasks of the shard at position ``shard`` of the job's list."""

    shard: int
    tasks: tuple[ImageTask, ...]


@dataclasses.dataclass
class ChunkRows:
    """Row values of a chunk (index order), their caption origins, and its skipped images."""

    shard: int
    rows: list[dict[str, Any]]
    origins: list[str]
    skipped: list[dict[str, Any]]
    n_samples: int


def chunk_tasks(
    shard: int, tasks: Sequence[ImageTask], limit: Callable[[], int]
) -> Iterator[Chunk]:
    """Group a shard's image tasks into chunks of at most ``limit()`` samples.

    ``limit`` is asked afresh for each chunk, so the caller can shrink chunks
    as the work runs out.
    """
    group: list[ImageTask] = []
    size, most = 0, limit()
    for task in tasks:
        if group and size + len(task.indices) > most:
            yield Chunk(shard, tuple(group))
            group, size, most = [], 0, limit()
        group.append(task)
        size += len(task.indices)
    if group:
        yield Chunk(shard, tuple(group))


@dataclasses.dataclass
class _Sample:
    index: int
    task: ImageTask
    box: tuple[int, int, int, int]
    hr: np.ndarray
    hr_png: bytes
    planned: dict[str, Any] | None = None


def record_cells(records: list[Record], hr_size: tuple[int, int]) -> dict[str, Any]:
    """A sample's records and the row cells made of them alone: captions, the records as
    JSON and the flat degradation columns (``{"records": ..., "cells": {...}}``)."""
    caps = captions_module.captions_for(records, hr_size)
    cells = {
        "degradation_caption": caps["degradation_caption"],
        "fine_captions": list(caps["fine_captions"]),
        "severity_caption": caps["severity_caption"],
        "records": json.dumps(records, separators=(",", ":")),
        **captions_module.flat_columns(records, hr_size),
    }
    return {"records": records, "cells": cells}


class RowMaker:
    """Runs a recipe on batches of HR crops and turns each sample into row values."""

    def __init__(
        self,
        recipe: Any,
        scale: int,
        seed: int,
        png_level: int,
        device: str = "cpu",
        captioner: ContentCaptioner | None = None,
    ) -> None:
        self.recipe = recipe
        self.scale = scale
        self.seed = seed
        self.png_level = png_level
        self.device = torch.device(device)
        self.captioner = captioner

    def rows(self, batch: Sequence[_Sample]) -> tuple[list[dict[str, Any]], list[str]]:
        """Row values and content-caption origins (source / model / none) of a batch.

        Samples planned by a worker are replayed from their records (the same
        LR as degrading them afresh); others are planned and degraded here.
        """
        hr = torch.from_numpy(np.stack([s.hr for s in batch])).to(self.device)
        hr = hr.permute(0, 3, 1, 2).contiguous().float().div_(255.0)
        hr_size = (hr.shape[2], hr.shape[3])
        pipeline = self.recipe.pipeline
        if all(s.planned is not None for s in batch):
            planned = [s.planned for s in batch]
            result = pipeline.replay(hr, [p["records"] for p in planned], self.scale)
        else:
            result = pipeline(
                hr, seed=self.seed, indices=[s.index for s in batch], scale=self.scale
            )
            planned = [record_cells(records, hr_size) for records in result.records]
        lr = result.lr if isinstance(result.lr, torch.Tensor) else torch.stack(list(result.lr))
        expected = (len(batch), 3, hr.shape[2] // self.scale, hr.shape[3] // self.scale)
        if tuple(lr.shape) != expected:
            raise RuntimeError(
                f"recipe {self.recipe.name!r} gave LR {tuple(lr.shape)}, not {expected}"
            )
        lr8 = lr.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        content, origins = self._content_captions(batch)
        # Pillow releases the GIL while encoding: on a GPU build the main process
        # encodes its batch's LR images on torch's thread count.
        lr_pngs = map_in_threads(
            lambda i: encode_png(np.ascontiguousarray(lr8[i]), self.png_level), range(len(batch))
        )
        rows = []
        for i, sample in enumerate(batch):
            rows.append(
                {
                    "id": f"{self.recipe.name}-s{self.seed}-{sample.index:09d}",
                    "source_id": sample.task.source.source_id,
                    "index": sample.index,
                    "crop_top": sample.box[0],
                    "crop_left": sample.box[1],
                    "hr": image_cell(sample.hr_png),
                    "lr": image_cell(lr_pngs[i]),
                    "scale": self.scale,
                    "recipe": self.recipe.name,
                    "recipe_hash": self.recipe.hash,
                    "seed": self.seed,
                    "content_caption": content[i],
                    **planned[i]["cells"],
                }
            )
        return rows, origins

    def _content_captions(self, batch: Sequence[_Sample]) -> tuple[list[str], list[str]]:
        content = [s.task.source.caption for s in batch]
        origins = ["source" if c else "none" for c in content]
        missing = [i for i, c in enumerate(content) if not c]
        if self.captioner is not None and missing:
            generated = self.captioner([batch[i].hr for i in missing])
            for i, text in zip(missing, generated, strict=True):
                content[i], origins[i] = text, "model"
        return content, origins


def _skip_entry(prepared: PreparedImage) -> dict[str, Any]:
    source = prepared.task.source
    return {
        "source_id": source.source_id,
        "location": source.location,
        "row": source.row,
        "reason": prepared.skip_reason,
        "indices": list(prepared.task.indices),
    }


def rows_of_chunk(
    shard: int, prepared: Sequence[PreparedImage], maker: RowMaker, batch_size: int
) -> ChunkRows:
    """Degrade a chunk's crops in batches of equal shape; collect rows and skips."""
    out = ChunkRows(shard, [], [], [], sum(len(p.task.indices) for p in prepared))
    batch: list[_Sample] = []

    def flush() -> None:
        rows, origins = maker.rows(batch)
        out.rows += rows
        out.origins += origins
        batch.clear()

    for image in prepared:
        if image.skip_reason is not None:
            out.skipped.append(_skip_entry(image))
            continue
        planned = image.planned or [None] * len(image.crops)
        for index, box, crop, png, plan in zip(
            image.task.indices, image.boxes, image.crops, image.pngs, planned, strict=True
        ):
            if batch and (batch[0].hr.shape != crop.shape or len(batch) >= batch_size):
                flush()
            batch.append(_Sample(index, image.task, box, crop, png, plan))
    if batch:
        flush()
    return out


_WORKER: tuple[RowMaker, int] | None = None
_PLANNER: tuple[recipes.Recipe, int, int] | None = None


def _load_recipe(recipe_ref: str, recipe_hash: str) -> recipes.Recipe:
    """The build's recipe in a worker process, checked against the hash the build planned with."""
    recipe = recipes.load(recipe_ref)
    if recipe.hash != recipe_hash:
        raise RuntimeError(f"recipe {recipe_ref!r} changed while the build was starting")
    return recipe


def start_worker(
    recipe_ref: str, recipe_hash: str, scale: int, seed: int, png_level: int, batch_size: int
) -> None:
    """Initialise a worker process that makes whole rows (one torch thread, CPU)."""
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (RowMaker(_load_recipe(recipe_ref, recipe_hash), scale, seed, png_level), batch_size)


def worker_chunk_rows(chunk: Chunk) -> ChunkRows:
    """Worker job of parallel degradation: a chunk from source bytes to rows."""
    if _WORKER is None:
        raise RuntimeError("worker_chunk_rows needs start_worker to run first")
    maker, batch_size = _WORKER
    prepared = [run_image_task(task) for task in chunk.tasks]
    return rows_of_chunk(chunk.shard, prepared, maker, batch_size)


def start_planner(recipe_ref: str, recipe_hash: str, scale: int, seed: int) -> None:
    """Initialise a worker process that prepares and plans images for a device build."""
    global _PLANNER
    torch.set_num_threads(1)
    _PLANNER = (_load_recipe(recipe_ref, recipe_hash), scale, seed)


def plan_image_task(task: ImageTask) -> PreparedImage:
    """Worker job of a device build: read, decode, crop and encode HR (as
    :func:`~degkit.data.work.run_image_task`), then plan each crop's degradation
    and make its record cells; unplanned when the process has no planner."""
    prepared = run_image_task(task)
    if _PLANNER is None or prepared.skip_reason is not None:
        return prepared
    recipe, scale, seed = _PLANNER
    sizes = torch.tensor([crop.shape[:2] for crop in prepared.crops])
    records = recipe.pipeline.plan(seed, task.indices, sizes, scale)
    prepared.planned = [
        record_cells(recs, tuple(crop.shape[:2]))
        for recs, crop in zip(records, prepared.crops, strict=True)
    ]
    return prepared

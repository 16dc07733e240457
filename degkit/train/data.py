"""Training batches from a built degkit dataset, resumable at any step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from degkit.data.loaders import RowGroupShuffleSampler, ShardDataset, collate_rows, split_files
from degkit.train.distributed import SINGLE, World

__all__ = ["dataset_summary", "step_batches", "templated"]


def dataset_summary(folder: str | Path, split: str = "train") -> dict[str, Any]:
    """Rows, recipe hashes, whether any content caption is non-empty, captions per type."""
    files = split_files(folder, split)
    names = ("recipe_hash", "content_caption", "fine_captions")
    rows, hashes, has_content, num_types = 0, set(), False, None
    for file in files:
        missing = sorted(set(names) - set(pq.ParquetFile(file).schema_arrow.names))
        if missing:
            raise ValueError(f"{file}: not a degkit dataset shard (no column(s) {missing})")
        table = pq.read_table(file, columns=list(names))
        rows += table.num_rows
        hashes.update(table.column("recipe_hash").to_pylist())
        has_content = has_content or any(table.column("content_caption").to_pylist())
        if num_types is None and table.num_rows:
            num_types = len(table.column("fine_captions")[0].as_py())
    return {
        "rows": rows,
        "recipe_hashes": sorted(hashes),
        "has_content_captions": has_content,
        "num_types": num_types or 0,
    }


def step_batches(
    folder: str | Path,
    columns: Sequence[str],
    batch_size: int,
    seed: int,
    start_step: int = 0,
    split: str = "train",
    world: World = SINGLE,
) -> Iterator[dict[str, Any]]:
    """Endless collated batches; batch ``s`` is a function of ``(seed, s)`` alone.

    Epoch ``e`` is the loaders' row-group-shuffled order of epoch ``e`` cut into
    full batches (the remainder is dropped), so starting at ``start_step``
    yields exactly what an uninterrupted run yields from that step on. Under
    ``torchrun`` each rank takes its own disjoint part of every epoch.
    """
    dataset = ShardDataset(folder, split, columns)
    sampler = RowGroupShuffleSampler(dataset, seed, True, world.size, world.rank)
    per_epoch = len(sampler) // batch_size
    if per_epoch == 0:
        raise ValueError(
            f"--batch-size {batch_size} is larger than the {len(sampler)} rows of split "
            f"{split!r} a process gets"
        )
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(skip, per_epoch):
            yield collate_rows([dataset[i] for i in order[b * batch_size : (b + 1) * batch_size]])
        epoch, skip = epoch + 1, 0


def templated(batches: Iterator[dict[str, Any]], template: str) -> Iterator[dict[str, Any]]:
    """``batches`` with each degradation and fine caption put into ``template`` (``"...{}..."``).

    Content captions are left as they are.
    """
    for batch in batches:
        batch = dict(batch)
        if "degradation_caption" in batch:
            batch["degradation_caption"] = [
                template.format(c) for c in batch["degradation_caption"]
            ]
        if "fine_captions" in batch:
            batch["fine_captions"] = [
                [template.format(c) for c in row] for row in batch["fine_captions"]
            ]
        yield batch

"""Read built datasets in PyTorch without loading them into memory.

:class:`ShardDataset` is a map-style dataset over the parquet shards of one
split. Only the row group holding a requested row is read (a small LRU cache
of row groups per process), and only the requested columns. Images come back
as float32 ``3 x H x W`` tensors in ``[0, 1]``, ``fine_captions`` as a list of
five strings, ``records`` parsed from JSON, other columns as Python values.

Random access into parquet is cheap only within a row group, so shuffle with
:class:`RowGroupShuffleSampler`: it shuffles the order of row groups and the
rows inside each one (seeded by ``seed`` and the epoch), so every row group is
read about once per epoch (once per DataLoader worker that gets rows of it).
Each pass over the sampler (each epoch of a DataLoader) uses the next epoch's
order by itself: 0, 1, 2, ... from construction, so a fresh sampler with the
same seed repeats the same sequence of orders. ``set_epoch(e)`` makes the next
pass use epoch ``e`` (as with ``DistributedSampler``), for resuming or DDP.
With ``num_replicas`` / ``rank`` it gives each DDP rank an equal, disjoint,
contiguous part of that order (the remainder dropped).

When a split is small, decoding its PNGs on every read costs more than keeping
them: :func:`in_memory_if_fits` reads and decodes every row once into
:class:`InMemoryRows` (the same rows, the same row groups) when the decoded
images fit a memory budget (:func:`decoded_image_bytes`, from the PNG headers).
DataLoader worker processes forked after that share its images.
"""

from __future__ import annotations

import bisect
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from degkit.data.shards import IMAGE_COLUMNS

__all__ = [
    "DEFAULT_COLUMNS",
    "InMemoryRows",
    "ShardDataset",
    "RowGroupShuffleSampler",
    "collate_rows",
    "decode_image",
    "decoded_image_bytes",
    "in_memory_if_fits",
    "make_dataloader",
    "split_files",
]

DEFAULT_COLUMNS = (
    "hr",
    "lr",
    "index",
    "content_caption",
    "degradation_caption",
    "fine_captions",
    "severity_caption",
)


def split_files(folder: str | Path, split: str = "train") -> list[Path]:
    """The shard files of one split of a dataset folder, sorted."""
    files = sorted(Path(folder).glob(f"data/{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no shards of split {split!r} under {str(folder)!r}/data")
    return files


def decode_image(cell: dict[str, Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An HF ``Image`` cell (PNG bytes) as a contiguous ``3 x H x W`` tensor.

    float32 (default): values in ``[0, 1]``; uint8: the stored 8-bit values.
    """
    with Image.open(io.BytesIO(cell["bytes"])) as img:
        array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if dtype == torch.uint8:
        return image
    if dtype != torch.float32:
        raise ValueError(f"image dtype must be torch.float32 or torch.uint8, got {dtype}")
    return image.float().div_(255.0)


class ShardDataset(Dataset):
    """Rows of one split of a built dataset (see the module doc).

    Args:
        source: dataset folder, or an explicit list of shard files.
        split: split name when ``source`` is a folder.
        columns: columns to read (default :data:`DEFAULT_COLUMNS`).
        transform: optional function applied to each row dict.
        cache_row_groups: row groups kept in memory per process.
        image_dtype: ``torch.float32`` (``[0, 1]``) or ``torch.uint8`` (cheaper to
            pass between DataLoader worker processes).
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        split: str = "train",
        columns: Sequence[str] = DEFAULT_COLUMNS,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        cache_row_groups: int = 2,
        image_dtype: torch.dtype = torch.float32,
    ) -> None:
        if image_dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"image_dtype must be torch.float32 or torch.uint8, got {image_dtype}")
        self.image_dtype = image_dtype
        if isinstance(source, str | Path):
            self.files = split_files(source, split)
        else:
            self.files = [Path(f) for f in source]
        self.columns = list(columns)
        self.transform = transform
        self.cache_size = max(1, cache_row_groups)
        self.groups: list[tuple[int, int]] = []
        self.starts: list[int] = [0]
        for file_number, file in enumerate(self.files):
            parquet = pq.ParquetFile(file)
            missing = sorted(set(self.columns) - set(parquet.schema_arrow.names))
            if missing:
                raise ValueError(f"{file}: no column(s) {missing}")
            for group in range(parquet.metadata.num_row_groups):
                self.groups.append((file_number, group))
                self.starts.append(self.starts[-1] + parquet.metadata.row_group(group).num_rows)
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return self.starts[-1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def group_ranges(self) -> list[range]:
        """Row indices of each row group, in storage order."""
        return [range(a, b) for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]

    def _group_rows(self, group: int) -> list[dict[str, Any]]:
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        file_number, row_group = self.groups[group]
        table = pq.ParquetFile(self.files[file_number]).read_row_group(
            row_group, columns=self.columns
        )
        rows = table.to_pylist()
        self._cache[group] = rows
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return rows

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        group = bisect.bisect_right(self.starts, i) - 1
        row = dict(self._group_rows(group)[i - self.starts[group]])
        for name in IMAGE_COLUMNS:
            if name in row:
                row[name] = decode_image(row[name], self.image_dtype)
        if "records" in row:
            row["records"] = json.loads(row["records"])
        return self.transform(row) if self.transform else row


def decoded_image_bytes(dataset: ShardDataset, limit: int) -> int | None:
    """Bytes of ``dataset``'s images decoded (``3 x H x W`` each, at ``dataset.image_dtype``),
    from the image headers; ``None`` as soon as they exceed ``limit``.

    The stored image bytes (parquet metadata) are checked first: PNG takes at most
    about the raw pixels' bytes (bar a few bytes per image), so a split whose stored
    images, times the dtype's size, exceed twice ``limit`` is refused without reading them.
    """
    images = [c for c in IMAGE_COLUMNS if c in dataset.columns]
    itemsize = torch.empty((), dtype=dataset.image_dtype).element_size()
    files = [pq.ParquetFile(f) for f in dataset.files]
    stored = 0
    for file_number, group in dataset.groups:
        meta = files[file_number].metadata.row_group(group)
        for c in range(meta.num_columns):
            if meta.column(c).path_in_schema.split(".")[0] in images:
                stored += meta.column(c).total_uncompressed_size
    if stored * itemsize > 2 * limit:
        return None
    total = 0
    for file_number, group in dataset.groups:
        table = files[file_number].read_row_group(group, columns=images)
        for name in images:
            for cell in table.column(name).to_pylist():
                with Image.open(io.BytesIO(cell["bytes"])) as img:
                    total += 3 * img.width * img.height * itemsize
                if total > limit:
                    return None
    return total


class InMemoryRows(Dataset):
    """Every row of a :class:`ShardDataset`, read and decoded once and kept in memory.

    Rows come back as ``dataset[i]`` would return them (a new dict each time);
    the tensors and parsed records in it are shared between reads: do not
    modify them in place. ``group_ranges`` is the dataset's, so
    :class:`RowGroupShuffleSampler` gives the same order over both.

    Raises:
        ValueError: the dataset has a ``transform`` (it is applied per read).
    """

    def __init__(self, dataset: ShardDataset) -> None:
        if dataset.transform is not None:
            raise ValueError(
                "InMemoryRows holds rows as stored; the dataset must have no transform"
            )
        self.ranges = dataset.group_ranges()
        self.image_dtype = dataset.image_dtype
        self.rows = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.rows)

    def group_ranges(self) -> list[range]:
        """Row indices of each row group of the dataset, in storage order."""
        return list(self.ranges)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        return dict(self.rows[i])


def in_memory_if_fits(dataset: ShardDataset, budget_bytes: int) -> ShardDataset | InMemoryRows:
    """``InMemoryRows(dataset)`` when its decoded images fit ``budget_bytes``, else ``dataset``."""
    if budget_bytes <= 0 or dataset.transform is not None:
        return dataset
    if decoded_image_bytes(dataset, budget_bytes) is None:
        return dataset
    return InMemoryRows(dataset)


class RowGroupShuffleSampler(Sampler[int]):
    """Shuffled row order that reads each row group about once (see the module doc)."""

    def __init__(
        self,
        dataset: ShardDataset | InMemoryRows,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in [0, {num_replicas}), got {rank}")
        self.ranges = dataset.group_ranges()
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of ``epoch`` (later passes: ``epoch + 1``, ...)."""
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return [i for r in self.ranges for i in r]
        rng = np.random.default_rng([self.seed, self.epoch])
        order: list[int] = []
        for g in rng.permutation(len(self.ranges)).tolist():
            order += (np.asarray(self.ranges[g])[rng.permutation(len(self.ranges[g]))]).tolist()
        return order

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges) // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        """This pass's rows (the order of ``self.epoch``), then advance to the next epoch."""
        n = len(self)
        order = self._order()[self.rank * n : (self.rank + 1) * n]
        self.epoch += 1
        return iter(order)


def collate_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack equal-shape tensors; keep every other column as a list."""
    out: dict[str, Any] = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        if isinstance(values[0], torch.Tensor) and len({v.shape for v in values}) == 1:
            out[name] = torch.stack(values)
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            out[name] = torch.tensor(values)
        else:
            out[name] = values
    return out


def make_dataloader(
    source: str | Path | Sequence[str | Path],
    split: str = "train",
    batch_size: int = 16,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    num_replicas: int = 1,
    rank: int = 0,
    **loader_kwargs: Any,
) -> DataLoader:
    """A DataLoader of :func:`collate_rows` batches over one split, row-group shuffled.

    Every epoch (every ``for batch in loader``) is reshuffled by itself, reproducibly
    from ``seed`` and the epoch number; ``loader.sampler.set_epoch(e)`` jumps to epoch
    ``e`` (resuming, or DDP with ``num_replicas`` / ``rank``).
    """
    dataset = ShardDataset(source, split, columns)
    sampler = RowGroupShuffleSampler(dataset, seed, shuffle, num_replicas, rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_rows,
        **loader_kwargs,
    )

"""Paired HR/LR training patches for SR networks, from a built degkit dataset.

Two kinds of pairs, with the same sample layout:

* :class:`PairedPatches`: the dataset's own HR/LR pairs (degraded once, at build time);
* :class:`OnTheFlyPairs`: the dataset's HR crops degraded afresh with a recipe
  every epoch (any recipe: a cheap ``bicubic`` build is enough to hold the HR crops),
  one sample at a time as it is read (DataLoader workers, on the CPU), or with
  ``degrade=False`` planned and labelled as it is read (records, captions: the
  host's share) and degraded a whole batch at once on the training device
  (:func:`degrade_batch` replays the records; on the CPU the same LR bytes
  either way).

**Sample ids.** :class:`EpochSampler` yields ``id = epoch * N + row`` (``N`` rows
in the split), in the row-group-shuffled order of
:class:`~degkit.data.loaders.RowGroupShuffleSampler`. A sample's patch
position, flip and rotation, and (on the fly) its degradation are drawn from
``(seed, id)`` alone, so every epoch gets fresh patches and degradations, and a
run is reproducible whatever the worker count or batch size. On the fly, the
id is the pipeline's sample index, so the recorded degradation replays with
``recipe.pipeline.replay``.

**Augmentation.** An LR patch of ``lr_patch`` pixels at a uniformly drawn
position and the HR patch ``scale`` times larger at the same place; then one
of the eight flips / 90-degree rotations, applied to both (off with
``augment=False``). On the fly, the HR patch is augmented first and then
degraded, so the LR is a true degradation of the HR it is paired with.

**Batches.** :class:`StepBatchSampler` cuts the epochs of :class:`EpochSampler`
into full batches, endlessly: training step ``s`` gets batch ``s``, so a run
resumed at any step reads what the uninterrupted run reads from there on.
:class:`WholePairs` gives whole rows (the stored LR and HR, uncut) in the same
layout, for validation and for priors computed once per image.

**Sample layout** (see :func:`collate_pairs`): ``lr`` and ``hr`` uint8
``3 x h x w`` tensors, each sample's own copy (cheap to pass between DataLoader
workers; divide by 255 on the device), ``id`` and ``index`` ints, ``levels``
(floats) and ``present`` (bools), the per-type ground truth
(:func:`~degkit.models.estimator.levels_from_flat`; tensors once collated, built
for the whole batch at once), ``fine_captions``, ``content_caption`` and
``records``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, Sampler

from degkit import captions as captions_module
from degkit.data.loaders import RowGroupShuffleSampler, ShardDataset, in_memory_if_fits, split_files
from degkit.models.estimator import levels_from_flat
from degkit.ops.base import Record
from degkit.pipeline import PipelineResult
from degkit.recipes import Recipe

__all__ = [
    "DEFAULT_CACHE_MB",
    "EpochSampler",
    "EvalSampler",
    "OnTheFlyPairs",
    "collate_patches",
    "degrade_batch",
    "PairedPatches",
    "StepBatchSampler",
    "WholePairs",
    "collate_pairs",
    "dihedral",
    "patch_geometry",
]

_BASE_COLUMNS = ("hr", "lr", "index", "content_caption", "fine_captions", "records")
DEFAULT_CACHE_MB = 1024
"""Default budget (MiB) of a split's decoded images kept in memory by the patch datasets."""


_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15


def _mix64(x: int) -> int:
    """splitmix64's output function: a bijective scramble of a 64-bit integer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _uniform_ints(seed: int, sample_id: int, bounds: Sequence[int]) -> list[int]:
    """One integer uniform on ``[0, b)`` per bound ``b``, a pure function of ``(seed, sample_id)``.

    A splitmix64 stream (counter ``k`` gives ``mix(base + k * golden)``) whose base
    is ``mix(mix(seed) + sample_id)``; each 64-bit output ``x`` maps to
    ``floor(x * b / 2**64)`` (bias below ``b / 2**64``). Plain Python integers: a few
    microseconds, where seeding a NumPy generator per sample costs about twenty.
    """
    base = _mix64((_mix64((seed + _GOLDEN64) & _MASK64) + sample_id) & _MASK64)
    return [
        (_mix64((base + k * _GOLDEN64) & _MASK64) * bound) >> 64
        for k, bound in enumerate(bounds, 1)
    ]


def patch_geometry(
    seed: int, sample_id: int, lr_size: tuple[int, int], lr_patch: int, augment: bool
) -> tuple[int, int, bool, int]:
    """``(top, left, hflip, quarter_turns)`` of sample ``sample_id``, on the LR grid.

    All uniform, drawn from ``(seed, sample_id)`` alone; the position does not
    depend on ``augment``.

    Raises:
        ValueError: the LR image is smaller than ``lr_patch``.
    """
    height, width = lr_size
    if height < lr_patch or width < lr_patch:
        raise ValueError(
            f"lr_patch {lr_patch} is larger than the LR image ({height} x {width}); "
            "use a smaller patch or build the dataset with a larger --crop"
        )
    bounds = (height - lr_patch + 1, width - lr_patch + 1)
    if not augment:
        top, left = _uniform_ints(seed, sample_id, bounds)
        return top, left, False, 0
    top, left, dihedral_index = _uniform_ints(seed, sample_id, (*bounds, 8))
    return top, left, dihedral_index >= 4, dihedral_index % 4


def dihedral(image: torch.Tensor, hflip: bool, quarter_turns: int) -> torch.Tensor:
    """Flip (left-right) then rotate by ``quarter_turns`` x 90 degrees (``... x H x W``).

    ``image``: a CPU tensor of uint8, float32 or float64.

    Returns a new contiguous tensor (never a view of ``image``), made by at most
    one flip and one transposing copy.
    """
    turns = quarter_turns % 4
    # the same as flipping these axes of the input, then transposing H and W on odd turns
    flips = [d for d, flip in ((-2, turns >= 2), (-1, hflip != (turns in (1, 2)))) if flip]
    if flips:
        image = image.flip(flips)
    if turns % 2 == 0:
        return image.contiguous() if flips else image.clone(memory_format=torch.contiguous_format)
    *lead, height, width = image.shape
    planes = image.reshape(-1, height, width).numpy()
    turned = np.empty((len(planes), width, height), dtype=planes.dtype)
    for plane, out in zip(planes, turned, strict=True):
        cv2.transpose(plane, out)  # about 3x faster than torch's transposing copy of uint8
    return torch.from_numpy(turned).view(*lead, width, height)


class _Rows(Dataset):
    """Rows of one split, addressed by sample id (``epoch * N + row``)."""

    def __init__(self, folder: str | Path, split: str, with_lr: bool, cache_mb: float = 0) -> None:
        files = split_files(folder, split)
        available = set(pq.ParquetFile(files[0]).schema_arrow.names)
        wanted = [c for c in _BASE_COLUMNS if with_lr or c != "lr"]
        levels = [c for c in captions_module.flat_schema() if c in available]
        shards = ShardDataset(files, columns=wanted + levels, image_dtype=torch.uint8)
        self.rows = in_memory_if_fits(shards, int(cache_mb * 2**20))

    @property
    def in_memory(self) -> bool:
        """Whether the split's rows were decoded once and are kept in memory."""
        return not isinstance(self.rows, ShardDataset)

    def __len__(self) -> int:
        return len(self.rows)

    def _row(self, sample_id: int) -> dict[str, Any]:
        if sample_id < 0:
            raise IndexError(f"sample id must be >= 0, got {sample_id}")
        return self.rows[sample_id % len(self.rows)]


class _Pairs(_Rows):
    """Rows cut into patches whose position and augmentation depend on ``(seed, id)``."""

    def __init__(
        self,
        folder: str | Path,
        split: str,
        lr_patch: int,
        seed: int,
        augment: bool,
        with_lr: bool,
        cache_mb: float,
    ) -> None:
        if lr_patch < 1:
            raise ValueError(f"lr_patch must be a positive integer, got {lr_patch}")
        super().__init__(folder, split, with_lr, cache_mb)
        self.lr_patch = lr_patch
        self.seed = seed
        self.augment = augment


def _sample(
    sample_id: int, row: dict[str, Any], lr: torch.Tensor, hr: torch.Tensor, flat: dict[str, Any]
) -> dict[str, Any]:
    levels, present = levels_from_flat(flat)
    return {
        "lr": lr,
        "hr": hr,
        "id": sample_id,
        "index": int(row["index"]),
        "levels": levels,
        "present": present,
        "fine_captions": list(row["fine_captions"]),
        "content_caption": row["content_caption"],
        "records": row["records"],
    }


class PairedPatches(_Pairs):
    """Aligned, augmented patches of a dataset's own HR/LR pairs (see the module doc).

    Args:
        folder: a dataset built by ``degkit build``.
        scale: the dataset's scale (checked against each row's images).
        lr_patch: LR patch side; the HR patch is ``scale`` times larger.
        seed: seed of patch positions and augmentations.
        split: the split to read.
        augment: draw one of the eight flips / rotations per sample.
        cache_mb: decode the split's images once and keep them in memory when they
            fit in this many MiB (0: decode the stored PNGs on every read).
    """

    def __init__(
        self,
        folder: str | Path,
        scale: int,
        lr_patch: int,
        seed: int = 0,
        split: str = "train",
        augment: bool = True,
        cache_mb: float = DEFAULT_CACHE_MB,
    ) -> None:
        super().__init__(folder, split, lr_patch, seed, augment, True, cache_mb)
        self.scale = scale

    def __getitem__(self, sample_id: int) -> dict[str, Any]:
        row = self._row(sample_id)
        lr, hr = row["lr"], row["hr"]
        if hr.shape[-2] != lr.shape[-2] * self.scale or hr.shape[-1] != lr.shape[-1] * self.scale:
            raise ValueError(
                f"row {row['index']}: HR {tuple(hr.shape[-2:])} is not {self.scale} x the LR "
                f"{tuple(lr.shape[-2:])}; pass the dataset's own scale"
            )
        top, left, hflip, turns = patch_geometry(
            self.seed, sample_id, tuple(lr.shape[-2:]), self.lr_patch, self.augment
        )
        p, s = self.lr_patch, self.scale
        lr = dihedral(lr[:, top : top + p, left : left + p], hflip, turns)
        hr = dihedral(hr[:, top * s : (top + p) * s, left * s : (left + p) * s], hflip, turns)
        return _sample(sample_id, row, lr, hr, row)


class WholePairs(_Rows):
    """Whole stored rows (LR and HR uncut, no augmentation); the sample id is the row.

    Args:
        folder: a dataset built by ``degkit build``.
        split: the split to read.
    """

    def __init__(self, folder: str | Path, split: str = "train") -> None:
        super().__init__(folder, split, with_lr=True)

    def __getitem__(self, row_number: int) -> dict[str, Any]:
        row = self._row(row_number)
        return _sample(row_number, row, row["lr"], row["hr"], row)


class OnTheFlyPairs(_Pairs):
    """HR patches of a dataset degraded afresh by ``recipe`` for every sample id.

    Args:
        folder: a dataset built by ``degkit build`` (only its HR crops are used).
        recipe: the degradation (``degkit.recipes.load(name)``); its scale is used.
        lr_patch: LR patch side; the HR patch is ``recipe.scale`` times larger.
        seed: seed of patches, augmentations and degradations.
        split: the split to read.
        augment: draw one of the eight flips / rotations per sample.
        cache_mb: decode the split's images once and keep them in memory when they
            fit in this many MiB (0: decode the stored PNGs on every read).
        degrade: degrade each sample as it is read; False only plans and labels it,
            leaving :func:`degrade_batch` to degrade a whole batch at once on the
            training device (the same records, and on the CPU the same LR).
    """

    def __init__(
        self,
        folder: str | Path,
        recipe: Recipe,
        lr_patch: int,
        seed: int = 0,
        split: str = "train",
        augment: bool = True,
        cache_mb: float = DEFAULT_CACHE_MB,
        degrade: bool = True,
    ) -> None:
        super().__init__(folder, split, lr_patch, seed, augment, False, cache_mb)
        self.recipe = recipe
        self.scale = recipe.scale
        self.degrade = degrade

    def __getitem__(self, sample_id: int) -> dict[str, Any]:
        row = self._row(sample_id)
        hr = row["hr"]
        lr_size = (hr.shape[-2] // self.scale, hr.shape[-1] // self.scale)
        top, left, hflip, turns = patch_geometry(
            self.seed, sample_id, lr_size, self.lr_patch, self.augment
        )
        p, s = self.lr_patch, self.scale
        hr = dihedral(hr[:, top * s : (top + p) * s, left * s : (left + p) * s], hflip, turns)
        if self.degrade:
            result = self.degrade_patches(hr[None], [sample_id])
            return self.labelled(sample_id, row, hr, _as_uint8(result.lr)[0], result.records[0])
        # The worker plans the degradation and labels it (records, captions, levels: host
        # work); degrade_batch replays the records on the training device. The row's labels
        # travel without its whole images.
        size = (hr.shape[-2], hr.shape[-1])
        records = self.recipe.pipeline.plan(self.seed, [sample_id], size, self.scale)[0]
        labels = {k: v for k, v in row.items() if k not in ("hr", "lr")}
        return self.labelled(sample_id, labels, hr, None, records)

    def degrade_patches(self, hr: torch.Tensor, ids: Sequence[int]) -> PipelineResult:
        """Degrade uint8 HR patches (``N x 3 x H x W``, on any device) as samples ``ids``."""
        return self.recipe.pipeline(
            hr.float().div(255.0), seed=self.seed, indices=list(ids), scale=self.scale
        )

    def labelled(
        self,
        sample_id: int,
        row: dict[str, Any],
        hr: torch.Tensor,
        lr: torch.Tensor | None,
        records: list[Record],
    ) -> dict[str, Any]:
        """One sample: its uint8 LR (None until :func:`degrade_batch` makes it), records,
        captions and levels."""
        hr_size = (hr.shape[-2], hr.shape[-1])
        row = {
            **row,
            "records": records,
            "fine_captions": captions_module.fine_captions(records, hr_size),
        }
        return _sample(sample_id, row, lr, hr, captions_module.flat_columns(records, hr_size))


def _as_uint8(lr: torch.Tensor) -> torch.Tensor:
    """Float LR in ``[0, 1]`` rounded to uint8 (one batched op)."""
    return lr.clamp(0, 1).mul(255).round().to(torch.uint8)


def degrade_batch(
    samples: Sequence[dict[str, Any]], pairs: OnTheFlyPairs, device: torch.device
) -> dict[str, Any]:
    """Collate samples read with ``degrade=False`` and replay their planned degradations on
    ``device`` in one pipeline call; the batch has :func:`collate_pairs`' layout, its images
    on ``device``. Nothing here waits on the device."""
    hr = torch.stack([sample["hr"] for sample in samples]).to(device, non_blocking=True)
    records = [sample["records"] for sample in samples]
    lr = _as_uint8(pairs.recipe.pipeline.replay(hr.float().div(255.0), records, pairs.scale).lr)
    return collate_pairs(
        [
            {**sample, "lr": low, "hr": high}
            for sample, low, high in zip(samples, lr, hr, strict=True)
        ]
    )


def collate_patches(patches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DataLoader's collate for ``degrade=False``: the planned samples as they are, for
    :func:`degrade_batch`."""
    return list(patches)


def collate_pairs(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One batch with the same types every time: images stacked, ids and per-type levels as
    tensors (``levels`` float32 and ``present`` bool, ``N x K``), text and records as lists."""
    return {
        "lr": torch.stack([s["lr"] for s in samples]),
        "hr": torch.stack([s["hr"] for s in samples]),
        "id": torch.tensor([s["id"] for s in samples], dtype=torch.int64),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "levels": torch.tensor([s["levels"] for s in samples], dtype=torch.float32),
        "present": torch.tensor([s["present"] for s in samples], dtype=torch.bool),
        "fine_captions": [s["fine_captions"] for s in samples],
        "content_caption": [s["content_caption"] for s in samples],
        "records": [s["records"] for s in samples],
    }


class EpochSampler(Sampler[int]):
    """Sample ids ``epoch * N + row`` in row-group-shuffled order (see the module doc).

    Each pass is the next epoch; ``set_epoch(e)`` jumps to epoch ``e`` (resume,
    DDP). Under DDP each rank gets an equal, disjoint part (the remainder dropped).
    """

    def __init__(
        self, dataset: _Pairs, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.rows = RowGroupShuffleSampler(dataset.rows, seed, True, num_replicas, rank)
        self.num_rows = len(dataset)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``."""
        self.rows.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[int]:
        epoch = self.rows.epoch
        return (epoch * self.num_rows + row for row in self.rows)


class StepBatchSampler(Sampler[list[int]]):
    """Endless batches of sample ids: batch ``s`` is part ``s % per_epoch`` of epoch
    ``s // per_epoch``.

    Each epoch of :class:`EpochSampler` (this rank's part under DDP) is cut into
    ``per_epoch`` full batches, the remainder dropped. Starting at ``start``
    yields exactly the batches an uninterrupted run yields from step ``start`` on.

    Raises:
        ValueError: a rank's part of an epoch holds fewer rows than ``batch_size``.
    """

    def __init__(
        self,
        dataset: _Pairs,
        batch_size: int,
        seed: int = 0,
        start: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.epochs = EpochSampler(dataset, seed, num_replicas, rank)
        self.batch_size = batch_size
        self.per_epoch = len(self.epochs) // batch_size
        if self.per_epoch == 0:
            raise ValueError(
                f"batch size {batch_size} is larger than the {len(self.epochs)} rows "
                "a process gets per epoch"
            )
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        size = self.batch_size
        while True:
            self.epochs.set_epoch(epoch)
            ids = list(self.epochs)
            for b in range(skip, self.per_epoch):
                yield ids[b * size : (b + 1) * size]
            epoch, skip = epoch + 1, 0


class EvalSampler(Sampler[int]):
    """Rows ``rank, rank + R, rank + 2R, ...``: over all ranks every row exactly once.

    Nothing is dropped or repeated (``DistributedSampler`` pads with repeats), so
    sums gathered across ranks cover the whole split.
    """

    def __init__(self, num_rows: int, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in [0, {num_replicas}), got {rank}")
        self.indices = range(rank, num_rows, num_replicas)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

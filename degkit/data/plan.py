"""The sample plan of a build: splits, global indices, shards and ``--shard k/n`` jobs.

Everything here is decided before any image is decoded, from the sorted source
ids alone, so it never depends on batch size, worker count or timing:

* **Splits** are by source image. Images are ordered by the BLAKE2b hash of
  their id (not the seed: rebuilding with another seed keeps every image in its
  split) and cut into consecutive runs whose sizes follow the fractions
  (largest-remainder rounding, at least one image per split).
* **Indices**: the image at position ``ordinal`` of the sorted source list owns
  the samples ``index = ordinal * per_image + k`` for crop ``k < per_image``;
  indices are unique across splits and name each sample's random streams.
* **Shards**: a split's samples, in index order, are cut into runs of
  ``rows_per_shard``; shard ``j`` of ``n`` is ``data/<split>-0000j-of-0000n.parquet``.
  Samples of a skipped image leave their shard shorter; shards never move.
* **Jobs**: ``--shard k/n`` (``0 <= k < n``) takes every ``n``-th shard of the
  list of all shards (splits in order), starting at ``k``: strided, so each
  job gets a similar mix. The union of the ``n`` jobs' files is the single build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence

__all__ = [
    "ShardPlan",
    "parse_splits",
    "split_weights",
    "parse_shard_spec",
    "assign_splits",
    "plan_shards",
    "select_job",
    "default_rows_per_shard",
    "ROW_GROUP_SIZE",
]

ROW_GROUP_SIZE = 100
_TARGET_SHARD_BYTES = 400_000_000
_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """One output shard: its split, number, count and planned ``(ordinal, crop)`` samples."""

    split: str
    number: int
    count: int
    samples: tuple[tuple[int, int], ...]
    per_image: int

    @property
    def file_name(self) -> str:
        """Path relative to the output folder, e.g. ``data/train-00003-of-00012.parquet``."""
        return f"data/{self.split}-{self.number:05d}-of-{self.count:05d}.parquet"

    def indices(self) -> list[int]:
        """Global index of each planned sample."""
        return [ordinal * self.per_image + k for ordinal, k in self.samples]


def parse_splits(text: str) -> dict[str, float]:
    """Parse ``--splits`` like ``train=0.9,validation=0.1`` (normalised; ``train`` alone = 1)."""
    weights = split_weights(text)
    total = sum(weights.values())
    return {name: f / total for name, f in weights.items()}


def split_weights(text: str) -> dict[str, float]:
    """The positive weight of each split named in ``--splits``, as written (not normalised)."""
    parts = [p.strip() for p in text.split(",")]
    splits: dict[str, float] = {}
    for part in parts:
        name, sep, value = (x.strip() for x in part.partition("="))
        if not _SPLIT_NAME.match(name):
            raise ValueError(f"BuildConfig.splits: bad split name {name!r} in {text!r}")
        if name in splits:
            raise ValueError(f"BuildConfig.splits names {name!r} twice")
        if not sep and len(parts) == 1:
            value = "1"
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(
                f"BuildConfig.splits: {name!r} needs a fraction, e.g. {name}=0.1"
            ) from None
        if not (math.isfinite(fraction) and fraction > 0):
            raise ValueError(f"BuildConfig.splits: fraction of {name!r} must be > 0, got {value!r}")
        splits[name] = fraction
    return splits


def parse_shard_spec(text: str | None) -> tuple[int, int]:
    """Parse ``--shard k/n`` (``0 <= k < n``); ``None`` means the whole build ``(0, 1)``."""
    if text is None:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"BuildConfig.shard must look like k/n (e.g. 0/4), got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"BuildConfig.shard k/n needs 0 <= k < n, got {text!r}")
    return k, n


def _split_key(source_id: str) -> bytes:
    return hashlib.blake2b(source_id.encode(), digest_size=16).digest()


def assign_splits(source_ids: Sequence[str], fractions: dict[str, float]) -> dict[str, list[int]]:
    """Ordinals (positions in ``source_ids``) of each split, each list sorted."""
    n = len(source_ids)
    if n < len(fractions):
        raise ValueError(
            f"BuildConfig.splits asks for {len(fractions)} splits but there are {n} images"
        )
    exact = [f * n for f in fractions.values()]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in range(len(counts)):
        if counts[i] == 0:
            counts[max(range(len(counts)), key=lambda j: counts[j])] -= 1
            counts[i] = 1
    order = sorted(range(n), key=lambda o: _split_key(source_ids[o]))
    out: dict[str, list[int]] = {}
    start = 0
    for name, count in zip(fractions, counts, strict=True):
        out[name] = sorted(order[start : start + count])
        start += count
    return out


def plan_shards(
    split_ordinals: dict[str, list[int]], per_image: int, rows_per_shard: int
) -> list[ShardPlan]:
    """All shards of a build, splits in the given order, shards in index order."""
    if rows_per_shard < 1:
        raise ValueError(f"BuildConfig.rows_per_shard must be at least 1, got {rows_per_shard}")
    shards = []
    for split, ordinals in split_ordinals.items():
        samples = [(o, k) for o in ordinals for k in range(per_image)]
        count = max(1, math.ceil(len(samples) / rows_per_shard))
        for j in range(count):
            chunk = tuple(samples[j * rows_per_shard : (j + 1) * rows_per_shard])
            shards.append(ShardPlan(split, j, count, chunk, per_image))
    return shards


def select_job(shards: Sequence[ShardPlan], k: int, n: int) -> list[ShardPlan]:
    """The shards job ``k`` of ``n`` writes (every ``n``-th, from ``k``)."""
    return [s for position, s in enumerate(shards) if position % n == k]


def default_rows_per_shard(crop: int | None, scale: int) -> int:
    """Rows per shard keeping a shard under ~400 MB even for incompressible PNGs.

    A row holds at most ``3 * crop**2 * (1 + 1 / scale**2)`` bytes of pixels;
    whole images (no crop) get 50 rows per shard.
    """
    if crop is None:
        return 50
    row_bytes = 3 * crop * crop * (1 + 1 / scale**2) + 4096
    rows = int(_TARGET_SHARD_BYTES // row_bytes)
    if rows >= ROW_GROUP_SIZE:
        return rows // ROW_GROUP_SIZE * ROW_GROUP_SIZE
    return max(1, rows)

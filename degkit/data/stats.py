"""What a built folder holds, read from ``build.json`` and the shards' own metadata.

Only parquet footers and small text columns are read, never the images, so
collecting statistics is cheap for any dataset size. Used by the dataset card,
``skipped.jsonl`` and ``degkit info``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from degkit.data.state import finished_shard_meta, read_build_info

__all__ = ["SplitStats", "DatasetStats", "collect_stats", "skipped_lines", "read_columns"]

EXAMPLE_COLUMNS = ("id", "content_caption", "degradation_caption", "severity_caption")


@dataclasses.dataclass
class SplitStats:
    """Counts of one split: shard files present / planned, rows, bytes, planned samples."""

    name: str
    files_done: int = 0
    files_total: int = 0
    rows: int = 0
    bytes: int = 0
    planned: int = 0


@dataclasses.dataclass
class DatasetStats:
    """Everything the card and ``degkit info`` report about a built folder.

    ``skipped`` lists the source images left out; ``skipped_files`` the other
    files of a source folder (not images, broken links), which take no index.
    """

    out: Path
    info: dict[str, Any]
    splits: dict[str, SplitStats]
    files: list[str]
    skipped: list[dict[str, Any]]
    content_captions: dict[str, int]
    devices: list[str]
    examples: list[dict[str, Any]]
    skipped_files: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def shards_done(self) -> int:
        return sum(s.files_done for s in self.splits.values())

    @property
    def shards_total(self) -> int:
        return sum(s.files_total for s in self.splits.values())

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.splits.values())

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards_total


def collect_stats(out: str | Path, n_examples: int = 5) -> DatasetStats:
    """Read the statistics of a built (possibly partial) dataset folder."""
    out = Path(out)
    info = read_build_info(out)
    splits: dict[str, SplitStats] = {}
    files: list[str] = []
    skipped: dict[tuple[str, str], dict[str, Any]] = {}
    origins = {"source": 0, "model": 0, "none": 0}
    devices: set[str] = set()
    for planned in info["shards"]:
        split = splits.setdefault(planned["split"], SplitStats(planned["split"]))
        split.files_total += 1
        split.planned += planned["planned"]
        meta = finished_shard_meta(out, planned["file"], info["fingerprint"])
        if meta is None:
            continue
        split.files_done += 1
        split.rows += meta["num_rows"]
        if meta["num_rows"]:
            files.append(planned["file"])
            split.bytes += (out / planned["file"]).stat().st_size
        devices.add(meta["device"])
        for key, count in meta["content_captions"].items():
            origins[key] += count
        for entry in meta["skipped"]:
            merged = skipped.setdefault(
                (entry["source_id"], entry["reason"]), {**entry, "indices": []}
            )
            merged["indices"] = sorted(set(merged["indices"]) | set(entry["indices"]))
    examples = _examples(out, files, n_examples)
    skipped_list = sorted(skipped.values(), key=lambda e: (e["indices"][:1], e["source_id"]))
    return DatasetStats(
        out,
        info,
        splits,
        files,
        skipped_list,
        origins,
        sorted(devices),
        examples,
        info.get("skipped_files", []),
    )


def _examples(out: Path, files: Sequence[str], n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for file in files:
        if len(rows) >= n:
            break
        table = pq.ParquetFile(out / file).read_row_group(0, columns=list(EXAMPLE_COLUMNS))
        rows += table.slice(0, n - len(rows)).to_pylist()
    return rows


def skipped_lines(stats: DatasetStats) -> list[str]:
    """One JSON line per skipped image, then per skipped non-image file: source id,
    location, row, reason, indices (none for a file that is no image)."""
    return [json.dumps(entry, sort_keys=True) for entry in stats.skipped + stats.skipped_files]


def read_columns(out: str | Path, files: Sequence[str], columns: Sequence[str]) -> dict[str, list]:
    """Values of some (non-image) columns over the given shard files."""
    values: dict[str, list] = {c: [] for c in columns}
    for file in files:
        table = pq.read_table(Path(out) / file, columns=list(columns))
        for c in columns:
            values[c] += table.column(c).to_pylist()
    return values

"""``degkit info``: a text summary of a built dataset.

Counts per split, the recipe and build settings, skipped images, caption
examples, and one text histogram per flat parameter column: numeric columns
as ``bins`` equal-width bins over their observed range (nulls counted apart),
booleans, strings and class labels as counts per value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from degkit.data.jobs import job_files, recorded_jobs
from degkit.data.state import finished_shard_meta
from degkit.data.stats import DatasetStats, collect_stats, read_columns

__all__ = ["info_text", "histogram_lines", "completeness"]

_BAR_WIDTH = 30
_LISTED_SHARDS = 6


def _bar(count: int, largest: int) -> str:
    return "#" * (round(_BAR_WIDTH * count / largest) if largest else 0)


def histogram_lines(values: Sequence, kind: str, bins: int = 10) -> list[str]:
    """Text histogram of one column's values (``kind``: float64, int64, bool or string)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    lines = []
    if kind in ("float64", "int64") and present:
        lo, hi = min(present), max(present)
        if lo == hi:
            lines.append(f"    {lo:>12.4g}            {len(present):>7}  {_bar(1, 1)}")
        else:
            counts = [0] * bins
            width = (hi - lo) / bins
            for v in present:
                counts[min(int((v - lo) / width), bins - 1)] += 1
            largest = max(counts)
            for b, count in enumerate(counts):
                left, right = lo + b * width, lo + (b + 1) * width
                lines.append(
                    f"    [{left:>10.4g}, {right:>10.4g})  {count:>7}  {_bar(count, largest)}"
                )
    elif present:
        counts = Counter(str(v) for v in present)
        largest = max(counts.values())
        for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {value:<24} {count:>7}  {_bar(count, largest)}")
    missing = len(values) - len(present)
    if missing:
        lines.append(f"    {'(null)':<24} {missing:>7}")
    return lines


def _jobs_label(jobs: list[tuple[int, int]]) -> str:
    """``part 1 of 3``, ``parts 0, 2 of 4`` or ``parts 0/2, 1/3``."""
    sizes = {n for _, n in jobs}
    noun = "part" if len(jobs) == 1 else "parts"
    if len(sizes) == 1:
        return f"{noun} {', '.join(str(k) for k, _ in jobs)} of {sizes.pop()}"
    return f"{noun} {', '.join(f'{k}/{n}' for k, n in jobs)}"


def completeness(folder: Path, stats: DatasetStats) -> tuple[str, list[str]]:
    """What an unfinished folder is and how to finish it, plus the shards a part holds.

    Empty for a complete build; for a part of a split build (``--shard k/n``),
    which part it is and that ``degkit merge`` joins the parts.
    """
    if stats.complete:
        return "", []
    jobs = recorded_jobs(folder)
    if not jobs:
        return "incomplete: rerun the build with --resume", []
    fingerprint = stats.info["fingerprint"]
    mine = job_files(stats.info["shards"], jobs)
    held = [f for f in mine if finished_shard_meta(folder, f, fingerprint) is not None]
    label = _jobs_label(jobs)
    if len(held) == len(mine):
        note = f"{label} of a split build: join the parts with degkit merge"
    else:
        note = (
            f"{label} of a split build, {len(held)} of its {len(mine)} shards present: "
            "rerun it with --resume"
        )
    listed = ", ".join(held[:_LISTED_SHARDS]) or "no shard yet"
    if len(held) > _LISTED_SHARDS:
        listed += f", ... ({len(held)} in all)"
    return note, [f"part       holds {listed}"]


def info_text(folder: str | Path, bins: int = 10, n_examples: int = 5) -> str:
    """The full ``degkit info`` report of a dataset folder."""
    stats = collect_stats(folder, n_examples=n_examples)
    settings = stats.info["settings"]
    note, part_lines = completeness(Path(folder), stats)
    lines = [
        f"dataset    {Path(folder)}",
        f"recipe     {settings['recipe']}  (hash {settings['recipe_hash']})",
        f"scale      x{settings['scale']}   crop {settings['crop'] or 'whole image'} "
        f"({settings['crop_mode']}, {settings['per_image']} per image)   seed {settings['seed']}",
        f"source     {stats.info['source']}  ({settings['images']} images)",
        f"shards     {stats.shards_done} of {stats.shards_total}" + (f"  ({note})" if note else ""),
        *part_lines,
        f"rows       {stats.rows}",
        f"skipped    {len(stats.skipped)} images",
        f"devices    {', '.join(stats.devices) or '-'}",
        f"command    {stats.info['command']}",
        "",
        "split        rows  shards        bytes",
    ]
    for s in stats.splits.values():
        lines.append(
            f"{s.name:<10} {s.rows:>6}  {s.files_done:>3}/{s.files_total:<3} {s.bytes:>12}"
        )
    origins = stats.content_captions
    lines += [
        "",
        f"content captions: {origins['source']} from source, {origins['model']} by model, "
        f"{origins['none']} empty",
        "",
        "caption examples:",
    ]
    for row in stats.examples:
        lines.append(f"  {row['id']}")
        lines.append(f"    content:     {row['content_caption'] or '(empty)'}")
        lines.append(f"    degradation: {row['degradation_caption']}")
        lines.append(f"    severity:    {row['severity_caption']}")
    if stats.skipped:
        lines += ["", "skipped images (all in skipped.jsonl):"]
        lines += [f"  {e['source_id']}: {e['reason']}" for e in stats.skipped[:10]]
        if len(stats.skipped) > 10:
            lines.append(f"  ... and {len(stats.skipped) - 10} more")
    flat = settings["flat_columns"]
    values = read_columns(folder, stats.files, list(flat))
    lines += ["", "parameter histograms:"]
    for name, spec in flat.items():
        kind, column = spec["dtype"], values[name]
        lines.append(f"  {name} ({kind})")
        if kind == "class_label":
            kind = "string"
            column = [None if v is None else spec["labels"][v] for v in column]
        lines += histogram_lines(column, kind, bins) or ["    (no values)"]
    return "\n".join(lines)

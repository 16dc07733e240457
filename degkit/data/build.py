"""``degkit build``: sources -> HR crops -> recipe -> captioned parquet shards + card.

Source images are cut into chunks of about ``batch_size`` samples (see
:mod:`degkit.data.rows`). On the CPU, worker processes take whole chunks from
source bytes to finished rows (decode, crop, degrade, quantise the LR to 8 bits
as ``round(255 * x)``, PNG-encode, caption), so the build scales with the
cores. On a GPU (or with a captioner model) the workers decode, crop and encode
HR, one source image per job, while the main process regroups them into chunks
and degrades batches on ``--device``. The main process
writes shards in index order either way.

Determinism: every sample's crop position, degradation and captions depend
only on (seed, its global index, recipe, source image), never on batch size,
worker count, shard job or resume point (see :mod:`degkit.data.plan`), so the
files are byte-identical across all of these on one device type. A CUDA
build has the same HR crops and records as a CPU build, but floating-point
differences change some LR pixels (a little, or more where a JPEG block or a
rounding flips).

Resume: shards are committed one by one (:mod:`degkit.data.state`); with
``resume=True`` a run skips every finished shard and redoes the others.

Scale-out: ``--shard k/n`` (or ``auto``, see :mod:`degkit.data.jobs`) writes
one part of the build, ``degkit merge`` joins the parts, and ``engine="ray"``
runs the shards as Ray tasks (:mod:`degkit.data.ray_engine`); the files are
the same bytes in every case.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from degkit import captions as captions_module
from degkit import recipes
from degkit.data.captioner import ContentCaptioner
from degkit.data.card import render_card
from degkit.data.jobs import record_job, shard_from_environment
from degkit.data.parallel import ordered_map
from degkit.data.plan import (
    ShardPlan,
    assign_splits,
    default_rows_per_shard,
    parse_shard_spec,
    parse_splits,
    plan_shards,
    select_job,
)
from degkit.data.prepare import DEFAULT_MAX_PIXELS, CropPlan
from degkit.data.rows import (
    Chunk,
    ChunkRows,
    RowMaker,
    chunk_tasks,
    rows_of_chunk,
    start_worker,
    worker_chunk_rows,
)
from degkit.data.shards import row_features, write_shard
from degkit.data.sources import SourceImage, describe_source, resolve_source
from degkit.data.state import OutputState, fingerprint_of, write_text_atomic
from degkit.data.stats import collect_stats, skipped_lines
from degkit.data.work import DEFAULT_PNG_LEVEL, ImageTask, run_image_task
from degkit.rng import STREAM_VERSION, BatchStreams

__all__ = [
    "BuildConfig",
    "BuildPlan",
    "BuildSummary",
    "ShardsWritten",
    "build_dataset",
    "finalize",
    "plan_build",
    "write_shards",
]

ENGINES = ("local", "ray")


@dataclasses.dataclass
class BuildConfig:
    """Options of one ``degkit build`` run (see ``degkit build --help``)."""

    recipe: str
    out: Path
    source: str | None = None
    scale: int | None = None
    crop: int | None = 256
    per_image: int = 1
    crop_mode: str = "random"
    seed: int = 0
    splits: str = "train"
    shard: str | None = None
    rows_per_shard: int | None = None
    device: str = "cpu"
    workers: int = 0
    batch_size: int = 32
    resume: bool = False
    png_level: int = DEFAULT_PNG_LEVEL
    max_pixels: int = DEFAULT_MAX_PIXELS
    image_column: str | None = None
    caption_column: str | None = None
    path_column: str | None = None
    captioner: str | None = None
    license: str = "other"
    progress: bool = True
    engine: str = "local"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 <= self.png_level <= 9:
            raise ValueError(f"--png-level must lie in [0, 9], got {self.png_level}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: CUDA is not available on this machine")
        # scale-out: the engine, and the k/n of --shard auto (read once, here)
        if self.engine not in ENGINES:
            raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.shard == "auto":
            self.shard = shard_from_environment()


@dataclasses.dataclass
class BuildSummary:
    """What a run did: rows and shards written now, and the dataset's state after it."""

    out: Path
    rows: int
    shards_written: int
    bytes_written: int
    skipped_images: int
    wall_s: float
    shards_done: int
    shards_total: int

    def text(self) -> str:
        """A one-paragraph human summary."""
        rate = self.rows / self.wall_s if self.wall_s > 0 else 0.0
        state = (
            "dataset complete"
            if self.shards_done == self.shards_total
            else f"{self.shards_done} of {self.shards_total} shards present"
        )
        return (
            f"wrote {self.rows} rows in {self.shards_written} shards "
            f"({self.bytes_written / 1e6:.1f} MB) to {self.out}; "
            f"skipped {self.skipped_images} images (see skipped.jsonl); "
            f"{self.wall_s:.1f} s, {rate:.1f} rows/s; {state}"
        )


def _settings(
    config: BuildConfig,
    recipe: Any,
    scale: int,
    rows_per_shard: int,
    sources: Sequence[SourceImage],
) -> dict[str, Any]:
    ids = "\n".join(s.source_id for s in sources)
    return {
        "recipe": recipe.name,
        "recipe_hash": recipe.hash,
        "seed": config.seed,
        "stream_version": STREAM_VERSION,
        "scale": scale,
        "crop": config.crop,
        "per_image": config.per_image,
        "crop_mode": config.crop_mode,
        "splits": parse_splits(config.splits),
        "rows_per_shard": rows_per_shard,
        "png_level": config.png_level,
        "max_pixels": config.max_pixels,
        "images": len(sources),
        "source_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        "captioner": config.captioner,
        "license": config.license,
        "flat_columns": captions_module.FLAT_COLUMNS,
    }


def canonical_command(config: BuildConfig, scale: int, rows_per_shard: int) -> str:
    """The ``degkit build`` command that makes this dataset (no run-only options)."""
    args = ["degkit", "build", config.recipe]
    if config.source is not None:
        args += ["--source", str(config.source)]
    args += ["--out", str(config.out), "--scale", str(scale)]
    args += ["--crop", str(config.crop)] if config.crop is not None else ["--no-crop"]
    args += ["--per-image", str(config.per_image), "--crop-mode", config.crop_mode]
    args += ["--seed", str(config.seed), "--splits", config.splits]
    args += ["--rows-per-shard", str(rows_per_shard), "--png-level", str(config.png_level)]
    if config.max_pixels != DEFAULT_MAX_PIXELS:
        args += ["--max-pixels", str(config.max_pixels)]
    for option, value in (
        ("--image-column", config.image_column),
        ("--caption-column", config.caption_column),
        ("--path-column", config.path_column),
        ("--captioner", config.captioner),
    ):
        if value is not None:
            args += [option, value]
    if config.license != "other":
        args += ["--license", config.license]
    return shlex.join(args)


def crop_uniforms(seed: int, indices: Sequence[int]) -> tuple[tuple[float, float], ...]:
    """Each sample's ``(u_y, u_x)`` for its random crop, from its own stream at path ``crop``."""
    rng = BatchStreams(seed, indices, "crop")
    return tuple(zip(rng.uniform(0.0, 1.0).tolist(), rng.uniform(0.0, 1.0).tolist(), strict=True))


def _image_tasks(
    shard: ShardPlan, sources: Sequence[SourceImage], plan: CropPlan, seed: int, png_level: int
) -> Iterator[ImageTask]:
    """One task per source image of a shard, crops in index order."""
    for ordinal, group in itertools.groupby(shard.samples, key=lambda s: s[0]):
        crops = tuple(k for _, k in group)
        indices = tuple(ordinal * shard.per_image + k for k in crops)
        uniforms = None
        if plan.crop is not None and plan.mode == "random":
            uniforms = crop_uniforms(seed, indices)
        yield ImageTask(sources[ordinal], crops, indices, plan, uniforms, png_level)


@dataclasses.dataclass
class ShardsWritten:
    """What one run (or one Ray task) wrote: rows, bytes and the source ids it skipped."""

    rows: int = 0
    bytes: int = 0
    skipped: set[str] = dataclasses.field(default_factory=set)

    def add(self, other: ShardsWritten) -> None:
        """Count ``other``'s shards in too."""
        self.rows += other.rows
        self.bytes += other.bytes
        self.skipped |= other.skipped


class _ShardWriter:
    """Collects chunk rows shard by shard (in order) and commits each finished shard."""

    def __init__(self, state: OutputState, pending: list[ShardPlan], features: Any, device: str):
        self.state = state
        self.pending = pending
        self.features = features
        self.device = device
        self.position: int | None = None
        self.written = ShardsWritten()

    def _start(self, position: int) -> None:
        self.position = position
        self.columns: dict[str, list] = {name: [] for name in self.features}
        self.origins = {"source": 0, "model": 0, "none": 0}
        self.shard_skipped: list[dict[str, Any]] = []

    def add(self, chunk: ChunkRows) -> None:
        """Append a chunk's rows; commit the previous shard when a new one begins."""
        if chunk.shard != self.position:
            self.finish()
            self._start(chunk.shard)
        for row, origin in zip(chunk.rows, chunk.origins, strict=True):
            for name, column in self.columns.items():
                column.append(row[name])
            self.origins[origin] += 1
        self.shard_skipped += chunk.skipped
        self.written.skipped.update(entry["source_id"] for entry in chunk.skipped)

    def finish(self) -> None:
        """Commit the shard being collected (if any)."""
        if self.position is None:
            return
        shard = self.pending[self.position]
        n_rows = len(self.columns["index"])
        meta = {
            "fingerprint": self.state.fingerprint,
            "shard": shard.file_name,
            "split": shard.split,
            "planned": len(shard.samples),
            "rows": n_rows,
            "skipped": self.shard_skipped,
            "content_captions": self.origins,
            "device": self.device,
        }
        if n_rows:
            path = self.state.path_of(shard)
            self.written.bytes += write_shard(path, self.columns, self.features, meta)
        else:
            self.state.mark_empty(shard, meta)
        self.written.rows += n_rows
        self.position = None


@dataclasses.dataclass
class BuildPlan:
    """A build laid out: recipe, scale, crop plan, sources, every shard and ``build.json``."""

    recipe: Any
    scale: int
    crops: CropPlan
    sources: list[SourceImage]
    shards: list[ShardPlan]
    info: dict[str, Any]


def plan_build(config: BuildConfig) -> BuildPlan:
    """Resolve recipe and sources and lay out every shard (no image is read)."""
    recipe = recipes.load(config.recipe)
    scale = config.scale or recipe.scale
    crops = CropPlan(config.crop, scale, config.per_image, config.crop_mode, config.max_pixels)
    fractions = parse_splits(config.splits)
    sources = resolve_source(
        config.source, config.image_column, config.caption_column, config.path_column
    )
    rows_per_shard = config.rows_per_shard or default_rows_per_shard(config.crop, scale)
    split_ordinals = assign_splits([s.source_id for s in sources], fractions)
    shards = plan_shards(split_ordinals, config.per_image, rows_per_shard)
    settings = _settings(config, recipe, scale, rows_per_shard, sources)
    info = {
        "fingerprint": fingerprint_of(settings),
        "settings": settings,
        "source": describe_source(config.source),
        "command": canonical_command(config, scale, rows_per_shard),
        "shards": [
            {"file": s.file_name, "split": s.split, "planned": len(s.samples)} for s in shards
        ],
    }
    return BuildPlan(recipe, scale, crops, sources, shards, info)


def _pending_shards(
    config: BuildConfig, state: OutputState, mine: list[ShardPlan]
) -> list[ShardPlan]:
    """This job's shards still to write, after clearing partial files."""
    if not config.resume:
        existing = [s.file_name for s in mine if state.has_any_trace(s)]
        if existing:
            raise ValueError(
                f"--out {str(config.out)!r} already holds shards of this build "
                f"(e.g. {existing[0]}); pass --resume to continue it, or choose another --out"
            )
    for shard in mine:
        state.discard_partial(shard)
    return [s for s in mine if state.shard_meta(s) is None]


@contextlib.contextmanager
def _torch_threads(workers: int) -> Iterator[None]:
    """Leave the cores the worker processes use to them while degrading.

    Torch threads competing with busy workers for the same cores slow the whole
    build many times over (threads wait at every barrier for a descheduled peer).
    """
    before = torch.get_num_threads()
    if workers > 0:
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk_rows(
    config: BuildConfig, plan: BuildPlan, pending: list[ShardPlan], stack: contextlib.ExitStack
) -> Iterator[ChunkRows]:
    """Rows of every chunk of the pending shards, in order (see :mod:`degkit.data.rows`).

    When workers degrade (CPU), chunks shrink as the work runs out (at most the
    samples left over twice the worker count, and at most ``batch_size``), so
    the workers finish together instead of one running a last large chunk alone.
    """
    on_cpu = torch.device(config.device).type == "cpu"
    workers_degrade = config.workers > 0 and on_cpu and config.captioner is None

    def plan_chunks() -> Iterator[Chunk]:
        left = sum(len(s.samples) for s in pending)

        def limit() -> int:
            if not workers_degrade:
                return config.batch_size
            return max(1, min(config.batch_size, math.ceil(left / (2 * config.workers))))

        for position, shard in enumerate(pending):
            tasks = _image_tasks(shard, plan.sources, plan.crops, config.seed, config.png_level)
            for chunk in chunk_tasks(position, list(tasks), limit):
                left -= sum(len(t.indices) for t in chunk.tasks)
                yield chunk

    chunks = plan_chunks()
    window = 2 * config.workers + 2
    if workers_degrade:
        initargs = (
            config.recipe, plan.recipe.hash, plan.scale, config.seed, config.png_level,
            config.batch_size,
        )  # fmt: skip
        return stack.enter_context(
            contextlib.closing(
                ordered_map(
                    worker_chunk_rows, chunks, config.workers, window, start_worker, initargs
                )
            )
        )
    stack.enter_context(_torch_threads(config.workers))
    captioner = ContentCaptioner(config.captioner, config.device) if config.captioner else None
    maker = RowMaker(
        plan.recipe, plan.scale, config.seed, config.png_level, config.device, captioner
    )
    # Workers prepare one source image per job, so all of them stay busy however
    # few chunks there are; the main process regroups the images into chunks.
    planned = list(chunks)
    prepared = stack.enter_context(
        contextlib.closing(
            ordered_map(
                run_image_task, (t for c in planned for t in c.tasks), config.workers, window
            )
        )
    )
    return (
        rows_of_chunk(
            c.shard, list(itertools.islice(prepared, len(c.tasks))), maker, config.batch_size
        )
        for c in planned
    )


def write_shards(
    config: BuildConfig,
    plan: BuildPlan,
    state: OutputState,
    pending: list[ShardPlan],
    on_samples: Callable[[int], object],
) -> ShardsWritten:
    """Write the ``pending`` shards here (and in local workers); report samples done as they go."""
    features = row_features(captions_module.FLAT_COLUMNS)
    writer = _ShardWriter(state, pending, features, torch.device(config.device).type)
    with contextlib.ExitStack() as stack:
        for chunk in _chunk_rows(config, plan, pending, stack) if pending else ():
            writer.add(chunk)
            on_samples(chunk.n_samples)
        writer.finish()
    return writer.written


def build_dataset(config: BuildConfig) -> BuildSummary:
    """Build (or resume) the dataset described by ``config``; see the module doc."""
    start = time.perf_counter()
    job, jobs = parse_shard_spec(config.shard)
    plan = plan_build(config)
    state = OutputState.open(config.out, plan.info)
    pending = _pending_shards(config, state, select_job(plan.shards, job, jobs))
    if jobs > 1:
        record_job(config.out, job, jobs)
    progress = tqdm(
        total=sum(len(s.samples) for s in pending),
        unit="row",
        desc="degkit build",
        file=sys.stderr,
        disable=not config.progress,
    )
    with progress:
        if config.engine == "ray":
            from degkit.data.ray_engine import write_shards_on_ray

            written = write_shards_on_ray(config, plan, pending, progress.update)
        else:
            written = write_shards(config, plan, state, pending, progress.update)
    return BuildSummary(
        out=config.out,
        rows=written.rows,
        shards_written=len(pending),
        bytes_written=written.bytes,
        skipped_images=len(written.skipped),
        shards_done=finalize(config.out),
        shards_total=len(plan.shards),
        wall_s=time.perf_counter() - start,
    )


def finalize(out: Path) -> int:
    """Rewrite ``skipped.jsonl`` and ``README.md`` from the shards present; return their count."""
    stats = collect_stats(out)
    write_text_atomic(
        Path(out) / "skipped.jsonl", "".join(line + "\n" for line in skipped_lines(stats))
    )
    write_text_atomic(Path(out) / "README.md", render_card(stats))
    return stats.shards_done

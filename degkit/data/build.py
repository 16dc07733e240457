"""``degkit build``: sources -> HR crops -> recipe -> captioned parquet shards + card.

Source images are cut into chunks of about ``batch_size`` samples (see
:mod:`degkit.data.rows`). On the CPU, worker processes take whole chunks from
source bytes to finished rows (decode, crop, degrade, quantise the LR to 8 bits
as ``round(255 * x)``, PNG-encode, caption), so the build scales with the
cores. On a GPU (or with a captioner model) the workers decode, crop and encode
HR and plan each crop's degradation (records, captions, flat columns), one
source image per job, while the main process regroups them into chunks,
replays the records on whole batches on ``--device`` and encodes the LR. The
main process writes shards in index order either way.

Determinism: every sample's crop position, degradation and captions depend
only on (seed, its global index, recipe, source image), never on batch size,
worker count, shard job or resume point (see :mod:`degkit.data.plan`), so the
files are byte-identical across all of these on one device type. A CUDA
build has the same HR crops and records as a CPU build, but floating-point
differences change some LR pixels (a little, or more where a JPEG block or a
rounding flips).

Resume: shards are committed one by one (:mod:`degkit.data.state`); with
``resume=True`` a run skips every finished shard and redoes the others.

Safety: every option is checked (:mod:`degkit.data.validate`), the recipe,
sources and captioner model are resolved, and ``--out`` is checked to be new,
empty or a degkit build outside ``--source`` before anything is written. A
full disk stops the build with one line naming the folder and the space
needed; the shards already written stay, and ``--resume`` continues.

Scale-out: ``--shard k/n`` (or ``auto``, see :mod:`degkit.data.jobs`) writes
one part of the build, ``degkit merge`` joins the parts, and ``engine="ray"``
runs the shards as Ray tasks (:mod:`degkit.data.ray_engine`); the files are
the same bytes in every case.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hashlib
import itertools
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from degkit import captions as captions_module
from degkit import recipes
from degkit.data.captioner import ContentCaptioner, local_model
from degkit.data.card import render_card
from degkit.data.config import BuildConfig
from degkit.data.jobs import record_job
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
    plan_image_task,
    rows_of_chunk,
    start_planner,
    start_worker,
    worker_chunk_rows,
)
from degkit.data.shards import row_features, write_shard
from degkit.data.sources import SkippedFile, SourceImage, describe_source, list_source
from degkit.data.state import (
    OutputState,
    check_out_folder,
    fingerprint_of,
    write_text_atomic,
)
from degkit.data.stats import DatasetStats, collect_stats, skipped_lines
from degkit.data.validate import check_crop_fits_scale, field_name
from degkit.data.work import ImageTask
from degkit.rng import STREAM_VERSION, BatchStreams

__all__ = [
    "BuildConfig",
    "BuildPlan",
    "BuildSummary",
    "DiskFullError",
    "ShardsWritten",
    "build_dataset",
    "disk_full_error",
    "finalize",
    "plan_build",
    "write_shards",
]


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
    skipped_files: int = 0
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        """A one-paragraph human summary."""
        rate = self.rows / self.wall_s if self.wall_s > 0 else 0.0
        state = (
            "dataset complete"
            if self.shards_done == self.shards_total
            else f"{self.shards_done} of {self.shards_total} shards present"
        )
        others = ""
        if self.skipped_files:
            others = f" and {self.skipped_files} other file{'s' * (self.skipped_files != 1)}"
        return (
            f"wrote {self.rows} rows in {self.shards_written} shards "
            f"({self.bytes_written / 1e6:.1f} MB) to {self.out}; "
            f"skipped {self.skipped_images} images{others} (see skipped.jsonl); "
            f"{self.wall_s:.1f} s, {rate:.1f} rows/s; {state}"
            + "".join(f"; {note}" for note in self.notes)
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
        "flat_columns": {
            name: column.spec() for name, column in captions_module.flat_schema().items()
        },
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
    """What one run (or one Ray task) wrote: rows, bytes, and why it skipped source images."""

    rows: int = 0
    bytes: int = 0
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # source id -> reason

    def add(self, other: ShardsWritten) -> None:
        """Count ``other``'s shards in too."""
        self.rows += other.rows
        self.bytes += other.bytes
        self.skipped.update(other.skipped)


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
        self.written.skipped.update(
            (entry["source_id"], entry["reason"]) for entry in chunk.skipped
        )

    def row_bytes(self) -> float:
        """Mean bytes per row: of the shard files written, else of the images collected."""
        if self.written.rows:
            return self.written.bytes / self.written.rows
        if self.position is not None and self.columns["index"]:
            images = sum(len(cell["bytes"]) for c in ("hr", "lr") for cell in self.columns[c])
            return images / len(self.columns["index"])
        return 0.0

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
    skipped_files: list[SkippedFile]
    shards: list[ShardPlan]
    info: dict[str, Any]


def _check_out_path(config: BuildConfig) -> None:
    """Refuse an ``--out`` inside ``--source``, a file, or a folder of other files."""
    if config.source is not None and config.source != "embedded":
        source, out = Path(config.source).resolve(), config.out.resolve()
        if source.is_dir() and (out == source or source in out.parents):
            raise ValueError(
                f"{field_name('out')} {str(config.out)!r} is the source folder or inside it "
                f"({field_name('source')} {config.source!r}); "
                "choose an out folder outside the source"
            )
    check_out_folder(config.out)


def plan_build(config: BuildConfig) -> BuildPlan:
    """Resolve recipe and sources and lay out every shard (no image is read)."""
    recipe = recipes.load(config.recipe)
    scale = config.scale if config.scale is not None else recipe.scale
    check_crop_fits_scale(config.crop, scale)
    crops = CropPlan(config.crop, scale, config.per_image, config.crop_mode, config.max_pixels)
    fractions = parse_splits(config.splits)
    listing = list_source(
        config.source, config.image_column, config.caption_column, config.path_column
    )
    sources = listing.images
    rows_per_shard = (
        config.rows_per_shard
        if config.rows_per_shard is not None
        else default_rows_per_shard(config.crop, scale)
    )
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
    if listing.skipped:  # only then, so other builds' build.json stays as it was
        info["skipped_files"] = [
            {**dataclasses.asdict(f), "row": None, "indices": []} for f in listing.skipped
        ]
    return BuildPlan(recipe, scale, crops, sources, listing.skipped, shards, info)


def _pending_shards(
    config: BuildConfig, state: OutputState, mine: list[ShardPlan]
) -> list[ShardPlan]:
    """This job's shards still to write, after clearing partial files of this build.

    Raises:
        ValueError: a file this build did not write lies at one of its shard
            paths, or (without ``resume``) the folder already holds shards of it.
    """
    state.check_foreign(mine)
    if not config.resume:
        existing = [s.file_name for s in mine if state.has_any_trace(s)]
        if existing:
            raise ValueError(
                f"BuildConfig.out {str(config.out)!r} already holds shards of this build "
                f"(e.g. {existing[0]}); set BuildConfig.resume=True to continue it, "
                "or choose another BuildConfig.out"
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


def degrade_in_workers(config: BuildConfig) -> bool:
    """Whether worker processes degrade whole chunks (CPU builds without a captioner
    model), rather than the main process degrading batches on ``config.device``."""
    on_cpu = torch.device(config.device).type == "cpu"
    return config.workers > 0 and on_cpu and config.captioner is None


def _chunk_rows(
    config: BuildConfig,
    plan: BuildPlan,
    pending: list[ShardPlan],
    captioner: ContentCaptioner | None,
    stack: contextlib.ExitStack,
) -> Iterator[ChunkRows]:
    """Rows of every chunk of the pending shards, in order (see :mod:`degkit.data.rows`).

    When workers degrade (CPU), chunks shrink as the work runs out (at most the
    samples left over twice the worker count, and at most ``batch_size``), so
    the workers finish together instead of one running a last large chunk alone.
    """
    workers_degrade = degrade_in_workers(config)

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
    maker = RowMaker(
        plan.recipe, plan.scale, config.seed, config.png_level, config.device, captioner
    )
    # Workers prepare one source image per job, so all of them stay busy however
    # few chunks there are; the main process regroups the images into chunks.
    planned = list(chunks)
    planner_args = (config.recipe, plan.recipe.hash, plan.scale, config.seed)
    prepared = stack.enter_context(
        contextlib.closing(
            ordered_map(
                plan_image_task,
                (t for c in planned for t in c.tasks),
                config.workers,
                window,
                start_planner,
                planner_args,
            )
        )
    )
    return (
        rows_of_chunk(
            c.shard, list(itertools.islice(prepared, len(c.tasks))), maker, config.batch_size
        )
        for c in planned
    )


class DiskFullError(OSError):
    """The disk filled up during a build; the message says where and how much space is needed.

    ``row_bytes``: the mean size of a row written so far (0 when unknown).
    """

    row_bytes: float = 0.0

    def __str__(self) -> str:
        return str(self.strerror)


def disk_full_error(out: Path, row_bytes: float, rows_left: int) -> DiskFullError:
    """The one-line error for a full disk: the folder, the space needed, how to continue."""
    folder = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    free = shutil.disk_usage(folder).free
    estimate = row_bytes * rows_left
    needed = f"about {estimate / 1e6:.1f} MB" if estimate else "more space"
    error = DiskFullError(
        errno.ENOSPC,
        f"no space left on device in {str(out)!r}: the rest of this build needs "
        f"{needed} ({free / 1e6:.1f} MB free); the shards already written are kept; "
        "free some space, then resume the build (BuildConfig.resume=True)",
    )
    error.row_bytes = row_bytes
    return error


def _is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _no_usable_image(out: Path, skipped: dict[str, str]) -> ValueError:
    """The error for a run in which every source image was skipped, with the main reasons."""
    kinds = collections.Counter(reason.split(":")[0] for reason in skipped.values())
    first_id, first_reason = next(iter(skipped.items()))
    counts = ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common(3))
    hint = (
        "; lower BuildConfig.crop or set BuildConfig.crop=None"
        if kinds.most_common(1)[0][0] == "smaller than the crop"
        else ""
    )
    return ValueError(
        f"no usable image: all {len(skipped)} source images this run read were skipped "
        f"({counts}; e.g. {first_id}: {first_reason}){hint}; see {out / 'skipped.jsonl'}"
    )


def write_shards(
    config: BuildConfig,
    plan: BuildPlan,
    state: OutputState,
    pending: list[ShardPlan],
    on_samples: Callable[[int], object],
    captioner: ContentCaptioner | None = None,
) -> ShardsWritten:
    """Write the ``pending`` shards here (and in local workers); report samples done as they go.

    ``captioner`` is the loaded ``config.captioner`` model (None without one).

    Raises:
        DiskFullError: the disk filled up (the shards written so far are kept).
    """
    features = row_features(plan.info["settings"]["flat_columns"])
    writer = _ShardWriter(state, pending, features, torch.device(config.device).type)
    try:
        with contextlib.ExitStack() as stack:
            for chunk in _chunk_rows(config, plan, pending, captioner, stack) if pending else ():
                writer.add(chunk)
                on_samples(chunk.n_samples)
            writer.finish()
    except OSError as exc:
        if not _is_disk_full(exc) or isinstance(exc, DiskFullError):
            raise
        rows_left = sum(len(s.samples) for s in pending) - writer.written.rows
        raise disk_full_error(config.out, writer.row_bytes(), rows_left) from None
    return writer.written


def build_dataset(config: BuildConfig) -> BuildSummary:
    """Build (or resume) the dataset described by ``config``; see the module doc.

    Raises:
        ValueError: bad options or ``--out``, or no source image gave a row.
        DiskFullError: the disk filled up (the shards written so far are kept).
    """
    start = time.perf_counter()
    job, jobs = parse_shard_spec(config.shard)
    _check_out_path(config)
    plan = plan_build(config)
    captioner = None
    if config.captioner and config.engine == "local":
        captioner = ContentCaptioner(config.captioner, config.device)
    elif config.captioner:  # each Ray task loads it; fail here at once if it is not local
        local_model(config.captioner)
    pending: list[ShardPlan] = select_job(plan.shards, job, jobs)
    try:
        state = OutputState.open(config.out, plan.info)
        pending = _pending_shards(config, state, pending)
        if jobs > 1:
            record_job(config.out, job, jobs, plan.info["fingerprint"])
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
                written = write_shards(config, plan, state, pending, progress.update, captioner)
        stats = _finalize(config.out)
    except OSError as exc:
        if not _is_disk_full(exc) or isinstance(exc, DiskFullError):
            raise
        # build.json, a job marker or the card: no row of this run is known
        raise disk_full_error(config.out, 0.0, sum(len(s.samples) for s in pending)) from None
    if pending and stats.rows == 0 and written.skipped:
        raise _no_usable_image(config.out, written.skipped)
    return BuildSummary(
        out=config.out,
        rows=written.rows,
        shards_written=len(pending),
        bytes_written=written.bytes,
        skipped_images=len(written.skipped),
        shards_done=stats.shards_done,
        shards_total=len(plan.shards),
        wall_s=time.perf_counter() - start,
        skipped_files=len(plan.skipped_files),
        notes=(
            (f"replaced the settings of an earlier build that wrote no shard ({state.replaced})",)
            if state.replaced
            else ()
        ),
    )


def finalize(out: Path) -> int:
    """Rewrite ``skipped.jsonl`` and ``README.md`` from the shards present; return their count."""
    return _finalize(out).shards_done


def _finalize(out: Path) -> DatasetStats:
    """:func:`finalize`, returning the statistics of the folder."""
    stats = collect_stats(out)
    write_text_atomic(
        Path(out) / "skipped.jsonl", "".join(line + "\n" for line in skipped_lines(stats))
    )
    write_text_atomic(Path(out) / "README.md", render_card(stats))
    return stats

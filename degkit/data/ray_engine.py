"""``degkit build --engine ray``: every pending shard is one Ray task.

The driver (the ``degkit build`` process) plans the build, records
``build.json``, skips finished shards (``--resume``) exactly as a local build
does, then submits one task per remaining shard and counts them in as they
finish. Ray schedules the tasks: ``ray.init()`` joins the cluster named by
``RAY_ADDRESS`` (or one started with ``ray start``), else starts a local one
on this machine. Each task plans the build again on its node, checks it gets
the driver's fingerprint (same recipe, settings and source ids), and writes
its shard into ``--out`` with the local machinery in one process, so the files
are byte-identical to a local build. ``--out`` and ``--source`` must therefore
be on a file system every node sees. A task takes one CPU (and one GPU with
``--device cuda``); with ``--captioner`` each Ray worker process loads the
model once, from its node's local files.

A task's own error (a bad file, a model missing on a node, a full disk)
reaches the user as the same one-line error a local build gives.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from typing import Any

from degkit.data.build import (
    BuildConfig,
    BuildPlan,
    DiskFullError,
    ShardsWritten,
    disk_full_error,
    plan_build,
    write_shards,
)
from degkit.data.captioner import ContentCaptioner
from degkit.data.plan import ShardPlan
from degkit.data.state import OutputState, read_build_info
from degkit.extras import require

__all__ = ["import_ray", "write_shards_on_ray"]

# A Ray worker process runs many tasks of one build: it plans the build (and
# loads the captioner) once.
_PLANS: dict[str, BuildPlan] = {}
_CAPTIONERS: dict[tuple[str, str], ContentCaptioner] = {}


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    return require("ray", "ray", "BuildConfig.engine 'ray'")


def _plan_once(config: BuildConfig) -> BuildPlan:
    key = repr(config)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = plan_build(config)
    return _PLANS[key]


def _captioner_once(config: BuildConfig) -> ContentCaptioner | None:
    if config.captioner is None:
        return None
    key = (config.captioner, config.device)
    if key not in _CAPTIONERS:
        _CAPTIONERS.clear()
        _CAPTIONERS[key] = ContentCaptioner(config.captioner, config.device)
    return _CAPTIONERS[key]


def build_one_shard(config: BuildConfig, fingerprint: str, file: str) -> ShardsWritten:
    """Ray task: write the shard ``file`` of the build ``fingerprint`` into ``config.out``."""
    where = f"Ray node {socket.gethostname()} (pid {os.getpid()})"
    plan = _plan_once(config)
    if plan.info["fingerprint"] != fingerprint:
        raise ValueError(
            f"{where} plans another build than the driver (its recipe, settings or "
            f"BuildConfig.source {config.source!r} differ); give every node the same files"
        )
    try:
        folder_fingerprint = read_build_info(config.out)["fingerprint"]
    except FileNotFoundError:
        folder_fingerprint = None
    if folder_fingerprint != fingerprint:
        raise ValueError(
            f"{where} does not see the build in BuildConfig.out {str(config.out)!r}; "
            "put BuildConfig.out on a file system every node shares"
        )
    shard = next(s for s in plan.shards if s.file_name == file)
    state = OutputState(config.out, plan.info)
    return write_shards(config, plan, state, [shard], lambda n: None, _captioner_once(config))


def write_shards_on_ray(
    config: BuildConfig,
    plan: BuildPlan,
    pending: list[ShardPlan],
    on_samples: Callable[[int], object],
) -> ShardsWritten:
    """Write the ``pending`` shards as Ray tasks; report each shard's samples as it finishes."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init()
    task = ray.remote(build_one_shard).options(
        num_cpus=1, num_gpus=1 if config.device.startswith("cuda") else 0
    )
    in_task = dataclasses.replace(config, engine="local", workers=0, progress=False)
    fingerprint = plan.info["fingerprint"]
    shards = {task.remote(in_task, fingerprint, s.file_name): s for s in pending}
    remaining = list(shards)
    written = ShardsWritten()
    try:
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            try:
                written.add(ray.get(done[0]))
            except ray.exceptions.RayTaskError as error:  # a task's own error, one line
                if isinstance(error.cause, DiskFullError):  # counted over the whole build
                    per_row = written.bytes / written.rows if written.rows else 0.0
                    rows_left = sum(len(shards[ref].samples) for ref in [*done, *remaining])
                    raise disk_full_error(
                        config.out, per_row or error.cause.row_bytes, rows_left
                    ) from None
                if isinstance(error.cause, OSError | ValueError):
                    raise error.cause from None
                raise
            on_samples(len(shards[done[0]].samples))
    finally:
        for ref in remaining:
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
    return written

"""Split builds: where ``--shard auto`` takes k/n from, and which jobs a folder holds.

``--shard auto`` reads the job array the build runs in:

* a SLURM array (``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``, and
  ``SLURM_ARRAY_TASK_MIN`` / ``SLURM_ARRAY_TASK_STEP`` so ``--array=1-8`` or
  ``--array=0-14:2`` work too): ``k = (id - min) / step``, ``n = count``;
* torchrun or any launcher setting ``RANK`` and ``WORLD_SIZE``.

A job ``k`` of ``n`` records itself as ``.degkit/jobs/<k>-of-<n>.json`` in
its output folder. Jobs sharing one ``--out`` folder each write their own
marker, so nothing races; ``degkit info`` and ``degkit merge`` read them.
The build's fingerprint never includes k or n, so every part of a build has
the same one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from degkit.data.plan import select_job
from degkit.data.state import STATE_DIR, write_text_atomic

__all__ = ["shard_from_environment", "record_job", "recorded_jobs", "job_files"]


def _integer(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None and default is not None:
        return default
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"BuildConfig.shard 'auto': {name}={text!r} is not an integer") from None


def shard_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The ``k/n`` of ``--shard auto``, from a SLURM job array or ``RANK`` / ``WORLD_SIZE``."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" in env:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            raise ValueError(
                "BuildConfig.shard 'auto': SLURM_ARRAY_TASK_ID is set "
                "but not SLURM_ARRAY_TASK_COUNT"
            )
        task = _integer(env, "SLURM_ARRAY_TASK_ID")
        count = _integer(env, "SLURM_ARRAY_TASK_COUNT")
        first = _integer(env, "SLURM_ARRAY_TASK_MIN", 0)
        step = _integer(env, "SLURM_ARRAY_TASK_STEP", 1)
        k, off_grid = divmod(task - first, max(step, 1))
        if off_grid or not 0 <= k < count:
            raise ValueError(
                f"BuildConfig.shard 'auto': SLURM array task {task} is not one of {count} "
                "evenly spaced "
                f"tasks from {first} (step {step}); use e.g. --array=0-{count - 1} "
                "or set BuildConfig.shard to k/n"
            )
        return f"{k}/{count}"
    if "RANK" in env or "WORLD_SIZE" in env:
        if "RANK" not in env or "WORLD_SIZE" not in env:
            raise ValueError("BuildConfig.shard 'auto': RANK and WORLD_SIZE must be set together")
        return f"{_integer(env, 'RANK')}/{_integer(env, 'WORLD_SIZE')}"
    raise ValueError(
        "BuildConfig.shard 'auto': no job array found; run it in a SLURM array "
        "(SLURM_ARRAY_TASK_ID, "
        "SLURM_ARRAY_TASK_COUNT) or set RANK and WORLD_SIZE (as torchrun does), "
        "or set BuildConfig.shard to k/n"
    )


def _jobs_dir(out: Path) -> Path:
    return Path(out) / STATE_DIR / "jobs"


def record_job(out: Path, k: int, n: int, fingerprint: str) -> None:
    """Mark ``out`` as holding job ``k`` of ``n`` of the build ``fingerprint``."""
    marker = _jobs_dir(out) / f"{k}-of-{n}.json"
    if not marker.is_file():
        write_text_atomic(marker, json.dumps({"k": k, "n": n, "fingerprint": fingerprint}) + "\n")


def recorded_jobs(out: Path) -> list[tuple[int, int]]:
    """The ``(k, n)`` of every split-build job that wrote into ``out``, sorted."""
    folder = _jobs_dir(out)
    if not folder.is_dir():
        return []
    jobs = (json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json"))
    return sorted((job["k"], job["n"]) for job in jobs)


def job_files(planned: list[dict[str, Any]], jobs: list[tuple[int, int]]) -> list[str]:
    """Shard files (from ``build.json``'s ``shards``) that the given jobs write."""
    mine = {shard["file"] for k, n in jobs for shard in select_job(planned, k, n)}
    return [shard["file"] for shard in planned if shard["file"] in mine]

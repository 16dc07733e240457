"""Stand-in leaderboard stages for the worker-process tests (imports nothing heavy)."""

from __future__ import annotations

import time
from pathlib import Path


def stage_work(folder: Path, name: str, after: tuple[str, ...], fail: bool = False) -> None:
    """A stand-in stage: checks that its inputs exist, then writes its own."""
    missing = [other for other in after if not (folder / other).exists()]
    if missing:
        raise AssertionError(f"{name} started before {missing} finished")
    if fail:
        raise ValueError(f"stage {name} failed")
    time.sleep(0.2)
    (folder / name).write_text("done")


def sleeping_stage(folder: Path) -> None:
    """A stand-in stage that records its process id, then runs far longer than any test."""
    import os

    (folder / "worker.pid").write_text(str(os.getpid()))
    time.sleep(120)

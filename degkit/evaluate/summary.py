"""The result of an evaluation (``summary.json``) and the provenance helpers it uses.

Kept free of torch so reading results (e.g. for a leaderboard) stays light.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import degkit

__all__ = ["Summary", "git_commit"]


@dataclasses.dataclass(frozen=True)
class Summary:
    """A finished evaluation: means per metric (or why one is n/a) and provenance."""

    set: dict[str, Any]
    model: dict[str, Any]
    metrics: dict[str, dict[str, Any]]  # name -> mean | na, direction, reference, protocol
    n: int
    per_image_csv: str
    degkit_version: str
    git_commit: str | None
    torch_version: str
    device: str
    precision: str
    batch_size: int
    tile: int | None
    tile_overlap: int
    wall_seconds: float
    rows_resumed: int
    finished_utc: str

    @property
    def scores(self) -> dict[str, float | str]:
        """Mean per metric, or its ``n/a (...)`` text."""
        return {k: v["na"] if v["mean"] is None else v["mean"] for k, v in self.metrics.items()}

    def to_json(self) -> str:
        """The summary as indented JSON text."""
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> Summary:
        """Load a ``summary.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}: not a degkit evaluation summary ({exc})") from None


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout degkit is imported from, else None."""
    root = Path(degkit.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None

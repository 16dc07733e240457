"""On-disk cache of generated test pairs, so repeated evaluations start at once.

A synthetic set's pairs are stored in ``$XDG_CACHE_HOME/degkit/sets/<key>.npz``
(``~/.cache`` when the variable is unset). The key hashes everything the
pixels depend on: the set file's fields, the recipe hashes, the source images'
ids, sizes and modification times, degkit's stream version and the versions of
degkit, torch, kornia, OpenCV, NumPy and Pillow. The file also stores the
pairs' content hash, which is recomputed on every read: a cache file that does
not reproduce it (or cannot be read) is ignored and rewritten.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from degkit.data.state import fingerprint_of, write_bytes_atomic
from degkit.evaluate.pairs import Pair, content_hash

__all__ = ["cache_dir", "cache_key", "read_cached", "write_cached"]

_VERSIONED = ("degkit", "torch", "kornia", "opencv-python-headless", "numpy", "pillow")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/degkit/sets`` (default ``~/.cache/degkit/sets``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "degkit" / "sets"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_key(settings: dict[str, Any], files: Sequence[str | Path]) -> str:
    """Hex key of ``settings`` (JSON-able), the files' stat and the library versions."""
    from degkit.rng import STREAM_VERSION

    stats = []
    for file in files:
        stat = Path(file).stat()
        stats.append([str(file), stat.st_size, stat.st_mtime_ns])
    return fingerprint_of(
        {
            "settings": settings,
            "files": stats,
            "stream_version": STREAM_VERSION,
            "versions": {dist: _version(dist) for dist in _VERSIONED},
        }
    )


def read_cached(path: Path, scale: int, kind: str) -> list[Pair] | None:
    """The cached pairs, or ``None`` when the file is absent, unreadable or not intact."""
    try:
        with np.load(path, allow_pickle=False) as data:
            index = json.loads(str(data["index"]))
            stored_hash = str(data["hash"])
            pairs = [
                Pair(
                    entry["id"],
                    data[f"lr_{k}"],
                    data[f"hr_{k}"] if entry["has_hr"] else None,
                    entry["meta"],
                )
                for k, entry in enumerate(index)
            ]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    return pairs if content_hash(pairs, scale, kind) == stored_hash else None


def write_cached(path: Path, pairs: Sequence[Pair], digest: str) -> None:
    """Store the pairs and their content hash (written to a temporary file, then renamed)."""
    arrays: dict[str, np.ndarray] = {}
    index = []
    for k, pair in enumerate(pairs):
        arrays[f"lr_{k}"] = pair.lr
        if pair.hr is not None:
            arrays[f"hr_{k}"] = pair.hr
        index.append({"id": pair.id, "has_hr": pair.hr is not None, "meta": pair.meta})
    arrays["index"] = np.array(json.dumps(index))
    arrays["hash"] = np.array(digest)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())

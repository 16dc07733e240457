"""Test pairs and their content hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["Pair", "content_hash", "safe_id"]


@dataclasses.dataclass(frozen=True, eq=False)
class Pair:
    """One test image: its id, the LR (uint8 ``H x W x 3``) and HR (``scale`` times larger,
    or ``None`` for LR-only sets) and provenance (``source_id``, crop box, records, and
    ``type`` / ``level`` in severity sets)."""

    id: str
    lr: np.ndarray
    hr: np.ndarray | None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def safe_id(text: str) -> str:
    """``text`` as a file-name-safe id: runs of characters other than ``A-Za-z0-9._-``
    become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "_"


def _array_bytes(digest: Any, image: np.ndarray | None) -> None:
    if image is None:
        digest.update(b"none;")
        return
    digest.update(f"{image.dtype.str}{list(image.shape)};".encode())
    digest.update(np.ascontiguousarray(image).tobytes())


def content_hash(pairs: Iterable[Pair], scale: int, kind: str) -> str:
    """SHA-256 (hex) of the scale, kind, and every pair's id, LR and HR pixels (ids sorted)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"scale": scale, "kind": kind}, sort_keys=True).encode())
    for pair in sorted(pairs, key=lambda p: p.id):
        digest.update(f"\n{pair.id}\n".encode())
        _array_bytes(digest, pair.lr)
        _array_bytes(digest, pair.hr)
    return digest.hexdigest()

"""A folder of SR results (``<pair.id>.png``) matched to a test set's pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultsFolder", "results_folder"]


@dataclasses.dataclass(frozen=True)
class ResultsFolder:
    """SR images already computed elsewhere, one PNG per pair id."""

    path: Path
    scale: int

    @property
    def name(self) -> str:
        """Method name shown in reports: the folder's name."""
        return self.path.name

    def file_of(self, pair_id: str) -> Path:
        """Where the SR image of ``pair_id`` lies."""
        return self.path / f"{pair_id}.png"

    def load(self, pair_id: str) -> np.ndarray:
        """The SR image of a pair as uint8 ``H x W x 3``."""
        from degkit.data.prepare import decode_rgb8

        file = self.file_of(pair_id)
        try:
            return decode_rgb8(file.read_bytes())
        except Exception as exc:
            raise ValueError(f"{file}: cannot be decoded ({exc})") from None

    def describe(self) -> dict[str, Any]:
        """Provenance in the same shape as :meth:`SRModel.describe`."""
        return {
            "name": self.name,
            "kind": "results",
            "scale": self.scale,
            "architecture": None,
            "definition": None,
            "checkpoint": str(self.path),
            "checkpoint_sha256": None,
            "parameters": None,
        }


def results_folder(path: str | Path, pairs: Sequence[Any], scale: int) -> ResultsFolder:
    """Check a results folder holds exactly one image of the right size per pair.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: a file is missing, extra, unreadable or of the wrong size
            (one line naming the file).
    """
    from PIL import Image

    folder = ResultsFolder(Path(path), scale)
    if not folder.path.is_dir():
        raise FileNotFoundError(f"results folder {folder.path}: not a folder")
    expected = {f"{pair.id}.png" for pair in pairs}
    present = {p.name for p in folder.path.iterdir() if not p.name.startswith(".")}
    for kind, names in (("missing", expected - present), ("extra", present - expected)):
        if names:
            first = sorted(names)[0]
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            what = "no SR image for this pair" if kind == "missing" else "matches no pair id"
            raise ValueError(f"{folder.path / first}: {kind} file, {what}{more}")
    for pair in pairs:
        file = folder.file_of(pair.id)
        want = (pair.lr.shape[1] * scale, pair.lr.shape[0] * scale)
        try:
            with Image.open(file) as img:
                size = img.size
        except Exception as exc:
            raise ValueError(f"{file}: cannot be read as an image ({exc})") from None
        if size != want:
            raise ValueError(
                f"{file}: {size[0]}x{size[1]} pixels, expected {want[0]}x{want[1]} "
                f"(LR {pair.lr.shape[1]}x{pair.lr.shape[0]} times {scale})"
            )
    return folder

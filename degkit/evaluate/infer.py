"""Super-resolve image files with an SR model (``degkit sr``): one PNG per input, same stem.

Inputs are an image file or the files of a folder (not its sub-folders), in
name order; files that do not decode as images are skipped with the reason.
Each LR image is upscaled whole or in blended tiles
(:func:`~degkit.evaluate.models.super_resolve`; a degkit checkpoint's prior
runs once per image unless ``prior_per_tile``), rounded to 8 bits and
written atomically as ``OUT/<stem>.png``. An existing output is kept (and
reported) unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from degkit.data.prepare import SkipImage, decode_rgb8
from degkit.data.state import write_bytes_atomic
from degkit.data.work import encode_png
from degkit.evaluate.models import SRModel, super_resolve

__all__ = ["InferResult", "input_files", "super_resolve_files"]


@dataclasses.dataclass
class InferResult:
    """What a run did: files written, and inputs skipped with the reason."""

    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def input_files(path: str | Path) -> list[Path]:
    """``path`` itself, or the files of the folder ``path`` sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    stems: dict[str, Path] = {}
    for file in files:
        if file.stem in stems:
            raise ValueError(
                f"{path}: {stems[file.stem].name} and {file.name} would both be written as "
                f"{file.stem}.png; rename one"
            )
        stems[file.stem] = file
    return files


def super_resolve_files(
    model: SRModel,
    inputs: str | Path,
    out: str | Path,
    *,
    tile: int | None = None,
    tile_overlap: int = 16,
    prior_per_tile: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
    overwrite: bool = False,
    say: Callable[[str], None] | None = None,
) -> InferResult:
    """Write ``OUT/<stem>.png``, the SR of each input image; ``say`` gets a line per image."""
    if model.needs_truth:
        raise ValueError(
            f"model {model.checkpoint or model.name}: {model.needs_truth}, which arbitrary "
            "images do not come with; score it with degkit eval on a synthetic test set"
        )
    say = say or (lambda line: print(line, file=sys.stderr))
    files, out = input_files(inputs), Path(out)
    model.to(device)
    result = InferResult()
    for number, file in enumerate(files, 1):
        target = out / f"{file.stem}.png"
        head = f"[{number}/{len(files)}] {file.name}"
        if target.resolve() == file.resolve():
            raise ValueError(f"--out {out}: {target} would replace the input image; choose another")
        if target.exists() and not overwrite:
            result.skipped.append((file, f"{target} exists (--overwrite replaces it)"))
            say(f"{head}: skipped, {result.skipped[-1][1]}")
            continue
        try:
            image = decode_rgb8(file.read_bytes())
        except SkipImage as exc:
            result.skipped.append((file, exc.reason))
            say(f"{head}: skipped, {exc.reason}")
            continue
        start = time.perf_counter()
        lr = torch.tensor(image).permute(2, 0, 1)[None].to(device).float().div_(255)
        sr = super_resolve(model, lr, tile, tile_overlap, precision, prior_per_tile=prior_per_tile)
        sr8 = sr[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        write_bytes_atomic(target, encode_png(np.ascontiguousarray(sr8)))
        result.written.append(target)
        h, w = image.shape[:2]
        seconds = time.perf_counter() - start
        say(f"{head}: {w}x{h} -> {sr8.shape[1]}x{sr8.shape[0]} {target} ({seconds:.1f} s)")
    return result

"""Test pairs from folders: paired HR / LR folders, and LR-only folders of real photos.

Paired folders (RealSR, DRealSR, DIV2K-val style) are matched by relative path
and file name: an HR file's name, less a trailing ``_HR`` or ``_x1`` tag, is
its key; an LR file matches the HR file whose key is its own name, or its name
less a trailing scale / LR tag (``x4``, ``_x4``, ``_LR4``, ``_LR``): ``0801.png``
pairs with ``0801x4.png`` or ``0801.png``. Every HR needs exactly one LR and
every LR an HR. The scale is the ratio of the sizes, the same for every pair
(and equal to the set's ``scale`` when it gives one); an HR up to ``scale - 1``
pixels larger than ``scale`` x LR is trimmed at the bottom / right (mod-crop).
Images are decoded by :func:`degkit.data.prepare.decode_rgb8`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from degkit.data.prepare import SkipImage, decode_rgb8
from degkit.data.sources import folder_images
from degkit.evaluate.pairs import Pair, safe_id
from degkit.evaluate.set_spec import SetSpec

__all__ = ["paired_folder_pairs", "lr_folder_pairs"]

_HR_TAG = re.compile(r"[_-](hr|x1)$", re.IGNORECASE)
_LR_TAG = re.compile(r"([_-]?x\d+|[_-]lr\d*)$", re.IGNORECASE)


def _key(rel_path: str, tag: re.Pattern | None = None) -> str:
    path = Path(rel_path)
    stem = tag.sub("", path.stem) if tag is not None else path.stem
    return (path.parent / (stem or path.stem)).as_posix()


def _decode(spec: SetSpec, field: str, path: str) -> np.ndarray:
    try:
        return decode_rgb8(Path(path).read_bytes())
    except (SkipImage, OSError) as exc:
        raise spec.error(field, f"{path}: {exc}") from None


def _files(spec: SetSpec, field: str, folder: Path) -> dict[str, str]:
    files = {image.source_id: image.location for image in folder_images(folder)}
    if not files:
        raise spec.error(field, f"folder {str(folder)!r} holds no images")
    return files


def _match(spec: SetSpec) -> list[tuple[str, str, str]]:
    """``(key, HR file, LR file)`` of every pair, sorted by key."""
    hr_by_key: dict[str, str] = {}
    for rel, location in _files(spec, "hr", spec.hr).items():
        key = _key(rel, _HR_TAG)
        if key in hr_by_key:
            raise spec.error("hr", f"{location} and {hr_by_key[key]} both have the name {key!r}")
        hr_by_key[key] = location
    lr_by_key: dict[str, str] = {}
    for rel, location in _files(spec, "lr", spec.lr).items():
        key = next((k for k in (_key(rel), _key(rel, _LR_TAG)) if k in hr_by_key), None)
        if key is None:
            raise spec.error("lr", f"{location} has no HR file of the same name in {spec.hr}")
        if key in lr_by_key:
            raise spec.error("lr", f"{location} and {lr_by_key[key]} both match HR {key!r}")
        lr_by_key[key] = location
    unmatched = sorted(set(hr_by_key) - set(lr_by_key))
    if unmatched:
        raise spec.error("hr", f"{hr_by_key[unmatched[0]]} has no LR file in {spec.lr}")
    return [(key, hr_by_key[key], lr_by_key[key]) for key in sorted(hr_by_key)]


def _size_ratio(hr: np.ndarray, lr: np.ndarray) -> int | None:
    """``HR // LR`` when height and width agree on it (and it is at least 1), else ``None``."""
    factors = {hr.shape[0] // lr.shape[0], hr.shape[1] // lr.shape[1]}
    return factors.pop() if len(factors) == 1 and 0 not in factors else None


def _fits(hr: np.ndarray, lr: np.ndarray, scale: int) -> bool:
    """Whether HR is ``scale`` x LR, or larger by less than ``scale`` pixels (mod-crop)."""
    return all(0 <= hr.shape[a] - scale * lr.shape[a] < scale for a in (0, 1))


def _size_text(path: str, image: np.ndarray) -> str:
    return f"{path} is {image.shape[1]}x{image.shape[0]}"


def paired_folder_pairs(spec: SetSpec) -> tuple[list[Pair], int]:
    """The pairs of a ``paired_folders`` set and its scale (the set's, or the sizes')."""
    pairs = []
    scale = spec.scale
    for key, hr_path, lr_path in _match(spec):
        hr, lr = _decode(spec, "hr", hr_path), _decode(spec, "lr", lr_path)
        scale = scale or _size_ratio(hr, lr)
        if scale is None or not _fits(hr, lr, scale):
            wanted = f"x{scale}" if scale else "an integer scale, the same for width and height"
            raise spec.error(
                "scale", f"{_size_text(hr_path, hr)} but {_size_text(lr_path, lr)}: not {wanted}"
            )
        hr = np.ascontiguousarray(hr[: scale * lr.shape[0], : scale * lr.shape[1]])
        meta = {"source_id": key, "hr_file": hr_path, "lr_file": lr_path}
        pairs.append(Pair(safe_id(key), lr, hr, meta))
    return pairs, scale


def lr_folder_pairs(spec: SetSpec) -> list[Pair]:
    """The LR-only pairs of an ``lr_folder`` set (``hr`` is ``None``)."""
    pairs = []
    for rel, location in sorted(_files(spec, "lr", spec.lr).items()):
        lr = _decode(spec, "lr", location)
        pairs.append(Pair(safe_id(_key(rel)), lr, None, {"source_id": rel, "lr_file": location}))
    return pairs

"""Test-set files: read and validate a YAML set file into a :class:`SetSpec`.

A set file (``benchmarks/sets/<name>.yaml``; its name is the file stem) has a
``kind`` and the fields of that kind (relative paths are relative to the file):

* ``synthetic`` (the default): HR crops of ``source`` degraded by ``recipe``.
  Fields: ``source`` (``embedded-heldout`` or any ``degkit build --source``
  value), ``recipe`` (name or path), ``seed``, ``crop`` (side in HR pixels, or
  null for whole images mod-cropped to the scale), ``crops_per_image``
  (default 1), ``crop_mode`` (``grid``, default, or ``random``), ``scale``
  (default: the recipe's) and optionally ``levels``: a list of ``light`` /
  ``medium`` / ``heavy``, for recipes with a ``level`` choice (the ``single_*``
  recipes): every crop is then degraded once at each listed level.
* ``paired_folders``: ``hr`` and ``lr`` folders of images matched by file name
  (``0801.png`` with ``0801.png``, ``0801x4.png`` or ``0801_LR4.png``);
  ``scale`` optional (inferred from the sizes and checked).
* ``lr_folder``: ``lr``, a folder of LR photos with no reference, and ``scale``.

Every kind takes ``description``. Errors are :class:`SetError` (a ``ValueError``):
``<file>: <field>: <what is wrong>``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KINDS", "LEVELS", "SetError", "SetSpec", "read_spec"]

KINDS = ("synthetic", "paired_folders", "lr_folder")
LEVELS = ("light", "medium", "heavy")
CROP_MODES = ("grid", "random")
_COMMON = ("description", "kind", "scale")
_FIELDS = {
    "synthetic": (
        *_COMMON,
        "source",
        "recipe",
        "seed",
        "crop",
        "crops_per_image",
        "crop_mode",
        "levels",
    ),
    "paired_folders": (*_COMMON, "hr", "lr"),
    "lr_folder": (*_COMMON, "lr"),
}
_REQUIRED = {
    "synthetic": ("source", "recipe", "seed", "crop"),
    "paired_folders": ("hr", "lr"),
    "lr_folder": ("lr", "scale"),
}


class SetError(ValueError):
    """An invalid set file: ``<file>: <field>: <what is wrong>``."""


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """A validated set file. Paths are resolved against the file's folder."""

    name: str
    path: Path
    kind: str
    description: str
    scale: int | None
    source: str | None = None
    recipe: str | None = None
    seed: int = 0
    crop: int | None = None
    crops_per_image: int = 1
    crop_mode: str = "grid"
    levels: tuple[str, ...] = ()
    hr: Path | None = None
    lr: Path | None = None
    content: dict[str, Any] = dataclasses.field(default_factory=dict)

    def error(self, field: str, problem: str) -> SetError:
        """A :class:`SetError` about ``field`` of this file."""
        return SetError(f"{self.path}: {field}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(path: Path, data: dict, field: str, default: Any = None) -> Any:
    value = data.get(field, default)
    if value is not None and (not _is_int(value) or value < 1):
        raise SetError(f"{path}: {field}: must be a positive integer, got {value!r}")
    return value


def _text(path: Path, data: dict, field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise SetError(f"{path}: {field}: must be text, got {value!r}")
    return value


def _relative(path: Path, value: str) -> str:
    """A path written in the set file, resolved against the file's folder."""
    return str(Path(value) if Path(value).is_absolute() else path.parent / value)


def _name(path: Path, data: dict, field: str) -> str:
    value = data[field]
    if not isinstance(value, str) or not value:
        raise SetError(f"{path}: {field}: must be a name or a path, got {value!r}")
    return value


def _source(path: Path, data: dict) -> str:
    value = _name(path, data, "source")
    return value if value in ("embedded", "embedded-heldout") else _relative(path, value)


def _recipe(path: Path, data: dict) -> str:
    value = _name(path, data, "recipe")
    is_name = "/" not in value and "\\" not in value and not value.endswith((".yaml", ".yml"))
    return value if is_name else _relative(path, value)


def _folder(path: Path, data: dict, field: str) -> Path:
    folder = Path(_relative(path, _name(path, data, field)))
    if not folder.is_dir():
        raise SetError(f"{path}: {field}: folder {str(folder)!r} does not exist")
    return folder


def read_spec(path: Path) -> SetSpec:
    """Read and check a set file (field names, types, required fields, folders)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise SetError(f"{path}: {where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise SetError(f"{path}: the top level must be a mapping of set fields")
    kind = data.get("kind", "synthetic")
    if kind not in KINDS:
        raise SetError(f"{path}: kind: must be one of {list(KINDS)}, got {kind!r}")
    unknown = [k for k in data if k not in _FIELDS[kind]]
    if unknown:
        raise SetError(
            f"{path}: {unknown[0]}: unknown field for kind {kind!r}; allowed: {list(_FIELDS[kind])}"
        )
    missing = [k for k in _REQUIRED[kind] if k not in data]
    if missing:
        raise SetError(f"{path}: {missing[0]}: required for kind {kind!r}")
    common = {
        "name": path.stem,
        "path": path,
        "kind": kind,
        "description": " ".join((_text(path, data, "description") or "").split()),
        "scale": _positive_int(path, data, "scale"),
        "content": data,
    }
    if kind == "paired_folders":
        return SetSpec(**common, hr=_folder(path, data, "hr"), lr=_folder(path, data, "lr"))
    if kind == "lr_folder":
        return SetSpec(**common, lr=_folder(path, data, "lr"))
    return _synthetic(path, data, common)


def _synthetic(path: Path, data: dict, common: dict) -> SetSpec:
    seed = data["seed"]
    if not _is_int(seed) or seed < 0:
        raise SetError(f"{path}: seed: must be a non-negative integer, got {seed!r}")
    crop = _positive_int(path, data, "crop")
    per_image = _positive_int(path, data, "crops_per_image", 1)
    if crop is None and per_image != 1:
        raise SetError(f"{path}: crops_per_image: must be 1 when crop is null (whole images)")
    mode = data.get("crop_mode", "grid")
    if mode not in CROP_MODES:
        raise SetError(f"{path}: crop_mode: must be one of {list(CROP_MODES)}, got {mode!r}")
    levels = data.get("levels", [])
    if (
        not isinstance(levels, list)
        or any(level not in LEVELS for level in levels)
        or len(set(levels)) != len(levels)
    ):
        raise SetError(f"{path}: levels: must be a list of distinct {list(LEVELS)}, got {levels!r}")
    return SetSpec(
        **common,
        source=_source(path, data),
        recipe=_recipe(path, data),
        seed=seed,
        crop=crop,
        crops_per_image=per_image,
        crop_mode=mode,
        levels=tuple(levels),
    )

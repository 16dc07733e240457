"""Parquet shards: the row schema, atomic writes and reading a shard's own metadata.

A row holds the sample's identity (``id``, ``source_id``,
``index``, crop position), the HR and LR images as Hugging Face ``Image``
structs of PNG bytes, the recipe name and hash, the seed, every caption, the
records as JSON and the flat columns the ops declare (:func:`degkit.captions.flat_schema`;
a build keeps their specs in its settings).

The schema carries the ``huggingface`` features (so ``datasets`` restores
``Image`` and ``List`` types) and a ``degkit`` JSON entry with the shard's
planned sample count, the build fingerprint and the images skipped in it. A
shard is written to ``data/.<name>.tmp``, flushed to disk and renamed into
place, so a shard file either exists complete or not at all. Row groups hold
:data:`degkit.data.plan.ROW_GROUP_SIZE` rows; images are stored uncompressed
(PNG already is), other columns with zstd.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from degkit.data.plan import ROW_GROUP_SIZE

__all__ = [
    "BASE_COLUMNS",
    "column_specs",
    "IMAGE_COLUMNS",
    "row_features",
    "write_shard",
    "read_shard_meta",
    "read_shard_fingerprint",
    "temp_path",
    "image_cell",
]

#: Every row's own columns: name -> (dtype, one-line description for the card).
BASE_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("string", "unique row id: `<recipe>-s<seed>-<index>`"),
    "source_id": ("string", "stable id of the source image the HR crop was cut from"),
    "index": ("int64", "global sample index; names the sample's random streams"),
    "crop_top": ("int64", "top edge of the HR crop in the (upright) source image, pixels"),
    "crop_left": ("int64", "left edge of the HR crop in the source image, pixels"),
    "hr": ("image", "HR crop, PNG, 8-bit RGB"),
    "lr": ("image", "LR image (HR size / scale), PNG, 8-bit RGB"),
    "scale": ("int64", "super-resolution factor"),
    "recipe": ("string", "degradation recipe name"),
    "recipe_hash": ("string", "canonical hash of the recipe"),
    "seed": ("int64", "dataset seed"),
    "content_caption": ("string", "caption of the HR content (may be empty, see above)"),
    "degradation_caption": (
        "string",
        "numeric caption of the degradations, in the order they ran",
    ),
    "fine_captions": (
        "list<string>",
        "one caption per type (blur, gaussian noise, poisson noise, jpeg, ringing) printing "
        "its level (the *_level columns, `ringing`)",
    ),
    "severity_caption": ("string", "severity-word caption (light / medium / heavy)"),
    "records": ("string", "JSON list of the records of the ops that ran (replayable)"),
}
IMAGE_COLUMNS = ("hr", "lr")
_VALUE_TYPES = ("float64", "int64", "string", "bool")


def column_specs(flat_specs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every column of a row: the base columns, then the flat ones (``FlatColumn.spec`` form)."""
    clash = sorted(set(flat_specs) & set(BASE_COLUMNS))
    if clash:
        raise ValueError(f"flat columns {clash} clash with the base columns of a row")
    base = {name: {"dtype": dtype, "doc": doc} for name, (dtype, doc) in BASE_COLUMNS.items()}
    return {**base, **flat_specs}


def row_features(flat_specs: dict[str, dict[str, Any]]):
    """``datasets.Features`` of a row: the base columns, then the flat parameter columns."""
    from datasets import ClassLabel, Features, Image, List, Value

    features: dict[str, Any] = {}
    for name, spec in column_specs(flat_specs).items():
        kind = spec["dtype"]
        if kind == "image":
            features[name] = Image()
        elif kind == "list<string>":
            features[name] = List(Value("string"))
        elif kind == "class_label":
            features[name] = ClassLabel(names=list(spec["labels"]))
        elif kind in _VALUE_TYPES:
            features[name] = Value(kind)
        else:
            raise ValueError(f"column {name!r}: unknown type {kind!r}")
    return Features(features)


def image_cell(png: bytes) -> dict[str, Any]:
    """The value of an HF ``Image`` column holding PNG bytes."""
    return {"bytes": png, "path": None}


def temp_path(path: Path) -> Path:
    """Where a shard is written before it is renamed to ``path``."""
    return path.with_name(f".{path.name}.tmp")


def write_shard(path: Path, columns: dict[str, list], features, meta: dict[str, Any]) -> int:
    """Write rows atomically (temp file, fsync, rename); return the file size in bytes.

    On any failure (e.g. the disk is full) the temporary file is removed.
    """
    schema = features.arrow_schema
    metadata = dict(schema.metadata or {})
    metadata[b"degkit"] = json.dumps(meta, sort_keys=True).encode()
    schema = schema.with_metadata(metadata)
    table = pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)
    image_paths = [f"{c}.{leaf}" for c in IMAGE_COLUMNS for leaf in ("bytes", "path")]
    other_paths = [n for n in _leaf_paths(schema) if n not in image_paths]
    tmp = temp_path(path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        with pq.ParquetWriter(
            tmp,
            schema,
            compression={
                **dict.fromkeys(other_paths, "zstd"),
                **dict.fromkeys(image_paths, "none"),
            },
            use_dictionary=other_paths,
            write_statistics=other_paths,
        ) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path.stat().st_size


def _leaf_paths(schema: pa.Schema) -> list[str]:
    paths = []
    for field in schema:
        if pa.types.is_struct(field.type):
            paths += [f"{field.name}.{child.name}" for child in field.type]
        elif pa.types.is_list(field.type):
            paths.append(f"{field.name}.list.{field.type.value_field.name}")
        else:
            paths.append(field.name)
    return paths


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stored_meta(path: Path) -> dict[str, Any] | None:
    """The ``degkit`` metadata of a readable parquet file (with ``num_rows``), else None."""
    try:
        pf = pq.ParquetFile(path)
        raw = (pf.schema_arrow.metadata or {}).get(b"degkit")
        if raw is None:
            return None
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            return None
        meta["num_rows"] = pf.metadata.num_rows
    except (OSError, ValueError, pa.ArrowException):
        return None
    return meta


def read_shard_meta(path: Path) -> dict[str, Any] | None:
    """The ``degkit`` metadata of a complete, readable shard (with ``num_rows``), else None."""
    meta = _stored_meta(path)
    if meta is None or meta.get("rows") != meta["num_rows"]:
        return None
    return meta


def read_shard_fingerprint(path: Path) -> str | None:
    """The build fingerprint a readable parquet file carries (complete or not), else None."""
    meta = _stored_meta(path)
    return None if meta is None else meta.get("fingerprint")

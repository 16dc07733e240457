"""Captions and flat columns derived from a sample's records (and only from them).

**Numeric caption** (the DePLSR paper's format). Every captioned record gives
one *fragment*, in record order, joined with ``","`` (no space). The paper's
five types use its exact templates:

=============== =============================================== ======================
type            fragment                                        from the record
=============== =============================================== ======================
blur            ``blur with sigma:{s:.1f}``                     ``blur`` (not sinc):
                                                                s = sqrt(sigma_x sigma_y)
gaussian noise  ``gaussian noise with sigma:{s:.1f}``           ``gaussian_noise.sigma``
                                                                (0-255 scale)
poisson noise   ``poisson noise with scale:{s:.1f}``            ``poisson_noise.scale``
jpeg            ``jpeg with quality factor:{q:.1f}``            ``jpeg.quality``
ringing         ``ringing and overshoot artifacts``             ``ringing``, or ``blur``
                                                                with a sinc kernel
=============== =============================================== ======================

For an anisotropic kernel ``s`` is the geometric mean of its two standard
deviations (the isotropic Gaussian with the same covariance determinant).
degkit's other types use templates of the same shape (see :func:`caption_types`):
motion blur, defocus blur, speckle noise, salt and pepper noise, haze,
rain, snow, low light.
Resizes, sharpening, quantisation and colour shifts give no fragment. A
sample with no fragment gets :data:`CLEAN_CAPTION`.

Multi-stage pipelines (two blurs, two JPEGs) give one fragment per op, in the
order the ops ran, which the paper's format allows; the parser reads them back
in that order.

**Fine captions**: one per paper type, in the order blur, gaussian noise,
poisson noise, jpeg, ringing, each printing the type's *level*
(:func:`degkit.levels.type_levels`: one number per type however many ops of
it ran, e.g. two blurs give one ``blur with sigma:{s}`` with ``s`` their
effective sigma at LR scale) with the type's template. A nonzero level that
would print as 0 gets the decimals its first significant digit needs
(``poisson noise with scale:0.03``). An absent type (level None) has its
*none* caption: ``blur with sigma:0.0``, ``gaussian noise with sigma:0.0``,
``poisson noise with scale:0.0``, ``jpeg with quality factor:100.0``
(degkit's choice: the paper's pipeline always compressed; a JPEG at quality
100, which no shipped recipe draws, reads the same) and ``no ringing and
overshoot artifacts``. A blur that ran before a downscale needs the HR
size (``hr_size``) unless the records fix the sizes (see :mod:`degkit.levels`).

**Severity caption**: for each type present, in order of first appearance,
``"<light|medium|heavy> <phrase>"`` for its most severe occurrence, joined
with ``", "`` (``"clean"`` when none). Each op declares its types' bins on the
value it applied, wherever it sits in the pipeline (``caption_types`` of the op
classes in :mod:`degkit.ops`; ``degkit ops`` prints them).

**Parser**: :func:`parse_caption` turns a numeric caption back into records,
exact within the printed precision: blur -> ``{"op": "blur", "kernel":
"iso", "sigma_x": s, "sigma_y": s}``, ringing -> ``{"op": "ringing"}``, the
others -> the op with the printed fields. Fields a caption does not print
(kernel sizes, noise seeds, ...) are not recovered.

**Flat columns** (:func:`flat_schema`, :func:`flat_columns`): fixed typed
columns for filtering datasets without parsing text. First the *level
columns* (``blur_level``, ``gaussian_noise_level``, ``poisson_noise_level``,
``jpeg_level``; ringing's is the ``ringing`` flag), which hold the levels
the fine captions print (null when absent); then the columns the ops declare
(``flat_columns`` of the op classes, each with a one-line description). Each
op column describes the *last* record that fills it (the op closest to the
output); ``*_count`` columns count them. An absent type has null value
columns, a count of 0 and False flags; ``class_label`` columns hold the code
of their label (``datasets.ClassLabel``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from degkit.levels import LEVEL_COLUMNS, PAPER_TYPES, level_columns, type_levels
from degkit.ops import Op, OpError, op_class, registered_ops
from degkit.ops.labels import CaptionType, FlatColumn, Record

__all__ = [
    "CaptionType",
    "FlatColumn",
    "caption_types",
    "PAPER_TYPES",
    "CLEAN_CAPTION",
    "SEVERITY_WORDS",
    "flat_schema",
    "captions_for",
    "degradation_caption",
    "fine_captions",
    "severity_caption",
    "parse_caption",
    "caption_type",
    "flat_columns",
]

CLEAN_CAPTION = "no degradation"
SEVERITY_WORDS = ("light", "medium", "heavy")
SEPARATOR = ","


def _registry_key() -> tuple[tuple[str, type[Op]], ...]:
    """Changes whenever an op is registered (or removed), so derived tables can be cached."""
    return tuple(registered_ops().items())


def caption_types() -> dict[str, CaptionType]:
    """Every captioned type the registered ops declare, by name (paper types first)."""
    return dict(_caption_types(_registry_key()))


@functools.lru_cache(maxsize=4)
def _caption_types(ops: tuple[tuple[str, type[Op]], ...]) -> dict[str, CaptionType]:
    found: dict[str, CaptionType] = {}
    for _, cls in ops:
        for kind in cls.caption_types:
            if found.setdefault(kind.name, kind) != kind:
                raise TypeError(f"caption type {kind.name!r} is declared differently by two ops")
    return {**{name: found[name] for name in PAPER_TYPES}, **found}


def caption_type(record: Record) -> CaptionType | None:
    """The captioned type of a record, or None for ops without a caption (or unknown ops)."""
    try:
        cls = op_class(record.get("op"))
    except OpError:
        return None
    return cls.caption_type(record)


def _typed(records: Sequence[Record]) -> list[tuple[CaptionType, Record]]:
    out = []
    for rec in records:
        kind = caption_type(rec)
        if kind is not None:
            out.append((kind, rec))
    return out


def degradation_caption(records: Sequence[Record]) -> str:
    """The numeric caption: one fragment per captioned record, joined with ``","``."""
    fragments = [kind.fragment(rec) for kind, rec in _typed(records)]
    return SEPARATOR.join(fragments) if fragments else CLEAN_CAPTION


def fine_captions(records: Sequence[Record], hr_size: tuple[int, int] | None = None) -> list[str]:
    """The five per-type captions (blur, gaussian noise, poisson noise, jpeg, ringing).

    Each prints its type's level (:func:`degkit.levels.type_levels`; ``hr_size``
    is the HR ``(H, W)``, needed for a blur that ran before a downscale).
    """
    types = caption_types()
    levels = type_levels(records, hr_size)
    return [types[name].level_fragment(levels[name]) for name in PAPER_TYPES]


def severity_caption(records: Sequence[Record]) -> str:
    """``"<level> <phrase>"`` per type present (most severe occurrence), or ``"clean"``."""
    worst: dict[str, int] = {}
    for kind, rec in _typed(records):
        worst[kind.name] = max(worst.get(kind.name, 0), kind.level(rec))
    if not worst:
        return "clean"
    types = caption_types()
    return ", ".join(f"{SEVERITY_WORDS[lvl]} {types[name].phrase}" for name, lvl in worst.items())


def captions_for(
    records: Sequence[Record], hr_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """``degradation_caption``, ``fine_captions`` (5 strings) and ``severity_caption``.

    ``hr_size``: the HR ``(H, W)``, see :func:`fine_captions`.
    """
    return {
        "degradation_caption": degradation_caption(records),
        "fine_captions": fine_captions(records, hr_size),
        "severity_caption": severity_caption(records),
    }


def parse_caption(text: str) -> list[Record]:
    """Records from a numeric caption (or a fine caption), in order.

    ``"no ringing and overshoot artifacts"`` and :data:`CLEAN_CAPTION` give no
    record. Raises ``ValueError`` naming a fragment that matches no template.
    """
    records: list[Record] = []
    types = caption_types()
    no_record = {types["ringing"].none, CLEAN_CAPTION}
    for raw in text.split(SEPARATOR):
        fragment = raw.strip()
        if fragment in no_record:
            continue
        for kind in types.values():
            match = kind.pattern.fullmatch(fragment)
            if match:
                records.append(kind.to_record({k: float(v) for k, v in match.groupdict().items()}))
                break
        else:
            known = "; ".join(k.template for k in types.values())
            raise ValueError(f"caption fragment {fragment!r} matches no template ({known})")
    return records


# -- flat columns --------------------------------------------------------------
def flat_schema() -> dict[str, FlatColumn]:
    """The level columns, then every flat column the registered ops declare, in op-name order.

    Raises:
        TypeError: two ops declare one column name with different dtype, doc or labels.
    """
    return dict(_flat_schema(_registry_key()))


@functools.lru_cache(maxsize=4)
def _flat_schema(ops: tuple[tuple[str, type[Op]], ...]) -> dict[str, FlatColumn]:
    out: dict[str, FlatColumn] = {column.name: column for column in level_columns()}
    for _, cls in ops:
        for column in cls.flat_columns:
            if out.setdefault(column.name, column) != column:
                raise TypeError(
                    f"flat column {column.name!r} of op {cls.name!r} differs from another op's "
                    "(dtype, doc, labels and count must agree)"
                )
    return out


def flat_columns(
    records: Sequence[Record], hr_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """One value per :func:`flat_schema` column, as stored (None where nothing filled it).

    ``hr_size``: the HR ``(H, W)``, see :func:`fine_captions`.
    """
    schema = flat_schema()
    row = {name: column.empty for name, column in schema.items()}
    ops = registered_ops()
    for rec in records:
        cls = ops.get(rec.get("op"))
        for column in cls.flat_columns if cls is not None else ():
            value = column.value(rec)
            if value is None:
                continue
            row[column.name] = row[column.name] + 1 if column.count else column.encode(value)
    levels = type_levels(records, hr_size)
    for name, column in LEVEL_COLUMNS.items():
        if schema[column].value is None:  # a level column (ringing's is the ops' flag)
            row[column] = levels[name]
    return row

"""Op knowledge in one place: every registered op declares its captions and dataset columns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from degkit.captions import (
    caption_types,
    captions_for,
    flat_columns,
    flat_schema,
    parse_caption,
    severity_caption,
)
from degkit.ops import Op, create_op, registered_ops
from degkit.ops.base import _REGISTRY, register
from degkit.ops.labels import FLAT_DTYPES, CaptionType, FlatColumn
from degkit.rng import BatchStreams


def test_every_registered_op_declares_captions_and_columns() -> None:
    for name, cls in registered_ops().items():
        assert isinstance(cls.caption_types, tuple), name
        assert all(isinstance(t, CaptionType) for t in cls.caption_types), name
        assert isinstance(cls.flat_columns, tuple) and cls.flat_columns, name
        for column in cls.flat_columns:
            assert isinstance(column, FlatColumn) and column.dtype in FLAT_DTYPES
            assert column.doc and "\n" not in column.doc


@pytest.mark.parametrize("name", sorted(registered_ops()))
def test_an_ops_own_records_fill_its_columns_and_captions(name: str) -> None:
    op = create_op(name)
    context = {"target_size": torch.tensor([[12, 12]] * 6)}
    records = op.describe(op.sample(BatchStreams(3, range(6), name), 6, context))
    for rec in records:
        row = flat_columns([rec])
        filled = [c for c in op.flat_columns if c.value(rec) is not None]
        assert filled, f"{name}: a record fills none of its columns"
        for column in filled:
            assert row[column.name] != column.empty or column.dtype == "bool", column.name
        kind = op.caption_type(rec)
        if kind is not None:  # the fragment parses back to a record of the same type
            assert kind in op.caption_types
            [parsed] = parse_caption(captions_for([rec])["degradation_caption"])
            assert registered_ops()[parsed["op"]].caption_type(parsed) is kind


def _bare_op(name: str, **declarations) -> type[Op]:
    return dataclasses.dataclass(type(f"Bare_{name}", (Op,), {"name": name, **declarations}))


@pytest.mark.parametrize("missing", ["caption_types", "flat_columns"])
def test_registering_an_op_without_its_declarations_fails(missing: str) -> None:
    declared = {"caption_types": (), "flat_columns": ()}
    del declared[missing]
    with pytest.raises(TypeError, match=missing):
        register(_bare_op("undeclared_op", **declared))
    assert "undeclared_op" not in registered_ops()


def test_two_ops_declaring_one_column_differently_are_refused() -> None:
    clash = FlatColumn("noise_level", "float64", "another meaning", lambda rec: 1.0)
    register(_bare_op("clashing_op", caption_types=(), flat_columns=(clash,)))
    try:
        with pytest.raises(TypeError, match="noise_level"):
            flat_schema()
    finally:
        del _REGISTRY["clashing_op"]


def test_a_registered_op_adds_its_column_and_fills_it() -> None:
    column = FlatColumn("fade_amount", "float64", "amount of the last fade", lambda r: r["amount"])
    register(_bare_op("fade_test_op", caption_types=(), flat_columns=(column,)))
    try:
        assert flat_schema()["fade_amount"] is column
        assert flat_columns([{"op": "fade_test_op", "amount": 0.25}])["fade_amount"] == 0.25
        assert flat_columns([])["fade_amount"] is None
    finally:
        del _REGISTRY["fade_test_op"]


def test_class_label_columns_use_their_declared_labels() -> None:
    schema = flat_schema()
    labelled = {name for name, c in schema.items() if c.dtype == "class_label"}
    assert labelled == {"blur_kernel", "noise_kind", "final_resize_mode"}
    row = flat_columns([{"op": "final_resize", "mode": "bicubic", "size": [8, 8]}])
    assert schema["final_resize_mode"].labels[row["final_resize_mode"]] == "bicubic"


# The severity bins degkit publishes (value -> light / medium / heavy), written out
# independently of the op modules: (record of value v, light below, heavy from,
# whether a lower value is heavier).
_BINS = {
    "blur": (lambda v: {"op": "blur", "kernel": "iso", "sigma_x": v, "sigma_y": v}, 1, 2, False),
    "motion blur": (lambda v: {"op": "motion_blur", "length": v, "angle": 0.0}, 7, 11, False),
    "defocus blur": (lambda v: {"op": "defocus_blur", "radius": v}, 2, 3, False),
    "gaussian noise": (lambda v: {"op": "gaussian_noise", "sigma": v}, 10, 20, False),
    "poisson noise": (lambda v: {"op": "poisson_noise", "scale": v}, 1, 2, False),
    "speckle noise": (lambda v: {"op": "speckle_noise", "sigma": v}, 0.08, 0.14, False),
    "salt and pepper noise": (
        lambda v: {"op": "salt_pepper_noise", "amount": v},
        0.01,
        0.03,
        False,
    ),
    "jpeg compression": (lambda v: {"op": "jpeg", "quality": v}, 70, 50, True),
    "ringing artifacts": (
        lambda v: {"op": "ringing", "cutoff": v},
        3 * math.pi / 4,
        math.pi / 2,
        True,
    ),
    "haze": (lambda v: {"op": "haze", "beta": v, "airlight": 0.8}, 1, 2, False),
    "rain": (lambda v: {"op": "rain", "density": v, "length": 10.0}, 0.004, 0.008, False),
    "snow": (lambda v: {"op": "snow", "density": v, "size": 2.0}, 0.002, 0.004, False),
    # mid-gray lands at brightness * 0.5 ** gamma; gamma 1 makes that brightness / 2
    "underexposure": (
        lambda v: {"op": "low_light", "gamma": 1.0, "brightness": 2 * v},
        0.2,
        0.1,
        True,
    ),
}


@pytest.mark.parametrize("phrase", sorted(_BINS))
def test_severity_bins_are_the_published_ones(phrase: str) -> None:
    make, first, second, lower_heavier = _BINS[phrase]
    eps = 1e-9 * max(first, second)
    if lower_heavier:
        cases = {first: "light", first - eps: "medium", second: "medium", second - eps: "heavy"}
    else:
        cases = {first - eps: "light", first: "medium", second - eps: "medium", second: "heavy"}
    for value, word in cases.items():
        assert severity_caption([make(value)]) == f"{word} {phrase}", value


def test_every_declared_caption_type_has_a_published_bin() -> None:
    assert {t.phrase for t in caption_types().values()} == set(_BINS)

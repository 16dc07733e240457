"""Captions from records: the paper's exact strings, fine captions, severity words, parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit import recipes
from degkit.captions import (
    CLEAN_CAPTION,
    captions_for,
    flat_columns,
    flat_schema,
    parse_caption,
    severity_caption,
)

BLUR = {
    "op": "blur",
    "kernel": "iso",
    "kernel_size": 13,
    "sigma_x": 1.84,
    "sigma_y": 1.84,
    "theta": 0.0,
    "beta": 1.0,
    "cutoff": 0.0,
}
GAUSS = {"op": "gaussian_noise", "sigma": 12.345, "gray": False, "seed": 1}
POISSON = {"op": "poisson_noise", "scale": 2.96, "gray": True, "seed": 2}
JPEG = {"op": "jpeg", "quality": 57, "mode": "codec", "subsampling": "4:2:0"}
RINGING = {"op": "ringing", "kernel_size": 11, "cutoff": 1.2}
RESIZE = {"op": "resize", "scale": 0.5, "mode": "area", "antialias": False}


# -- the paper's numeric caption ------------------------------------------------------
def test_numeric_caption_uses_the_papers_exact_strings_in_order() -> None:
    records = [BLUR, RESIZE, GAUSS, JPEG, RINGING]
    assert captions_for(records, hr_size=(64, 64))["degradation_caption"] == (
        "blur with sigma:1.8,gaussian noise with sigma:12.3,"
        "jpeg with quality factor:57.0,ringing and overshoot artifacts"
    )
    assert captions_for([POISSON])["degradation_caption"] == "poisson noise with scale:3.0"


def test_anisotropic_and_sinc_kernels() -> None:
    aniso = {**BLUR, "kernel": "aniso", "sigma_x": 1.0, "sigma_y": 4.0, "theta": 0.3}
    sinc = {**BLUR, "kernel": "sinc", "sigma_x": 0.0, "sigma_y": 0.0, "cutoff": 2.0}
    caption = captions_for([aniso, sinc])["degradation_caption"]
    assert caption == "blur with sigma:2.0,ringing and overshoot artifacts"  # sqrt(1 * 4) = 2


def test_multi_stage_records_give_one_fragment_per_op_and_one_fine_caption_per_type() -> None:
    second_blur = {**BLUR, "sigma_x": 0.75, "sigma_y": 0.75}
    records = [BLUR, JPEG, second_blur, {**JPEG, "quality": 90}, RINGING, RINGING]
    caps = captions_for(records)
    assert caps["degradation_caption"] == (
        "blur with sigma:1.8,jpeg with quality factor:57.0,blur with sigma:0.8,"
        "jpeg with quality factor:90.0,ringing and overshoot artifacts,"
        "ringing and overshoot artifacts"
    )
    assert caps["fine_captions"] == [  # the type levels (tests/test_type_levels.py)
        "blur with sigma:2.0",  # sqrt(1.84**2 + 0.75**2) = 1.987
        "gaussian noise with sigma:0.0",
        "poisson noise with scale:0.0",
        "jpeg with quality factor:90.0",
        "ringing and overshoot artifacts",
    ]
    assert parse_caption(caps["degradation_caption"]) == [
        {"op": "blur", "kernel": "iso", "sigma_x": 1.8, "sigma_y": 1.8},
        {"op": "jpeg", "quality": 57.0},
        {"op": "blur", "kernel": "iso", "sigma_x": 0.8, "sigma_y": 0.8},
        {"op": "jpeg", "quality": 90.0},
        {"op": "ringing"},
        {"op": "ringing"},
    ]


def test_fine_captions_are_five_with_none_captions_for_absent_types() -> None:
    assert captions_for([GAUSS])["fine_captions"] == [
        "blur with sigma:0.0",
        "gaussian noise with sigma:12.3",
        "poisson noise with scale:0.0",
        "jpeg with quality factor:100.0",
        "no ringing and overshoot artifacts",
    ]


def test_ops_without_a_caption_and_clean_samples() -> None:
    caps = captions_for([RESIZE, {"op": "quantize", "bits": 8}])
    assert caps["degradation_caption"] == CLEAN_CAPTION
    assert caps["severity_caption"] == "clean"
    assert parse_caption(CLEAN_CAPTION) == []
    assert parse_caption("no ringing and overshoot artifacts") == []


# -- severity words ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({**BLUR, "sigma_x": 0.99, "sigma_y": 0.99}, "light blur"),
        ({**BLUR, "sigma_x": 1.0, "sigma_y": 1.0}, "medium blur"),
        ({**BLUR, "sigma_x": 2.0, "sigma_y": 2.0}, "heavy blur"),
        ({**GAUSS, "sigma": 9.9}, "light gaussian noise"),
        ({**GAUSS, "sigma": 10.0}, "medium gaussian noise"),
        ({**GAUSS, "sigma": 25.0}, "heavy gaussian noise"),
        ({**POISSON, "scale": 0.5}, "light poisson noise"),
        ({**POISSON, "scale": 2.0}, "heavy poisson noise"),
        ({**JPEG, "quality": 70}, "light jpeg compression"),
        ({**JPEG, "quality": 69}, "medium jpeg compression"),
        ({**JPEG, "quality": 49}, "heavy jpeg compression"),
        ({**RINGING, "cutoff": 3 * math.pi / 4}, "light ringing artifacts"),
        ({**RINGING, "cutoff": math.pi / 2}, "medium ringing artifacts"),
        ({**RINGING, "cutoff": 1.5}, "heavy ringing artifacts"),
        (
            {"op": "motion_blur", "kernel_size": 15, "length": 12.0, "angle": 3.0},
            "heavy motion blur",
        ),
        ({"op": "haze", "beta": 0.5, "airlight": 0.9, "seed": 0}, "light haze"),
        (
            {"op": "low_light", "gamma": 2.0, "brightness": 0.6, "noise_sigma": 1, "seed": 0},
            "medium underexposure",
        ),
        (
            {"op": "snow", "density": 0.005, "size": 2, "angle": 90, "brightness": 1, "seed": 0},
            "heavy snow",
        ),
    ],
)
def test_severity_bins(record: dict, expected: str) -> None:
    assert severity_caption([record]) == expected


def test_severity_caption_takes_the_worst_occurrence_in_first_appearance_order() -> None:
    light_blur = {**BLUR, "sigma_x": 0.5, "sigma_y": 0.5}
    records = [JPEG, light_blur, {**JPEG, "quality": 40}, BLUR]
    assert severity_caption(records) == "heavy jpeg compression, medium blur"


# -- parser ------------------------------------------------------------------------------
def test_parser_names_an_unknown_fragment() -> None:
    with pytest.raises(ValueError, match="'fog with density:0.3' matches no template"):
        parse_caption("blur with sigma:1.0,fog with density:0.3")


def _expected_fields(record: dict) -> tuple[str, float | None] | None:
    """Independent reading of a record: the caption type and its printed number."""
    op = record["op"]
    if op == "blur" and record["kernel"] == "sinc" or op == "ringing":
        return ("ringing", None)
    if op == "blur":
        return ("blur", math.sqrt(record["sigma_x"] * record["sigma_y"]))
    return (op, record[_PARSED_VALUE[op]]) if op in _PARSED_VALUE else None


_PARSED_VALUE = {
    "blur": "sigma_x",
    "gaussian_noise": "sigma",
    "poisson_noise": "scale",
    "jpeg": "quality",
    "motion_blur": "length",
    "haze": "beta",
    "rain": "density",
    "snow": "density",
    "low_light": "gamma",
}
_PRECISION = {"haze": 0.005, "rain": 0.00005, "snow": 0.00005}


@pytest.mark.parametrize("name", recipes.available())
def test_records_caption_records_round_trip_for_every_shipped_recipe(name: str) -> None:
    recipe = recipes.load(name)
    plans = recipe.pipeline.plan(
        seed=2024, indices=range(400), hr_size=(64, 64), scale=recipe.scale
    )
    for records in plans:
        caption = captions_for(records, hr_size=(64, 64))["degradation_caption"]
        parsed = parse_caption(caption)
        expected = [e for e in map(_expected_fields, records) if e is not None]
        assert [p["op"] for p in parsed] == [kind for kind, _ in expected], caption
        for rec, (kind, value) in zip(parsed, expected, strict=True):
            if value is None:
                continue
            half_step = _PRECISION.get(kind, 0.05)
            assert abs(rec[_PARSED_VALUE[kind]] - value) <= half_step + 1e-9, (caption, value)
            if kind == "low_light":
                source = next(r for r in records if r["op"] == "low_light")
                assert abs(rec["brightness"] - source["brightness"]) <= 0.005 + 1e-9


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(0, 50).map(lambda s: {**BLUR, "sigma_x": s, "sigma_y": s}),
            st.floats(0, 255).map(lambda s: {**GAUSS, "sigma": s}),
            st.floats(0, 10).map(lambda s: {**POISSON, "scale": s}),
            st.floats(1, 100).map(lambda q: {**JPEG, "quality": q}),
            st.floats(0.1, math.pi).map(lambda c: {**RINGING, "cutoff": c}),
        ),
        max_size=8,
    )
)
def test_round_trip_of_arbitrary_paper_records(records: list[dict]) -> None:
    parsed = parse_caption(captions_for(records)["degradation_caption"])
    assert len(parsed) == len(records)
    for rec, got in zip(records, parsed, strict=True):
        kind, value = _expected_fields(rec)
        if value is not None:
            assert abs(got[_PARSED_VALUE[rec["op"]]] - value) <= 0.05 + 1e-9


# -- flat columns ---------------------------------------------------------------------------
_PY_TYPES = {"float64": float, "int64": int, "string": str, "bool": bool, "class_label": int}


@pytest.mark.parametrize("name", ["realesrgan", "bsrgan", "deplsr", "single_rain", "single_haze"])
def test_flat_columns_match_the_declared_schema(name: str) -> None:
    recipe = recipes.load(name)
    for records in recipe.pipeline.plan(0, range(100), (64, 64), recipe.scale):
        row = flat_columns(records, hr_size=(64, 64))
        schema = flat_schema()
        assert list(row) == list(schema)
        for column, value in row.items():
            if value is not None:
                assert type(value) is _PY_TYPES[schema[column].dtype], (column, value)
            if value is not None and schema[column].labels:
                assert 0 <= value < len(schema[column].labels)


def test_flat_columns_describe_the_last_op_of_each_type() -> None:
    row = flat_columns([BLUR, GAUSS, JPEG, {**JPEG, "quality": 88}, POISSON])
    assert row["blur_count"] == 1 and row["blur_sigma"] == pytest.approx(1.84)
    kinds = flat_schema()["noise_kind"].labels
    assert row["noise_count"] == 2 and kinds[row["noise_kind"]] == "poisson"
    assert row["noise_level"] == 2.96 and row["noise_gray"] is True
    assert row["jpeg_count"] == 2 and row["jpeg_quality"] == 88.0
    assert row["ringing"] is False and row["ringing_cutoff"] is None
    empty = flat_columns([])
    assert empty["blur_count"] == 0 and empty["blur_sigma"] is None and empty["usm"] is False

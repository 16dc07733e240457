"""Per-type levels from records: the rules on hand-made records, and the fine captions,
level columns and estimation targets agreeing on recipe samples."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit import recipes
from degkit.captions import captions_for, fine_captions, flat_columns, flat_schema, parse_caption
from degkit.levels import LEVEL_COLUMNS, PAPER_TYPES, noise_attenuations, type_levels
from degkit.models.estimator import levels_from_flat, levels_from_records
from degkit.ops import create_op, op_class


def blur(sx: float, sy: float | None = None, kernel: str = "iso") -> dict:
    sy = sx if sy is None else sy
    return {"op": "blur", "kernel": kernel, "kernel_size": 7, "sigma_x": sx, "sigma_y": sy,
            "theta": 0.3, "beta": 1.0, "cutoff": 0.0}  # fmt: skip


def final_resize(h: int, w: int) -> dict:
    return {"op": "final_resize", "size": [h, w], "mode": "bicubic", "antialias": False}


def gauss(sigma: float) -> dict:
    return {"op": "gaussian_noise", "sigma": sigma, "gray": False, "seed": 1}


def poisson(scale: float) -> dict:
    return {"op": "poisson_noise", "scale": scale, "gray": False, "seed": 2}


def jpeg(quality: float) -> dict:
    return {"op": "jpeg", "quality": quality, "mode": "codec", "subsampling": "4:2:0"}


SINC = {**blur(0.0), "kernel": "sinc", "cutoff": 2.0}
NONE = [
    "blur with sigma:0.0",
    "gaussian noise with sigma:0.0",
    "poisson noise with scale:0.0",
    "jpeg with quality factor:100.0",
    "no ringing and overshoot artifacts",
]


# -- the rules on hand-made records ------------------------------------------------------------
def test_two_blurs_in_two_stages_with_a_x4_resize_between() -> None:
    # DePLSR's order: HR 64 x 64 blurred by 2.0, resized to 16 x 16, blurred again by 0.3.
    records = [blur(2.0), final_resize(16, 16), blur(0.3)]
    expected = math.sqrt((2.0 / 4) ** 2 + 0.3**2)  # 0.583
    assert type_levels(records, (64, 64))["blur"] == pytest.approx(expected)
    assert fine_captions(records, (64, 64))[0] == "blur with sigma:0.6"
    assert captions_for(records, (64, 64))["degradation_caption"] == (
        "blur with sigma:2.0,blur with sigma:0.3"  # the numeric caption: one fragment per op
    )
    row = flat_columns(records, (64, 64))
    assert row["blur_level"] == pytest.approx(expected) and row["blur_sigma"] == 0.3
    with pytest.raises(ValueError, match="pass hr_size"):  # 2.0 ran at a size the records lack
        type_levels(records)
    assert type_levels(records[1:])["blur"] == pytest.approx(0.3)  # all at LR: no size needed


def test_real_esrgan_order_blurs_at_hr_then_resizes() -> None:
    resize = {"op": "resize", "scale": 0.5, "mode": "area", "antialias": False}
    to_target = {**resize, "scale": 1.2, "ref_size": [16, 16]}  # floor(16 * 1.2) = 19
    records = [blur(2.0), resize, blur(1.0), to_target, final_resize(16, 16)]
    # the first blur ran at 64 (x4 above the LR), the second at 32 (x2)
    assert type_levels(records, (64, 64))["blur"] == pytest.approx(math.sqrt(0.5**2 + 0.5**2))


def test_anisotropic_blur_uses_the_geometric_mean_and_both_axis_factors() -> None:
    aniso = blur(1.0, 4.0, kernel="aniso")  # sqrt(1 * 4) = 2
    assert type_levels([aniso])["blur"] == pytest.approx(2.0)
    # HR 64 x 32 to 16 x 16: 4x down in height, 2x in width; the determinant's root scales by 8
    levels = type_levels([aniso, final_resize(16, 16)], (64, 32))
    assert levels["blur"] == pytest.approx(2.0 / math.sqrt(8))


def test_a_sinc_blur_is_ringing_not_blur() -> None:
    levels = type_levels([SINC])
    assert levels["blur"] is None and levels["ringing"] == 1.0
    assert fine_captions([SINC]) == [*NONE[:4], "ringing and overshoot artifacts"]
    row = flat_columns([SINC])
    assert row["blur_level"] is None and row["ringing"] is True and row["blur_count"] == 0


def test_noises_of_one_type_add_in_quadrature() -> None:
    records = [gauss(3.0), poisson(0.5), gauss(4.0)]
    levels = type_levels(records)
    assert levels["gaussian noise"] == pytest.approx(5.0)
    assert levels["poisson noise"] == pytest.approx(0.5)
    assert fine_captions(records)[1:3] == [
        "gaussian noise with sigma:5.0",
        "poisson noise with scale:0.5",
    ]
    row = flat_columns(records)
    assert row["gaussian_noise_level"] == pytest.approx(5.0) and row["noise_level"] == 4.0


def _gaussian_norm(sigma: float) -> float:
    """``||g||_2`` of a continuous unit-mass isotropic 2-D Gaussian of ``sigma``."""
    return 1 / (2 * math.sqrt(math.pi) * sigma)


def test_a_later_blur_weakens_a_noise_by_its_kernel_norm() -> None:
    wide = {**blur(2.0), "kernel_size": 15, "theta": 0.0}  # the sampled kernel ~ the continuous one
    assert type_levels([gauss(20.0), wide])["gaussian noise"] == pytest.approx(
        20.0 * _gaussian_norm(2.0), rel=2e-3
    )
    # two later blurs compose (variances add), they do not multiply their norms
    levels = type_levels([poisson(2.0), wide, gauss(3.0), wide])
    assert levels["poisson noise"] == pytest.approx(2.0 * _gaussian_norm(math.sqrt(8)), rel=2e-3)
    assert levels["gaussian noise"] == pytest.approx(3.0 * _gaussian_norm(2.0), rel=2e-3)
    assert levels["blur"] == pytest.approx(math.sqrt(8))
    # a noise after the filters, and a blur of sigma 0 (a 1-tap kernel), keep their strength
    assert type_levels([wide, gauss(5.0), {**blur(0.0), "kernel_size": 1}])[
        "gaussian noise"
    ] == pytest.approx(5.0)
    sinc_norm = float(torch.linalg.vector_norm(op_class("blur").linear_kernel(SINC).double()))
    assert noise_attenuations([gauss(1.0), jpeg(50), SINC]) == pytest.approx(
        [sinc_norm, None, None]  # per noise record: the filters after it
    )
    with pytest.raises(ValueError, match="no field 'kernel_size'"):
        type_levels([gauss(1.0), {"op": "blur", "kernel": "iso", "sigma_x": 1, "sigma_y": 1}])


_FILTERS = {
    "gaussian": [{**blur(1.5), "kernel_size": 11}],
    "aniso plateau": [{**blur(0.8, 2.0, "plateau_aniso"), "kernel_size": 13, "beta": 1.5}],
    "sinc": [{**SINC, "kernel_size": 11, "cutoff": 1.2}],
    "motion": [{"op": "motion_blur", "kernel_size": 9, "length": 7.5, "angle": 30.0}],
    "defocus": [{"op": "defocus_blur", "kernel_size": 7, "radius": 2.5}],
    "blur then ringing": [
        {**blur(1.0), "kernel_size": 7},
        {"op": "ringing", "kernel_size": 9, "cutoff": 1.5},
    ],
}


@pytest.mark.parametrize("name", list(_FILTERS))
def test_noise_level_is_the_std_the_real_ops_leave(name: str) -> None:
    records = [gauss(20.0), *_FILTERS[name]]
    x = torch.full((1, 3, 256, 256), 0.5)
    for rec in records:
        x = create_op(rec["op"]).replay(x, [rec])
    measured = float(x[..., 16:-16, 16:-16].std()) * 255  # away from the reflected borders
    assert type_levels(records)["gaussian noise"] == pytest.approx(measured, rel=0.05)


def test_the_last_jpeg_gives_the_level() -> None:
    records = [jpeg(57), gauss(2.0), jpeg(90)]
    assert type_levels(records)["jpeg"] == 90.0
    assert fine_captions(records)[3] == "jpeg with quality factor:90.0"
    assert flat_columns(records)["jpeg_level"] == 90.0


def test_an_absent_type_and_a_tiny_one_read_differently() -> None:
    assert fine_captions([]) == NONE
    tiny = fine_captions([poisson(0.027), gauss(0.004), blur(0.03)])
    assert tiny[:3] == [
        "blur with sigma:0.03",
        "gaussian noise with sigma:0.004",
        "poisson noise with scale:0.03",
    ]
    assert [rec["scale"] for rec in parse_caption(tiny[2])] == [0.03]
    # only a level that would print as 0 gets more decimals
    assert fine_captions([poisson(0.076)])[2] == "poisson noise with scale:0.1"
    levels, present = levels_from_flat(flat_columns([poisson(0.027)]))
    assert levels == [0, 0, 0.027, 0, 0] and present == [False, False, True, False, False]
    assert levels_from_flat(flat_columns([])) == ([0.0] * 5, [False] * 5)


def test_an_op_at_zero_strength_is_absent() -> None:
    records = [blur(0.0), gauss(0.0), poisson(0.0)]
    assert type_levels(records) == dict.fromkeys(PAPER_TYPES)
    assert fine_captions(records) == NONE
    row = flat_columns(records)
    assert row["blur_level"] is None and row["blur_count"] == 1  # the op ran, changing nothing


def test_level_columns_are_declared_with_docs() -> None:
    schema = flat_schema()
    assert list(schema)[:4] == [c for c in LEVEL_COLUMNS.values() if c != "ringing"]
    for column in LEVEL_COLUMNS.values():
        assert schema[column].doc


# -- the resize ops' size rule matches what they compute ----------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    scale=st.floats(0.05, 2.0),
    factor=st.integers(1, 5),
    target=st.booleans(),
)
def test_output_size_is_the_size_the_resize_ops_make(
    h: int, w: int, scale: float, factor: int, target: bool
) -> None:
    x = torch.rand(1, 3, h, w)
    resize = {"op": "resize", "scale": scale, "mode": "bilinear", "antialias": False}
    if target:
        resize["ref_size"] = [max(1, h // 3), max(1, w // 2)]
    subsample = {"op": "shifted_subsample", "kernel_size": 3, "sigma": 0.5,
                 "shift": (factor - 1) / 2, "factor": factor}  # fmt: skip
    for rec in (resize, subsample, final_resize(max(1, h // 2), w + 1)):
        op = create_op(rec["op"])
        out = op.apply(x, op.params_from_records([rec]))
        assert op_class(rec["op"]).output_size(rec, (h, w)) == tuple(out.shape[-2:])


# -- recipe samples: captions, columns and targets agree ---------------------------------------
def _sizes_by_running(records: list[dict], hr_size: tuple[int, int]) -> list[tuple[int, int]]:
    """The image size entering each record, from actually running the resize-family ops."""
    x, sizes = torch.zeros(1, 3, *hr_size), []
    for rec in records:
        sizes.append(tuple(x.shape[-2:]))
        op = create_op(rec["op"])
        if op.family == "resize":
            params = {k: v for k, v in rec.items() if k != "path"}
            x = op.apply(x, op.params_from_records([params]))
    return [*sizes, tuple(x.shape[-2:])]


def _expected_blur(records: list[dict], hr_size: tuple[int, int]) -> float | None:
    """Blur level by hand: each non-sinc sigma over its own downscale, in quadrature."""
    sizes = _sizes_by_running(records, hr_size)
    (oh, ow), total = sizes[-1], 0.0
    for rec, (h, w) in zip(records, sizes, strict=False):
        if rec["op"] == "blur" and rec["kernel"] != "sinc":
            sigma = math.sqrt(rec["sigma_x"] * rec["sigma_y"])
            total += sigma**2 / (h / oh * w / ow)
    return math.sqrt(total) if total > 0 else None


def _printed_half_step(fragment: str) -> float:
    number = fragment.rsplit(":", 1)[-1]
    return 0.5 * 10.0 ** -len(number.split(".")[1]) + 1e-9


@pytest.mark.parametrize("name", ["deplsr", "realesrgan"])
def test_fine_captions_columns_and_targets_agree_on_recipe_samples(name: str) -> None:
    recipe = recipes.load(name)
    hr_size = (64, 48)
    fields = {"blur": "sigma_x", "gaussian noise": "sigma", "poisson noise": "scale",
              "jpeg": "quality"}  # fmt: skip
    for records in recipe.pipeline.plan(7, range(150), hr_size, recipe.scale):
        row = flat_columns(records, hr_size)
        captions = fine_captions(records, hr_size)
        assert levels_from_flat(row) == levels_from_records(records, hr_size)
        blur_level = row["blur_level"]
        expected = _expected_blur(records, hr_size)
        assert (blur_level is None) == (expected is None)
        assert blur_level is None or blur_level == pytest.approx(expected)
        for kind, caption in zip(PAPER_TYPES, captions, strict=True):
            value = row[LEVEL_COLUMNS[kind]]
            parsed = parse_caption(caption)
            if kind == "ringing":
                assert bool(parsed) == value
            elif value is None:
                assert caption == NONE[PAPER_TYPES.index(kind)]
            else:
                assert abs(parsed[0][fields[kind]] - value) <= _printed_half_step(caption)
                assert parsed[0][fields[kind]] > 0

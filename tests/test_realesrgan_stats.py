"""Statistics of the realesrgan recipe over 4,000 samples against BasicSR's defaults.

The defaults are listed in docs/peers.md.

The records come from a dry run (``Pipeline.plan``): the same draws a real run
makes, without the image work. Every frequency is checked against its
configured probability within 4.5 binomial standard deviations, and every
sampled value against its range. A short real run on tiny images checks the
ending (LR size, 8-bit rounding).
"""

from __future__ import annotations

import collections
import math

import pytest
import torch
from scipy import stats

from degkit import recipes

N = 4000
HR = 256
SCALE = 4
TARGET = HR // SCALE
KERNELS = {
    "iso": 0.45,
    "aniso": 0.25,
    "generalized_iso": 0.12,
    "generalized_aniso": 0.03,
    "plateau_iso": 0.12,
    "plateau_aniso": 0.03,
}
SIZES = set(range(7, 22, 2))


@pytest.fixture(scope="module")
def records() -> list[list[dict]]:
    recipe = recipes.load("realesrgan")
    return recipe.pipeline.plan(seed=12345, indices=range(N), hr_size=(HR, HR), scale=SCALE)


def _at(records: list[list[dict]], path: str) -> list[dict]:
    return [r for recs in records for r in recs if r["path"] == path]


def _check_rate(count: int, trials: int, p: float, what: str) -> None:
    sd = math.sqrt(trials * p * (1 - p))
    assert abs(count - trials * p) <= 4.5 * sd + 1e-9, (
        f"{what}: {count} of {trials}, expected {trials * p:.0f} +- {4.5 * sd:.0f}"
    )


def _check_in(values: list[float], lo: float, hi: float, what: str) -> None:
    assert values, f"{what}: no values"
    assert lo - 1e-12 <= min(values) and max(values) <= hi + 1e-12, (
        f"{what}: [{min(values)}, {max(values)}] outside [{lo}, {hi}]"
    )


def _check_uniform(values: list[float], lo: float, hi: float, what: str) -> None:
    _check_in(values, lo, hi, what)
    p = stats.kstest(values, stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue
    assert p > 1e-4, f"{what}: not uniform on [{lo}, {hi}] (KS p = {p:.2g})"


# -- structure ------------------------------------------------------------------------
def test_every_sample_has_the_second_order_structure(records: list[list[dict]]) -> None:
    for recs in records:
        ops = [r["op"] for r in recs]
        assert ops[0] == "usm" and ops[-1] == "quantize"
        assert ops.count("final_resize") == 1 and ops.count("jpeg") == 2
        assert sum(op in ("gaussian_noise", "poisson_noise") for op in ops) == 2
        assert recs[1]["path"] == "stage1/blur"  # stage 1 always blurs


def test_usm_and_rounding_use_the_fixed_defaults(records: list[list[dict]]) -> None:
    for rec in _at(records, "usm"):
        assert (rec["weight"], rec["threshold"], rec["radius"]) == (0.5, 10.0, 50)
    assert {rec["bits"] for rec in _at(records, "quantize")} == {8}


# -- blur ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "sigma_hi"), [("stage1/blur", 3.0), ("stage2/blur", 1.5)])
def test_blur_kernel_types_and_ranges(
    records: list[list[dict]], path: str, sigma_hi: float
) -> None:
    blurs = _at(records, path)
    kinds = collections.Counter(r["kernel"] for r in blurs)
    _check_rate(kinds["sinc"], len(blurs), 0.1, f"{path} sinc")
    for kind, p in KERNELS.items():
        _check_rate(kinds[kind], len(blurs), 0.9 * p, f"{path} {kind}")
    assert {r["kernel_size"] for r in blurs} == SIZES
    for r in blurs:
        if r["kernel"] == "sinc":
            lo = math.pi / 3 if r["kernel_size"] < 13 else math.pi / 5
            _check_in([r["cutoff"]], lo, math.pi, f"{path} sinc cutoff")
            continue
        _check_in([r["sigma_x"], r["sigma_y"]], 0.2, sigma_hi, f"{path} sigma")
        _check_in([r["theta"]], -math.pi, math.pi, f"{path} theta")
        if r["kernel"].endswith("iso") and not r["kernel"].endswith("aniso"):
            assert r["sigma_x"] == r["sigma_y"] and r["theta"] == 0.0
        beta_range = {"generalized": (0.5, 4.0), "plateau": (1.0, 2.0)}.get(
            r["kernel"].split("_")[0]
        )
        if beta_range:
            _check_in([r["beta"]], *beta_range, f"{path} beta")
    iso = [r["sigma_x"] for r in blurs if r["kernel"] == "iso"]
    _check_uniform(iso, 0.2, sigma_hi, f"{path} iso sigma")


def test_second_blur_runs_with_p_08(records: list[list[dict]]) -> None:
    _check_rate(len(_at(records, "stage2/blur")), N, 0.8, "stage2 blur")


# -- resize ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "probs", "scale_range"),
    [
        ("stage1/resize", {"up": 0.2, "down": 0.7, "keep": 0.1}, (0.15, 1.5)),
        ("stage2/resize", {"up": 0.3, "down": 0.4, "keep": 0.3}, (0.3, 1.2)),
    ],
)
def test_resize_directions_modes_and_scales(
    records: list[list[dict]], path: str, probs: dict, scale_range: tuple[float, float]
) -> None:
    resizes = _at(records, path)
    assert len(resizes) == N
    for r in resizes:  # the direction is the side of 1 the scale lies on
        r["direction"] = "up" if r["scale"] > 1 else "down" if r["scale"] < 1 else "keep"
    directions = collections.Counter(r["direction"] for r in resizes)
    for direction, p in probs.items():
        _check_rate(directions[direction], N, p, f"{path} {direction}")
    modes = collections.Counter(r["mode"] for r in resizes)
    assert set(modes) == {"area", "bilinear", "bicubic"}
    for mode in modes:
        _check_rate(modes[mode], N, 1 / 3, f"{path} mode {mode}")
    by_dir = {d: [r["scale"] for r in resizes if r["direction"] == d] for d in probs}
    _check_uniform(by_dir["up"], 1.0, scale_range[1], f"{path} up scale")
    _check_uniform(by_dir["down"], scale_range[0], 1.0, f"{path} down scale")
    assert set(by_dir["keep"]) == {1.0}
    if path == "stage2/resize":  # relative to H / scale
        assert all(r["ref_size"] == [TARGET, TARGET] for r in resizes)


def test_final_resize_modes_and_size(records: list[list[dict]]) -> None:
    finals = [r for recs in records for r in recs if r["op"] == "final_resize"]
    assert len(finals) == N and all(r["size"] == [TARGET, TARGET] for r in finals)
    modes = collections.Counter(r["mode"] for r in finals)
    assert set(modes) == {"area", "bilinear", "bicubic"}
    for mode in modes:
        _check_rate(modes[mode], N, 1 / 3, f"final resize mode {mode}")


# -- noise ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "sigma_hi", "scale_hi"), [("stage1", 30.0, 3.0), ("stage2", 25.0, 2.5)]
)
def test_noise_kinds_gray_flags_and_levels(
    records: list[list[dict]], stage: str, sigma_hi: float, scale_hi: float
) -> None:
    gauss = _at(records, f"{stage}/gaussian_noise")
    poisson = _at(records, f"{stage}/poisson_noise")
    assert len(gauss) + len(poisson) == N
    _check_rate(len(gauss), N, 0.5, f"{stage} gaussian")
    for name, recs in (("gaussian", gauss), ("poisson", poisson)):
        _check_rate(sum(r["gray"] for r in recs), len(recs), 0.4, f"{stage} {name} gray")
        assert len({r["seed"] for r in recs}) == len(recs), "noise fields must differ per sample"
    _check_uniform([r["sigma"] for r in gauss], 1.0, sigma_hi, f"{stage} gaussian sigma")
    _check_uniform([r["scale"] for r in poisson], 0.05, scale_hi, f"{stage} poisson scale")


# -- JPEG and the ending ----------------------------------------------------------------------
def test_jpeg_qualities_are_integers_in_30_95(records: list[list[dict]]) -> None:
    qualities = [r["quality"] for recs in records for r in recs if r["op"] == "jpeg"]
    assert len(qualities) == 2 * N
    assert all(q == int(q) for q in qualities)
    assert set(qualities) == set(range(30, 96))


def test_both_endings_with_p_05_and_final_sinc_with_p_08(records: list[list[dict]]) -> None:
    resize_first = [
        recs for recs in records if any(r["path"] == "resize_then_jpeg/final_resize" for r in recs)
    ]
    _check_rate(len(resize_first), N, 0.5, "ending [resize + sinc] then JPEG")
    for stage in ("resize_then_jpeg", "jpeg_then_resize"):
        chosen = [recs for recs in records if any(r["path"].startswith(stage) for r in recs)]
        sincs = [r for recs in chosen for r in recs if r["op"] == "ringing"]
        _check_rate(len(sincs), len(chosen), 0.8, f"{stage} final sinc")
        assert {r["kernel_size"] for r in sincs} == SIZES
        _check_uniform([r["cutoff"] for r in sincs], math.pi / 3, math.pi, f"{stage} cutoff")
        for recs in chosen:
            order = [r["op"] for r in recs if r["path"].startswith(stage)]
            expected = ["final_resize", "ringing", "jpeg"]
            if stage == "jpeg_then_resize":
                expected = ["jpeg", "final_resize", "ringing"]
            assert order == [op for op in expected if op in order]


def test_a_real_run_ends_at_lr_size_in_8_bits() -> None:
    recipe = recipes.load("realesrgan")
    hr = torch.nn.functional.avg_pool2d(torch.rand(16, 3, 16, 16), 3, 1, 1)
    result = recipe.pipeline(hr, seed=1, indices=range(16), scale=4)
    assert result.lr.shape == (16, 3, 4, 4)
    levels = result.lr.double() * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4, rtol=0)

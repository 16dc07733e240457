"""Records are the complete, minimal truth of every registered op.

* Complete: replaying a sample's records with the same op built from *another*
  configuration gives the same pixels, bit for bit (nothing ``apply`` reads
  comes from the configuration).
* Minimal: every recorded key changes the output for some value (nothing is
  recorded that ``apply`` ignores), and ``check_params`` knows every key.

``VARIANTS`` holds, per op, configurations that together change every field of
the op from its default; a new op or field fails ``test_variants_cover_every_field``
until it is listed here.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import math
import textwrap
from typing import Any

import pytest
import torch

from degkit import recipes
from degkit.ops import OpError, create_op, op_class, registered_ops
from degkit.ops.base import Images
from degkit.rng import BatchStreams

VARIANTS: dict[str, list[dict[str, Any]]] = {
    "blur": [
        {
            "kernel_types": ["generalized_aniso", "plateau_iso", "aniso"],
            "kernel_weights": [1.0, 1.0, 1.0],
            "sigma": [0.5, 2.0],
            "sigma_step": 0.25,
            "rotation": [0.2, 1.0],
            "beta_generalized": [0.6, 3.0],
            "beta_plateau": [1.2, 1.8],
            "kernel_size": [5, 11],
            "sinc_prob": 0.3,
        },
        {"sigma_distribution": "sqrt_uniform", "kernel_size": "auto", "sigma": [0.3, 1.5]},
    ],
    "color_shift": [{"saturation": [0.2, 0.4], "hue": [0.3, 0.5], "gain": [0.5, 0.7]}],
    "defocus_blur": [{"radius": [2.0, 3.0]}],
    "final_resize": [
        {"modes": ["bilinear", "nearest"], "mode_weights": [3.0, 1.0], "antialias": True}
    ],
    "gaussian_noise": [
        {"sigma": [5.0, 10.0], "gray_prob": 0.2, "correlated_prob": 0.5},
        {"sigma_step": 2.0, "correlated_prob": 0.3, "correlated_sigma": 40.0},
    ],
    "haze": [{"beta": [1.0, 3.0], "airlight": [0.3, 0.5]}],
    "jpeg": [
        {"quality": [10.0, 20.0], "subsampling": "4:4:4"},
        {"mode": "differentiable", "quality": [40.5, 60.5]},
    ],
    "low_light": [{"gamma": [2.0, 3.0], "brightness": [0.5, 0.6], "noise_sigma": [5.0, 10.0]}],
    "motion_blur": [{"length": [5.0, 9.0], "angle": [10.0, 40.0]}],
    "poisson_noise": [{"scale": [0.5, 1.0], "gray_prob": 0.7}],
    "quantize": [{"bits": 5}],
    "rain": [
        {
            "density": [0.02, 0.05],
            "length": [4.0, 6.0],
            "angle": [20.0, 40.0],
            "brightness": [0.5, 0.6],
        }
    ],
    "resize": [
        {
            "scale": [0.4, 1.3],
            "p_up": 0.4,
            "p_down": 0.5,
            "modes": ["bilinear", "bicubic", "nearest"],
            "mode_weights": [1.0, 1.0, 1.0],
            "antialias": True,
            "down_distribution": "reciprocal",
        },
        {"relative_to": "target"},
    ],
    "ringing": [{"kernel_size": [5, 9], "cutoff": [1.0, 2.0]}],
    "salt_pepper_noise": [{"amount": [0.1, 0.2], "salt_ratio": [0.1, 0.2]}],
    "shifted_subsample": [{"factor": 2, "sigma": [0.5, 1.0], "kernel_size": 9}],
    "snow": [
        {
            "density": [0.01, 0.02],
            "size": [2.0, 4.0],
            "angle": [10.0, 30.0],
            "brightness": [0.3, 0.5],
        }
    ],
    "speckle_noise": [{"sigma": [0.3, 0.5], "gray_prob": 0.8}],
    "usm": [{"weight": [0.8, 1.5], "threshold": [2.0, 5.0], "radius": [5, 9]}],
}

N, SIZE, TARGET = 6, 32, 8
OPS = sorted(registered_ops())


def _configs(name: str) -> list[dict[str, Any]]:
    return [{}, *VARIANTS[name]]


def _images() -> torch.Tensor:
    return torch.rand(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def _run(name: str, config: dict[str, Any], seed: int = 1) -> tuple[Images, list[dict]]:
    """Sample, apply and describe with the op built from ``config``."""
    op = create_op(name, **config)
    context = {"target_size": torch.full((N, 2), TARGET, dtype=torch.int64)}
    params = op.sample(BatchStreams(seed, range(N)), N, context)
    return op.apply(_images(), params), op.describe(params)


def _equal(a: Images, b: Images) -> bool:
    if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
        return False
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    return len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b, strict=True))


def test_variants_cover_every_field() -> None:
    assert sorted(VARIANTS) == OPS, "list each registered op's configurations in VARIANTS"
    for name in OPS:
        defaults = dict(op_class(name).config_fields())
        changed = {key for variant in VARIANTS[name] for key in variant}
        assert changed == set(defaults), f"{name}: fields never changed: {set(defaults) - changed}"
        for variant in VARIANTS[name]:
            for key, value in variant.items():
                built = getattr(create_op(name, **variant), key)
                assert built != getattr(create_op(name), key), (
                    f"{name}.{key}={value!r} is the default"
                )


@pytest.mark.parametrize("name", OPS)
def test_replay_from_records_ignores_the_configuration(name: str) -> None:
    """Records of one configuration replay bit for bit under every other configuration."""
    for i, first in enumerate(_configs(name)):
        lr, records = _run(name, first)
        for j, other in enumerate(_configs(name)):
            if i != j:
                replayed = create_op(name, **other).replay(_images(), copy.deepcopy(records))
                assert _equal(replayed, lr), f"{name}: records of {first} replayed under {other}"


def _perturbations(value: Any, labels: tuple[str, ...] | None) -> list[Any]:
    """Other values of a recorded value (some may be invalid; those are skipped)."""
    if labels is not None:
        return [label for label in labels if label != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + d for d in (1, -1, 2, -2)]
    if isinstance(value, float):
        return [value * 1.3 + 0.05, value * 0.7, value - 0.05]
    if isinstance(value, list):
        return [[v + 1 for v in value], [v - 1 for v in value], [v * 1.2 for v in value]]
    raise AssertionError(f"unexpected recorded value {value!r}")


def _changes_output(name: str, config: dict, key: str) -> bool:
    """Whether replacing ``key`` in every record changes the replayed output."""
    lr, records = _run(name, config)
    if key not in records[0]:
        return False
    op = create_op(name)
    labels = op.categories.get(key)
    for i in range(len(_perturbations(records[0][key], labels))):
        altered = [{**rec, key: _perturbations(rec[key], labels)[i]} for rec in records]
        try:
            out = op.replay(_images(), altered)
        except OpError:
            continue  # an invalid value: says nothing about use
        if not _equal(out, lr):
            return True
    return False


@pytest.mark.parametrize("name", OPS)
def test_every_recorded_key_changes_the_output(name: str) -> None:
    """Nothing is recorded that ``apply`` ignores (for some configuration and value)."""
    recorded = {key for config in _configs(name) for key in _run(name, config)[1][0]} - {"op"}
    for key in sorted(recorded):
        assert any(_changes_output(name, config, key) for config in _configs(name)), (
            f"{name}: recorded {key!r} never changes the output"
        )


@pytest.mark.parametrize("name", OPS)
def test_params_declare_exactly_what_is_recorded(name: str) -> None:
    op = create_op(name)
    declared = {*op.param_intervals(), *op.optional_params}
    recorded = {key for config in _configs(name) for key in _run(name, config)[1][0]} - {"op"}
    assert recorded == declared
    _, records = _run(name, {})
    for key in op.param_intervals():
        missing = [{k: v for k, v in rec.items() if k != key} for rec in records]
        with pytest.raises(OpError, match=f"{name}: missing parameter '{key}'"):
            op.replay(_images(), missing)
    with pytest.raises(OpError, match=rf"{name}: unknown parameter\(s\) \['direction'\]"):
        op.replay(_images(), [{**rec, "direction": 1} for rec in records])
    nan = dict(records[0])
    key = next(k for k in op.param_limits if k not in op.categories)
    nan[key] = [math.nan] * len(nan[key]) if isinstance(nan[key], list) else math.nan
    with pytest.raises(OpError, match=f"{name}: parameter '{key}' must be in"):
        op.replay(_images(), [nan, *records[1:]])


@pytest.mark.parametrize("name", ["realesrgan", "bsrgan"])
def test_a_recipe_replays_under_other_ranges(name: str) -> None:
    """End to end: a pipeline's records replay bit for bit through a variant of its recipe."""
    variant = {
        "realesrgan": {
            "stage1/blur": {"sigma": [0.1, 0.2], "sinc_prob": 0.0},
            "stage1/resize": {"scale": [0.9, 1.1], "antialias": True},
            "stage1/jpeg": {"quality": [90, 95], "subsampling": "4:4:4"},
        },
        "bsrgan": {
            "sf4/blur1_aniso": {"sigma": [0.0, 0.5]},
            "sf4/shifted_subsample": {"sigma": [0.1, 0.2]},
            "sf4/gaussian_noise": {"sigma": [1, 2], "correlated_sigma": 3},
            "final_jpeg": {"quality": [90, 95], "subsampling": "4:4:4"},
        },
    }[name]
    hr = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    result = recipes.load(name).pipeline(hr, seed=9, indices=range(4), scale=4)
    replayed = recipes.load(name, overrides=variant).pipeline.replay(hr, result.records, scale=4)
    assert _equal(replayed.lr, result.lr)


@pytest.mark.parametrize("name", OPS)
def test_apply_reads_no_configuration_field(name: str) -> None:
    """Static check beside the replay test: ``_apply`` never reads ``self.<field>``."""
    cls = op_class(name)
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls._apply)))
    read = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    fields = {f.name for f in dataclasses.fields(cls)}
    assert not read & fields, f"{name}._apply reads configuration field(s) {read & fields}"

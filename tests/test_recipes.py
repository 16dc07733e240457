"""Recipes: errors naming file and field, content hashes, extends, shipped sets, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from degkit import recipes
from degkit.captions import captions_for
from degkit.cli import main
from degkit.recipes import RecipeError

MALFORMED = {
    "unknown_op": (
        "scale: 4\npipeline:\n  - {op: blurr}\n",
        "pipeline[0]: unknown op 'blurr'; known ops: ",
    ),
    "bad_range": (
        "scale: 4\npipeline:\n  - stage: s1\n    steps:\n      - {op: blur, sigma: [-1, 2]}\n",
        "pipeline[0].steps[0]: blur.sigma must lie in [0, 50], got [-1, 2]",
    ),
    "wrong_type_bool": (
        "scale: 4\npipeline:\n  - {op: resize, antialias: 'yes'}\n",
        "pipeline[0].antialias: resize.antialias must be true or false, got 'yes'",
    ),
    "wrong_type_range": (
        "scale: 4\npipeline:\n  - {op: jpeg, quality: high}\n",
        "pipeline[0].quality: jpeg.quality must be a number or a [low, high] pair of numbers, "
        "got 'high'",
    ),
    "unknown_field": (
        "scale: 4\npipeline:\n  - {op: jpeg, qualty: [30, 95]}\n",
        "pipeline[0]: jpeg: unknown field(s) ['qualty']; allowed: ",
    ),
    "unknown_top_level_key": (
        "scales: 4\npipeline:\n  - {op: jpeg}\n",
        "unknown top-level key(s) ['scales']; allowed: ['description', 'scale', 'pipeline'",
    ),
    "missing_scale": (
        "pipeline:\n  - {op: jpeg}\n",
        "scale: must be a positive integer (e.g. 4), got None",
    ),
    "fractional_scale": (
        "scale: 2.5\npipeline:\n  - {op: jpeg}\n",
        "scale: must be a positive integer (e.g. 4), got 2.5",
    ),
    "weights_length": (
        "scale: 4\npipeline:\n  - one_of: [{op: jpeg}, {op: blur}]\n    weights: [1]\n",
        "pipeline[0]: one_of.weights must be 2 non-negative numbers with a positive sum, got [1.0]",
    ),
    "probability": (
        "scale: 4\npipeline:\n  - maybe: {op: jpeg}\n    p: 1.5\n",
        "pipeline[0]: maybe.p must be a probability in [0, 1], got 1.5",
    ),
    "maybe_without_p": (
        "scale: 4\npipeline:\n  - maybe: {op: jpeg}\n",
        "pipeline[0]: a maybe node needs 'p', the probability its child runs",
    ),
    "impossible_shuffle": (
        "scale: 4\npipeline:\n  - shuffle: [{op: jpeg}, {op: blur}]\n"
        "    before: [[jpeg, blur], [blur, jpeg]]\n",
        "pipeline[0]: shuffle constraints fixed={} before=[('jpeg', 'blur'), ('blur', 'jpeg')] "
        "allow no order",
    ),
    "two_node_kinds": (
        "scale: 4\npipeline:\n  - {op: jpeg, maybe: {op: blur}}\n",
        "pipeline[0]: a node needs exactly one of the keys ['op', 'stage', 'sequential', "
        "'one_of', 'maybe', 'shuffle'], got keys ['op', 'maybe']",
    ),
    "stage_key_typo": (
        "scale: 4\npipeline:\n  - stage: s1\n    step: [{op: jpeg}]\n",
        "pipeline[0]: unknown key(s) ['step'] in a stage node; allowed: ['stage', 'steps']",
    ),
    "stage_name_with_slash": (
        "scale: 4\npipeline:\n  - stage: a/b\n    steps: [{op: jpeg}]\n",
        "pipeline[0]: stage name must be a non-empty string without '/', got 'a/b'",
    ),
    "duplicate_paths": (
        "scale: 4\npipeline:\n  - {op: jpeg}\n  - {op: jpeg}\n",
        "pipeline: pipeline 'duplicate_paths': two nodes use the path 'jpeg'; "
        "give one a distinct name",
    ),
    "empty_pipeline": (
        "scale: 4\npipeline: []\n",
        "pipeline: must be a non-empty list of nodes, got []",
    ),
    "invalid_yaml": (
        "scale: 4\npipeline:\n  - {op: jpeg\n",
        ": invalid YAML: ",
    ),
    "unknown_parent": (
        "extends: no_such_recipe\n",
        "extends: unknown recipe 'no_such_recipe'; available: ",
    ),
    "override_unknown_path": (
        "extends: realesrgan\noverrides:\n  stage9/blur: {sigma: [0.2, 1]}\n",
        "overrides['stage9/blur']: no node has this path; paths: ",
    ),
    "override_structure": (
        "extends: realesrgan\noverrides:\n  stage1/blur: {op: jpeg}\n",
        "overrides['stage1/blur']: cannot override ['op']",
    ),
    "override_bad_value": (
        "extends: realesrgan\noverrides:\n  stage2/maybe_blur: {p: 2}\n",
        "overrides['stage2/maybe_blur']: maybe.p must be a probability in [0, 1], got 2",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_recipe_errors_name_file_field_and_what_is_allowed(
    case: str, tmp_path: Path
) -> None:
    text, expected = MALFORMED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        recipes.load(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("scale: 4\npipeline:\n  - {op: jpeg\n")
    with pytest.raises(RecipeError, match=r"broken.yaml: line \d+: invalid YAML"):
        recipes.load(path)


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match=r"extends: cycle a -> b -> a"):
        recipes.load(tmp_path / "a.yaml")


def test_unknown_recipe_name_lists_the_available_ones() -> None:
    with pytest.raises(
        RecipeError, match="unknown recipe 'nope'; available: bicubic, bsrgan, deplsr"
    ):
        recipes.load("nope")


def test_load_applies_overrides_after_the_file() -> None:
    heavy = recipes.load("single_blur", overrides={"level": {"weights": [0, 0, 1]}})
    assert heavy.hash != recipes.load("single_blur").hash
    result = heavy.pipeline(torch.rand(6, 3, 32, 32), seed=0, indices=range(6), scale=4)
    assert all(recs[1]["path"] == "heavy/blur" for recs in result.records)
    with pytest.raises(RecipeError, match=r"overrides\['nope'\]: no node has this path"):
        recipes.load("single_blur", overrides={"nope": {"p": 1}})


# -- hashing ------------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, text: str) -> recipes.Recipe:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return recipes.load(path)


def test_hash_is_sha256_of_the_canonical_sorted_json(tmp_path: Path) -> None:
    recipe = recipes.load("realesrgan")
    text = json.dumps(recipe.spec, sort_keys=True, separators=(",", ":"))
    assert recipe.hash == hashlib.sha256(text.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", recipe.hash)


def test_hash_ignores_spelling_and_names_but_not_content(tmp_path: Path) -> None:
    base = _write(tmp_path, "a", "scale: 4\npipeline:\n  - {op: jpeg, quality: [30, 95]}\n")
    spelled = _write(
        tmp_path,
        "b",
        "description: same thing\nscale: 4\npipeline:\n"
        "  - {op: jpeg, quality: [30.0, 95.0], mode: codec, subsampling: '4:2:0'}\n",
    )
    other = _write(tmp_path, "c", "scale: 4\npipeline:\n  - {op: jpeg, quality: [30, 90]}\n")
    renamed = _write(tmp_path, "d", "scale: 4\npipeline:\n  - {op: jpeg, name: q}\n")
    assert base.hash == spelled.hash
    assert len({base.hash, other.hash, renamed.hash}) == 3
    assert recipes.load("realesrgan").hash != recipes.load("realesrgan_x2").hash


def test_extends_with_overrides_equals_writing_it_out(tmp_path: Path) -> None:
    derived = _write(
        tmp_path,
        "light",
        """\
        extends: realesrgan
        description: Real-ESRGAN with milder noise
        overrides:
          stage1/gaussian_noise: {sigma: [1, 10]}
          stage2/maybe_blur: {p: 0.5}
          stage1/noise: {weights: [0.7, 0.3]}
        """,
    )
    yaml_text = (recipes.RECIPES_DIR / "realesrgan.yaml").read_text()
    yaml_text = yaml_text.replace(
        "{op: gaussian_noise, sigma: [1, 30], gray_prob: 0.4}",
        "{op: gaussian_noise, sigma: [1.0, 10.0], gray_prob: 0.4}",
    ).replace("        p: 0.8\n      - op: resize", "        p: 0.5\n      - op: resize")
    yaml_text = yaml_text.replace(
        "weights: [0.5, 0.5]\n        name: noise", "weights: [0.7, 0.3]\n        name: noise", 1
    )
    full = _write(tmp_path, "full", yaml_text)
    assert derived.hash == full.hash != recipes.load("realesrgan").hash
    assert derived.description == "Real-ESRGAN with milder noise"
    assert derived.scale == 4
    sigma = derived.pipeline.ops["stage1/gaussian_noise"].sigma
    assert tuple(sigma) == (1.0, 10.0)


def test_extends_by_relative_path(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("scale: 3\npipeline:\n  - {op: jpeg}\n")
    child = _write(tmp_path, "child", "extends: ./base.yaml\nscale: 2\n")
    assert child.scale == 2 and child.name == "child" and list(child.pipeline.ops) == ["jpeg"]


# -- shipped recipes ----------------------------------------------------------------------------
SINGLE_TYPES = (
    "blur",
    "gaussian_noise",
    "poisson_noise",
    "jpeg",
    "ringing",
    "motion_blur",
    "haze",
    "low_light",
    "rain",
    "snow",
)


def test_every_required_recipe_ships() -> None:
    names = set(recipes.available())
    required = {"realesrgan", "realesrgan_x2", "bsrgan", "deplsr"}
    required |= {f"single_{t}" for t in SINGLE_TYPES}
    assert required <= names
    for name in names:
        recipe = recipes.load(name)
        assert recipe.description and recipe.name == name and recipe.path.suffix == ".yaml"


@pytest.mark.parametrize("kind", SINGLE_TYPES)
def test_single_type_levels_match_their_severity_words(kind: str) -> None:
    recipe = recipes.load(f"single_{kind}")
    levels = {"light": 0, "medium": 0, "heavy": 0}
    for records in recipe.pipeline.plan(1, range(300), (64, 64), recipe.scale):
        typed = [r for r in records if r["op"] == kind]
        assert len(typed) == 1
        level = typed[0]["path"].split("/")[0]
        levels[level] += 1
        assert captions_for(records)["severity_caption"].startswith(level + " "), typed[0]
    assert all(count > 60 for count in levels.values()), levels


PAPER_FRAGMENT = re.compile(
    r"blur with sigma:\d+\.\d|gaussian noise with sigma:\d+\.\d|poisson noise with scale:\d+\.\d"
    r"|jpeg with quality factor:\d+\.\d|ringing and overshoot artifacts"
)


def test_deplsr_is_staged_at_lr_scale_with_the_papers_caption_strings() -> None:
    recipe = recipes.load("deplsr")
    hr = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 64, 64), 3, 1, 1)
    result = recipe.pipeline(hr, 0, range(4), 4)
    assert result.lr.shape == (4, 3, 16, 16)
    for records in result.records:
        assert records[0]["op"] == "final_resize" and records[0]["size"] == [16, 16]
        paths = [r["path"] for r in records]
        assert paths.index("stage1/blur") < paths.index("stage2/blur") < paths.index("stage2/jpeg")
    for records in recipe.pipeline.plan(3, range(500), (64, 64), 4):
        caption = captions_for(records)["degradation_caption"]
        for fragment in caption.split(","):
            assert PAPER_FRAGMENT.fullmatch(fragment), fragment
        blur_sigmas = [r["sigma_x"] for r in records if r["op"] == "blur"]
        assert all(abs(s * 10 - round(s * 10)) < 1e-9 and 0 <= s <= 2.9 for s in blur_sigmas)


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_lists_recipes_with_hashes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in recipes.available():
        assert re.search(rf"^{name}\s+x\d\s+{recipes.load(name).hash[:16]}\s", out, re.M), name
    assert main(["recipes", "realesrgan_x2"]) == 0
    assert recipes.load("realesrgan_x2").hash in capsys.readouterr().out
    assert main(["recipes", "nope"]) == 2


def test_cli_preview_writes_a_contact_sheet(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    pixels = (torch.rand(80, 100, 3) * 255).byte().numpy()
    Image.fromarray(pixels).save(photo)
    out = tmp_path / "sheet.png"
    args = ["preview", "single_jpeg", "--image", str(photo), "--samples", "2", "--crop", "64"]
    assert main([*args, "--out", str(out)]) == 0
    with Image.open(out) as sheet:
        assert sheet.width == 3 * (64 + 8) + 8  # HR + 2 LR tiles in one row
        tile = torch.from_numpy(np.array(sheet.convert("RGB")))
    hr_tile = tile[8 + 15 + 8 : 8 + 15 + 8 + 64, 8 : 8 + 64]
    centre = torch.from_numpy(pixels[8:72, 18:82])
    assert torch.equal(hr_tile, centre)  # the HR tile is the centre crop


def test_cli_preview_defaults_to_an_embedded_photo(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    assert main(["preview", "deplsr", "--samples", "1", "--crop", "32", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", recipes.available())
def test_recipes_run_on_cuda_as_on_the_cpu(name: str) -> None:
    recipe = recipes.load(name)
    gen = torch.Generator().manual_seed(0)
    hr = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 64, 64, generator=gen), 3, 1, 1)
    cpu = recipe.pipeline(hr, 0, range(4), recipe.scale)
    gpu = recipe.pipeline(hr.cuda(), 0, range(4), recipe.scale)
    assert gpu.lr.device.type == "cuda" and gpu.records == cpu.records
    replayed = recipe.pipeline.replay(hr.cuda(), gpu.records, recipe.scale)
    assert torch.equal(replayed.lr, gpu.lr)
    error = (gpu.lr.cpu() - cpu.lr).abs()
    assert float(error.mean()) < 1 / 255, f"{name}: mean |cuda - cpu| = {float(error.mean()):.4f}"

"""Test sets: YAML set files -> deterministic, content-hashed HR / LR pairs; export; CLI."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from data_corpus import photo_like
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from degkit import recipes
from degkit.cli import main
from degkit.data.prepare import decode_rgb8
from degkit.data.sources import HELDOUT_PHOTOS, resolve_source
from degkit.evaluate import set_cache
from degkit.evaluate.export import export_set
from degkit.evaluate.pairs import Pair, content_hash
from degkit.evaluate.sets import SETS_DIR, available_sets, load_set

SEVERITY_TYPES = [
    "blur",
    "gaussian_noise",
    "haze",
    "jpeg",
    "low_light",
    "motion_blur",
    "poisson_noise",
    "rain",
    "ringing",
    "snow",
]
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_png(path: Path, image: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three small photo-like PNGs of different sizes."""
    folder = tmp_path / "photos"
    for i, (h, w) in enumerate([(40, 48), (48, 40), (44, 44)]):
        write_png(folder / f"p{i}.png", photo_like(h, w, i))
    return folder


@pytest.fixture
def small_set(tmp_path: Path, photos: Path) -> Path:
    return write_yaml(
        tmp_path / "small.yaml",
        "source: photos\nrecipe: realesrgan\nseed: 3\ncrop: 32\n"
        "crops_per_image: 2\ncrop_mode: random\n",
    )


# -- shipped sets ------------------------------------------------------------------
def test_shipped_sets_are_the_promised_ones() -> None:
    names = set(available_sets())
    assert {"realesrgan_x4", "bsrgan_x4", "deplsr_x4", "bicubic_x4"} <= names
    assert {f"severity_{t}_x4" for t in SEVERITY_TYPES} <= names


@pytest.mark.parametrize("name", available_sets())
def test_shipped_set_pairs_have_the_promised_shape_and_source(name: str) -> None:
    test_set = load_set(name)
    pairs = test_set.pairs()
    assert test_set.kind == "paired" and test_set.scale == 4 and len(pairs) >= 12
    assert [p.id for p in pairs] == sorted({p.id for p in pairs})
    assert all(SAFE_ID.match(p.id) for p in pairs)
    assert {p.meta["source_id"] for p in pairs} == set(HELDOUT_PHOTOS)
    for pair in pairs:
        assert pair.lr.dtype == np.uint8 and pair.hr.dtype == np.uint8
        assert pair.hr.shape == (pair.lr.shape[0] * 4, pair.lr.shape[1] * 4, 3)
    info = test_set.describe()
    assert json.loads(json.dumps(info)) == info
    assert info["hash"] == test_set.hash and re.fullmatch(r"[0-9a-f]{64}", test_set.hash)
    assert info["n"] == len(pairs) and info["recipe_hash"] == recipes.load(info["recipe"]).hash


@pytest.mark.parametrize("kind", SEVERITY_TYPES)
def test_severity_sets_carry_type_and_a_forced_level(kind: str) -> None:
    pairs = load_set(f"severity_{kind}_x4").pairs()
    counts = {level: 0 for level in ("light", "medium", "heavy")}
    for pair in pairs:
        assert pair.meta["type"] == kind
        level = pair.meta["level"]
        counts[level] += 1
        assert pair.id.endswith(f"_{level}")
        # the recipe's level choice ran the stage of this level, not a random one
        stages = {r["path"].split("/")[0] for r in pair.meta["records"] if "/" in r["path"]}
        assert stages == {level}
    assert counts["light"] == counts["medium"] == counts["heavy"] == len(pairs) // 3
    by_level = load_set(f"severity_{kind}_x4").describe()["level_recipe_hashes"]
    assert sorted(by_level) == sorted(counts) and len(set(by_level.values())) == 3


def test_hr_crops_are_the_photo_pixels_at_the_recorded_box() -> None:
    photos = {s.source_id: s for s in resolve_source("embedded-heldout")}
    for pair in load_set("realesrgan_x4").pairs():
        photo = decode_rgb8(photos[pair.meta["source_id"]].read_bytes())
        top, left, h, w = pair.meta["crop_box"]
        assert np.array_equal(pair.hr, photo[top : top + h, left : left + w])


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _antialiased_bicubic_matrix(n: int, scale: int) -> np.ndarray:
    """Rows: the Keys kernel widened by ``scale`` around each output centre, edge windows
    renormalised (the antialiased bicubic of Pillow and MATLAB's imresize)."""
    centres = (np.arange(n // scale)[:, None] + 0.5) * scale
    weights = _keys_cubic((np.arange(n)[None, :] + 0.5 - centres) / scale)
    return weights / weights.sum(axis=1, keepdims=True)


def test_bicubic_set_is_antialiased_bicubic_downscaling() -> None:
    for pair in load_set("bicubic_x4").pairs():
        rows = _antialiased_bicubic_matrix(pair.hr.shape[0], 4)
        cols = _antialiased_bicubic_matrix(pair.hr.shape[1], 4)
        reference = np.einsum("ij,jkc,lk->ilc", rows, pair.hr / 255.0, cols, optimize=True)
        reference = np.round(np.clip(reference, 0, 1) * 255)
        difference = np.abs(pair.lr - reference)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # float32 ties


def test_records_replay_to_the_lr_pixels() -> None:
    recipe = recipes.load("deplsr")
    for pair in load_set("deplsr_x4").pairs()[:4]:
        hr = torch.from_numpy(pair.hr.copy()).permute(2, 0, 1)[None].float() / 255
        lr = recipe.pipeline.replay(hr, [pair.meta["records"]], scale=4).lr
        lr8 = lr.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
        assert np.array_equal(lr8, pair.lr)


# -- determinism, hash, cache ---------------------------------------------------------
def test_two_loads_give_identical_pairs_and_hash(small_set: Path, tmp_path: Path, monkeypatch):
    first = load_set(small_set)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    second = load_set(small_set)
    assert first.hash == second.hash
    for a, b in zip(first.pairs(), second.pairs(), strict=True):
        assert a.id == b.id and np.array_equal(a.lr, b.lr) and np.array_equal(a.hr, b.hr)
    assert len(first.pairs()) == 6 and first.pairs()[0].lr.shape == (8, 8, 3)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_pairs_do_not_depend_on_the_batch(small_set: Path, batch_size: int) -> None:
    test_set = load_set(small_set)
    again = test_set.make_pairs(batch_size=batch_size)
    assert content_hash(again, 4, "paired") == test_set.hash


@given(
    order=st.permutations(range(5)),
    k=st.integers(0, 4),
    pixel=st.integers(0, 4 * 4 * 3 - 1),
)
def test_hash_ignores_order_and_sees_every_pixel(order, k, pixel) -> None:
    rng = np.random.default_rng(0)
    pairs = [Pair(f"p{i}", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), None) for i in range(5)]
    digest = content_hash(pairs, 4, "lr_only")
    assert content_hash([pairs[i] for i in order], 4, "lr_only") == digest
    changed = pairs[k].lr.copy()
    changed.reshape(-1)[pixel] ^= 1
    pairs[k] = Pair(pairs[k].id, changed, None)
    assert content_hash(pairs, 4, "lr_only") != digest
    assert content_hash(pairs, 2, "lr_only") != content_hash(pairs, 4, "lr_only")


def test_cache_is_used_and_a_tampered_cache_is_rebuilt(
    small_set: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    digest = load_set(small_set).hash
    (cached,) = set_cache.cache_dir().glob("small-*.npz")

    def fail(*args, **kwargs):
        raise AssertionError("generated again instead of read from the cache")

    with monkeypatch.context() as patch:
        patch.setattr("degkit.evaluate.sets.TestSet.make_pairs", fail)
        assert load_set(small_set).hash == digest
    with np.load(cached) as data:
        arrays = dict(data)
    arrays["lr_0"] = arrays["lr_0"] ^ 1
    np.savez(cached, **arrays)
    assert load_set(small_set).hash == digest  # recomputed, not the tampered pixels
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated
    assert load_set(small_set).hash == digest
    with np.load(cached) as data:
        assert str(data["hash"]) == digest  # rewritten whole


def test_set_file_changes_change_the_pairs(small_set: Path) -> None:
    text = small_set.read_text()
    digest = load_set(small_set).hash
    write_yaml(small_set, text.replace("seed: 3", "seed: 4"))
    assert load_set(small_set).hash != digest


# -- folders ---------------------------------------------------------------------------
def test_paired_folders_match_names_and_infer_the_scale(tmp_path: Path) -> None:
    hr = {name: photo_like(32, 24, i) for i, name in enumerate(["0801", "0802", "a/c1"])}
    lr = {name: photo_like(8, 6, 10 + i) for i, name in enumerate(hr)}
    write_png(tmp_path / "HR/0801.png", hr["0801"])
    write_png(tmp_path / "LR/0801x4.png", lr["0801"])
    write_png(tmp_path / "HR/0802.png", hr["0802"])
    write_png(tmp_path / "LR/0802.png", lr["0802"])
    write_png(tmp_path / "HR/a/c1_HR.png", np.pad(hr["a/c1"], ((0, 3), (0, 2), (0, 0))))
    write_png(tmp_path / "LR/a/c1_LR4.png", lr["a/c1"])
    path = write_yaml(tmp_path / "pairs.yaml", "kind: paired_folders\nhr: HR\nlr: LR\n")
    test_set = load_set(path)
    pairs = test_set.pairs()
    assert test_set.scale == 4 and test_set.kind == "paired"
    assert [p.id for p in pairs] == ["0801", "0802", "a_c1"]
    for pair, name in zip(pairs, ["0801", "0802", "a/c1"], strict=True):
        assert np.array_equal(pair.hr, hr[name])  # a 3 / 2 px larger HR is mod-cropped
        assert np.array_equal(pair.lr, lr[name])
    assert test_set.describe()["layout"] == "paired_folders"


@given(
    names=st.dictionaries(
        st.from_regex(r"[a-z]{1,3}[0-9]{1,4}", fullmatch=True),
        st.tuples(st.sampled_from(["", "_HR", "_x1"]), st.sampled_from(["", "x4", "_x4", "_LR4"])),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=10)
def test_paired_folders_match_every_naming_style(names: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected = {}
        for i, (stem, (hr_tag, lr_tag)) in enumerate(sorted(names.items())):
            expected[stem] = write_png(root / f"LR/{stem}{lr_tag}.png", photo_like(3, 2, i))
            write_png(root / f"HR/{stem}{hr_tag}.png", photo_like(12, 8, i))
        path = write_yaml(root / "p.yaml", "kind: paired_folders\nhr: HR\nlr: LR\nscale: 4\n")
        pairs = load_set(path).pairs()
        assert [p.id for p in pairs] == sorted(names)
        assert all(np.array_equal(p.lr, expected[p.id]) for p in pairs)


def test_paired_folders_scale_mismatch_is_a_one_line_error(tmp_path: Path) -> None:
    write_png(tmp_path / "HR/0801.png", photo_like(32, 24, 0))
    write_png(tmp_path / "LR/0801x4.png", photo_like(8, 6, 1))
    write_png(tmp_path / "HR/0802.png", photo_like(32, 24, 2))
    write_png(tmp_path / "LR/0802x4.png", photo_like(16, 12, 3))
    path = write_yaml(tmp_path / "pairs.yaml", "kind: paired_folders\nhr: HR\nlr: LR\n")
    with pytest.raises(ValueError) as info:
        load_set(path).pairs()
    message = str(info.value)
    assert "\n" not in message and "pairs.yaml" in message and "0802x4.png" in message
    assert "not x4" in message
    given_scale = write_yaml(
        tmp_path / "x2.yaml", "kind: paired_folders\nhr: HR\nlr: LR\nscale: 2\n"
    )
    with pytest.raises(ValueError, match=r"0801x4.png is 6x8: not x2"):
        load_set(given_scale).pairs()


def test_paired_folders_report_unmatched_files(tmp_path: Path) -> None:
    write_png(tmp_path / "HR/0801.png", photo_like(32, 24, 0))
    write_png(tmp_path / "HR/0803.png", photo_like(32, 24, 0))
    write_png(tmp_path / "LR/0801x4.png", photo_like(8, 6, 1))
    path = write_yaml(tmp_path / "pairs.yaml", "kind: paired_folders\nhr: HR\nlr: LR\n")
    with pytest.raises(ValueError, match=r"pairs.yaml: hr: .*0803.png has no LR file"):
        load_set(path).pairs()
    write_png(tmp_path / "LR/0803x4.png", photo_like(8, 6, 1))
    write_png(tmp_path / "LR/0804x4.png", photo_like(8, 6, 1))
    with pytest.raises(ValueError, match=r"pairs.yaml: lr: .*0804x4.png has no HR file"):
        load_set(path).pairs()


def test_lr_folder_is_an_lr_only_set(tmp_path: Path) -> None:
    images = {
        f"real_{i}": write_png(tmp_path / f"real/real_{i}.png", photo_like(12, 10, i))
        for i in range(3)
    }
    path = write_yaml(tmp_path / "real.yaml", "kind: lr_folder\nlr: real\nscale: 4\n")
    test_set = load_set(path)
    pairs = test_set.pairs()
    assert test_set.kind == "lr_only" and test_set.scale == 4
    assert [p.id for p in pairs] == sorted(images)
    assert all(p.hr is None and np.array_equal(p.lr, images[p.id]) for p in pairs)
    assert test_set.describe()["n"] == 3 and len(test_set.hash) == 64


# -- bad set files ---------------------------------------------------------------------
BAD_FILES = [
    ("source: photos\nrecipe: bicubic\nseed: 0\ncrop: 32\nzoom: 2\n", "zoom: unknown field"),
    ("source: photos\nrecipe: bicubic\nseed: zero\ncrop: 32\n", "seed: must be a non-negative"),
    ("source: photos\nrecipe: bicubic\nseed: 0\ncrop: [32]\n", "crop: must be a positive integer"),
    ("source: photos\nrecipe: nope\nseed: 0\ncrop: 32\n", "recipe: unknown recipe 'nope'"),
    ("source: photos\nseed: 0\ncrop: 32\n", "recipe: required"),
    ("source: photos\nrecipe: bicubic\nseed: 0\ncrop: 32\nlevels: [heavy]\n", "levels: recipe"),
    ("source: photos\nrecipe: bicubic\nseed: 0\ncrop: 32\nlevels: [hard]\n", "levels: must be"),
    ("kind: paired_folders\nhr: photos\nlr: missing\n", "lr: folder"),
    ("kind: lr_folder\nlr: photos\n", "scale: required"),
    ("kind: zip\n", "kind: must be one of"),
    ("source: photos\nrecipe: bicubic\nseed: 0\ncrop: 30\n", "crop: 30 is not a multiple"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_bad_set_files_get_a_one_line_error_naming_file_and_field(
    tmp_path: Path, photos: Path, text: str, problem: str
) -> None:
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(ValueError) as info:
        load_set(path).pairs()
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert problem in message


def test_missing_source_is_reported_on_the_source_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", "source: nowhere\nrecipe: bicubic\nseed: 0\ncrop: 32\n")
    with pytest.raises(ValueError, match=r"s.yaml: source: .*nowhere.* does not exist"):
        load_set(path).pairs()


# -- export ------------------------------------------------------------------------------
def test_export_writes_pngs_that_decode_to_the_pairs(small_set: Path, tmp_path: Path) -> None:
    test_set = load_set(small_set)
    out = tmp_path / "export"
    assert export_set(test_set, out) == 6
    info = json.loads((out / "set.json").read_text())
    assert info["hash"] == test_set.hash and len(info["pairs"]) == 6
    for pair in test_set.pairs():
        assert np.array_equal(np.asarray(Image.open(out / "LR" / f"{pair.id}.png")), pair.lr)
        assert np.array_equal(np.asarray(Image.open(out / "HR" / f"{pair.id}.png")), pair.hr)
    assert export_set(test_set, out) == 6  # the same set again: allowed


def test_export_refuses_a_foreign_non_empty_folder(small_set: Path, tmp_path: Path) -> None:
    test_set = load_set(small_set)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and is not an export of set 'small'"):
        export_set(test_set, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    other = write_yaml(tmp_path / "other.yaml", small_set.read_text().replace("seed: 3", "seed: 5"))
    export_set(load_set(other), tmp_path / "other-out")
    with pytest.raises(ValueError, match="not an export of set 'small'"):
        export_set(test_set, tmp_path / "other-out")


# -- CLI -------------------------------------------------------------------------------
def test_cli_sets_lists_every_set_with_size_and_hash(capsys) -> None:
    assert main(["sets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "scale", "n", "LR", "size", "hash"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == available_sets()
    realesrgan = rows["realesrgan_x4"]
    assert realesrgan[1:5] == ["paired", "x4", "12", "64x64"]
    assert realesrgan[5] == load_set("realesrgan_x4").hash[:16]


def test_cli_sets_describes_one_set_and_exports_it(small_set: Path, tmp_path: Path, capsys):
    assert main(["sets", str(small_set)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "small" and info["n"] == 6 and info["crop"]["crop_mode"] == "random"
    assert main(["export-set", str(small_set), "--out", str(tmp_path / "e")]) == 0
    assert info["hash"][:16] in capsys.readouterr().out
    assert len(list((tmp_path / "e" / "LR").glob("*.png"))) == 6


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    bad = write_yaml(tmp_path / "bad.yaml", "kind: paired_folders\nhr: x\nlr: y\n")
    assert main(["sets", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("degkit sets: error: ") and "bad.yaml: hr: folder" in err
    assert "\n" not in err
    assert main(["export-set", "no_such_set", "--out", str(tmp_path / "o")]) == 2
    assert "unknown test set 'no_such_set'" in capsys.readouterr().err


def test_describe_names_shipped_files_the_same_on_every_machine(tmp_path):
    shipped = load_set("bicubic_x4").describe()
    assert shipped["file"] == "benchmarks/sets/bicubic_x4.yaml"
    copy = tmp_path / "mine.yaml"
    copy.write_text((SETS_DIR / "bicubic_x4.yaml").read_text())
    assert load_set(copy).describe()["file"] == str(copy)

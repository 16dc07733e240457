"""degkit build: round trip through datasets, skipped files, card, determinism, resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from data_corpus import file_digests, write_corpus, write_fast_recipe
from PIL import Image

from degkit import recipes
from degkit.cli import main
from degkit.data import build as build_module
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.prepare import CropPlan, decode_rgb8
from degkit.data.rows import chunk_tasks
from degkit.data.sources import HELDOUT_PHOTOS, embedded_images
from degkit.data.state import STATE_DIR
from degkit.data.work import ImageTask
from degkit.pipeline import Pipeline
from degkit.rng import STREAM_VERSION
from degkit.train.data import dataset_summary

CROP, SCALE, PER_IMAGE = 32, 4, 2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    expected = write_corpus(root / "images", size=48)
    return root, expected, write_fast_recipe(root)


def _config(root: Path, recipe: Path, out: str, **overrides) -> BuildConfig:
    options = dict(
        recipe=str(recipe),
        out=root / out,
        source=str(root / "images"),
        crop=CROP,
        per_image=PER_IMAGE,
        seed=7,
        splits="train=0.7,validation=0.3",
        rows_per_shard=3,
        batch_size=4,
        workers=0,
        progress=False,
    )
    options.update(overrides)
    return BuildConfig(**options)


@pytest.fixture(scope="module")
def built(corpus):
    root, expected, recipe = corpus
    summary = build_dataset(_config(root, recipe, "reference"))
    return root / "reference", summary


def _png_array(cell) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def test_load_dataset_round_trip_is_pixel_identical(corpus, built):
    root, expected, recipe_path = corpus
    out, summary = built
    good = sorted(name for name, reason in expected.items() if reason is None)
    ds = datasets.load_dataset(
        "parquet",
        data_files={s: str(out / f"data/{s}-*.parquet") for s in ("train", "validation")},
    )
    assert isinstance(ds["train"].features["hr"], datasets.Image)
    assert isinstance(ds["train"].features["fine_captions"], datasets.List)
    rows = [r for split in ("train", "validation") for r in ds[split]]
    assert len(rows) == len(good) * PER_IMAGE == summary.rows
    assert sorted({r["source_id"] for r in rows}) == good
    recipe = recipes.load(str(recipe_path))
    raw = {
        r["id"]: r for p in sorted(out.glob("data/*.parquet")) for r in pq.read_table(p).to_pylist()
    }
    for row in rows:
        source = decode_rgb8((root / "images" / row["source_id"]).read_bytes())
        top, left = row["crop_top"], row["crop_left"]
        hr = np.asarray(row["hr"])
        assert np.array_equal(hr, source[top : top + CROP, left : left + CROP])
        assert np.array_equal(hr, _png_array(raw[row["id"]]["hr"]))
        lr = np.asarray(row["lr"])
        assert lr.shape == (CROP // SCALE, CROP // SCALE, 3) and lr.dtype == np.uint8
        # the records replay to exactly the stored LR
        hr_t = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255
        replay = recipe.pipeline.replay(hr_t, [json.loads(row["records"])], SCALE).lr
        replay8 = replay.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(replay8, lr)
        assert len(row["fine_captions"]) == 5 and row["degradation_caption"]
        assert (row["scale"], row["seed"], row["recipe"]) == (SCALE, 7, "fast")
        assert row["recipe_hash"] == recipe.hash
        assert row["id"] == f"fast-s7-{row['index']:09d}"


def test_crops_of_one_image_stay_in_one_split(built):
    out, _ = built
    splits: dict[str, set[str]] = {}
    for path in out.glob("data/*.parquet"):
        split = path.name.split("-")[0]
        splits.setdefault(split, set()).update(
            pq.read_table(path, columns=["source_id"])["source_id"].to_pylist()
        )
    assert set(splits) == {"train", "validation"}
    assert not splits["train"] & splits["validation"]


def test_bad_files_are_skipped_with_reasons(corpus, built):
    _, expected, _ = corpus
    out, summary = built
    lines = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {entry["source_id"]: entry["reason"] for entry in lines}
    bad = {name: reason for name, reason in expected.items() if reason is not None}
    bad["notes.txt"] = "unsupported file type '.txt'"  # not an image: listed, takes no index
    assert sorted(reasons) == sorted(bad)
    for name, part in bad.items():
        assert part in reasons[name]
    for entry in lines:
        if entry["source_id"] == "notes.txt":
            assert entry["indices"] == [] and summary.skipped_files == 1
            continue
        ordinal = sorted(expected).index(entry["source_id"])
        assert entry["indices"] == [ordinal * PER_IMAGE + k for k in range(PER_IMAGE)]


def test_card_yaml_parses_and_lists_every_shard(built):
    out, summary = built
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "other"
    assert meta["task_categories"] == ["image-to-image"]
    assert meta["size_categories"] == ["n<1K"]
    [config] = meta["configs"]
    assert config["config_name"] == "default"
    shard_files = sorted(p.relative_to(out).as_posix() for p in out.glob("data/*.parquet"))
    matched = sorted(
        p.relative_to(out).as_posix()
        for entry in config["data_files"]
        for p in out.glob(entry["path"])
    )
    empty = list((out / STATE_DIR / "empty").glob("*.json"))  # shards whose images all failed
    assert matched == shard_files and len(shard_files) + len(empty) == summary.shards_written
    features = {f["name"]: f for f in meta["dataset_info"]["features"]}
    assert features["hr"]["dtype"] == "image" and features["fine_captions"]["list"] == "string"
    examples = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert sum(examples.values()) == summary.rows
    assert "degkit build fast.yaml" not in text and "--seed 7" in text
    assert "Content captions are **empty**" in text


def test_same_seed_same_bytes_for_any_batch_size_workers_and_shard_split(corpus, built):
    root, _, recipe = corpus
    reference, _ = built
    expected = file_digests(reference)
    build_dataset(_config(root, recipe, "batch1", batch_size=1))
    build_dataset(_config(root, recipe, "workers2", batch_size=7, workers=2))
    for k in range(3):
        build_dataset(_config(root, recipe, "jobs", shard=f"{k}/3", batch_size=2))
    assert file_digests(root / "batch1") == expected
    assert file_digests(root / "workers2") == expected
    assert file_digests(root / "jobs") == expected
    for name in ("README.md", "skipped.jsonl"):
        assert (root / "jobs" / name).read_text().replace("/jobs", "/reference") == (
            reference / name
        ).read_text()


def test_a_device_build_replaying_worker_plans_writes_the_same_bytes(corpus, built, monkeypatch):
    """The main-process path (GPU builds): workers plan records and captions, the main
    process replays them on batches; the files equal the reference's."""
    root, _, recipe = corpus
    reference, _ = built
    monkeypatch.setattr(build_module, "degrade_in_workers", lambda config: False)
    replayed = []
    replay = Pipeline.replay

    def counted(self, hr, records, scale):
        replayed.append(len(records))
        return replay(self, hr, records, scale)

    monkeypatch.setattr(Pipeline, "replay", counted)
    summary = build_dataset(_config(root, recipe, "planned", batch_size=5, workers=2))
    assert sum(replayed) == summary.rows  # every row came from a worker's plan
    assert file_digests(root / "planned") == file_digests(reference)


def test_resume_redoes_only_missing_or_broken_shards(corpus, built):
    root, _, recipe = corpus
    reference, _ = built
    expected = file_digests(reference)
    out = root / "resumed"
    build_dataset(_config(root, recipe, "resumed"))
    shards = sorted(out.glob("data/*.parquet"))
    shards[0].unlink()
    cut = shards[1].read_bytes()[:1000]  # a shard cut short: it no longer proves it is ours
    shards[1].write_bytes(cut)
    (out / "data" / f".{shards[2].name}.tmp").write_bytes(b"half-written")
    with pytest.raises(ValueError, match=f"holds data/{shards[1].name}, which does not carry"):
        build_dataset(_config(root, recipe, "resumed", resume=True))
    assert shards[1].read_bytes() == cut  # never deleted by degkit
    shards[1].unlink()
    with pytest.raises(
        ValueError, match="already holds shards of this build.*BuildConfig.resume=True"
    ):
        build_dataset(_config(root, recipe, "resumed"))
    summary = build_dataset(_config(root, recipe, "resumed", resume=True))
    assert summary.shards_written == 2
    assert file_digests(out) == expected
    assert not list(out.glob("data/.*"))
    again = build_dataset(_config(root, recipe, "resumed", resume=True))
    assert again.shards_written == 0 and again.shards_done == again.shards_total


def test_other_settings_in_the_same_folder_are_refused(corpus, built):
    root, _, recipe = corpus
    with pytest.raises(ValueError, match="other settings.*seed: 7 -> 8"):
        build_dataset(_config(root, recipe, "reference", seed=8, resume=True))


def test_a_build_begun_with_other_random_streams_is_not_resumed(corpus):
    """A folder started by a degkit whose seeds drew other values must not be mixed into."""
    root, _, recipe = corpus
    out = root / "streams"
    build_dataset(_config(root, recipe, "streams"))
    info_path = out / ".degkit" / "build.json"
    info = json.loads(info_path.read_text())
    info["settings"]["stream_version"] = 1
    info["fingerprint"] = "from an older degkit"
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=f"stream_version: 1 -> {STREAM_VERSION}"):
        build_dataset(_config(root, recipe, "streams", resume=True))


def test_cli_errors_name_the_option(corpus, tmp_path, capsys):
    root, _, recipe = corpus
    base = ["build", str(recipe), "--out", str(tmp_path / "o"), "--quiet"]
    cases = [
        (["--source", str(tmp_path / "missing")], "--source"),
        (["--source", str(root / "images"), "--shard", "5/2"], "--shard"),
        (
            ["--source", str(root / "images"), "--crop", "30"],
            "error: --crop must be a positive multiple",
        ),
        (["--source", str(root / "images"), "--splits", "a=1,a=2"], "--splits"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert main(["build", "no_such_recipe", "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "no_such_recipe" in capsys.readouterr().err


def test_info_prints_counts_captions_and_histograms(built, capsys):
    out, summary = built
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"rows       {summary.rows}" in text
    assert "recipe     fast" in text
    assert "gaussian noise with sigma:" in text
    assert "noise_level (float64)" in text and "#" in text
    after = text.split("noise_kind (class_label)\n", 1)[1].splitlines()
    end = next(i for i, line in enumerate(after) if not line.startswith("    "))
    bars = [line.split()[0] for line in after[:end]]
    assert set(bars) <= {"gaussian", "poisson", "speckle", "salt_pepper", "(null)"}  # labels
    assert "gaussian" in bars
    assert "skipped    6 images" in text


def test_deplsr_with_no_source_builds_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "deplsr"
    assert main(["build", "deplsr", "--out", str(out), "--workers", "2", "--quiet"]) == 0
    assert "dataset complete" in capsys.readouterr().out
    ds = datasets.load_dataset(
        "parquet", data_files=str(out / "data/train-*.parquet"), split="train"
    )
    assert (out / STATE_DIR / "build.json").is_file()
    assert (out / "skipped.jsonl").read_text() == ""
    assert len(ds) == len(embedded_images())
    assert set(ds["source_id"]).isdisjoint(HELDOUT_PHOTOS)  # the test sets' photos
    row = ds[0]
    assert row["hr"].size == (256, 256) and row["lr"].size == (64, 64)
    assert row["source_id"].startswith("embedded/")
    assert "blur with sigma:" in row["degradation_caption"]
    captions = {s.source_id: s.caption for s in embedded_images()}
    assert ds["content_caption"] == [captions[i] for i in ds["source_id"]]
    assert all(ds["content_caption"]) and dataset_summary(out)["has_content_captions"]


def test_whole_images_are_mod_cropped_and_batched_by_shape(corpus):
    root, expected, recipe = corpus
    out = root / "whole"
    build_dataset(
        _config(root, recipe, "whole", crop=None, per_image=1, splits="train", batch_size=3)
    )
    for path in out.glob("data/*.parquet"):
        for row in pq.read_table(path).to_pylist():
            source = decode_rgb8((root / "images" / row["source_id"]).read_bytes())
            h, w = source.shape[0] // SCALE * SCALE, source.shape[1] // SCALE * SCALE
            hr, lr = _png_array(row["hr"]), _png_array(row["lr"])
            assert np.array_equal(hr, source[:h, :w])
            assert lr.shape == (h // SCALE, w // SCALE, 3)
    reasons = [json.loads(line)["reason"] for line in (out / "skipped.jsonl").open()]
    assert not any("smaller than the crop" in r for r in reasons)  # small.png is kept whole


def test_chunks_follow_a_shrinking_limit_and_keep_image_order() -> None:
    """Each chunk holds at most the limit asked before it (a single larger image excepted)."""
    sizes = [3, 1, 2, 2, 1, 4]
    plan = CropPlan(32, 4, 4, "grid")
    tasks, start = [], 0
    for n in sizes:
        indices = tuple(range(start, start + n))
        tasks.append(ImageTask(embedded_images()[0], tuple(range(n)), indices, plan, None))
        start += n
    limits = iter([4, 3, 1, 1, 1])
    asked: list[int] = []

    def limit() -> int:
        asked.append(next(limits))
        return asked[-1]

    chunks = list(chunk_tasks(7, tasks, limit))
    assert [[len(t.indices) for t in c.tasks] for c in chunks] == [[3, 1], [2], [2], [1], [4]]
    assert all(c.shard == 7 for c in chunks)
    assert [t for c in chunks for t in c.tasks] == tasks
    for chunk, most in zip(chunks, asked, strict=True):
        assert sum(len(t.indices) for t in chunk.tasks) <= most or len(chunk.tasks) == 1


def test_categorical_flat_columns_round_trip_as_class_labels(built):
    out, _ = built
    ds = datasets.load_dataset("parquet", data_files=str(out / "data/*.parquet"))["train"]
    kind = ds.features["noise_kind"]
    assert isinstance(kind, datasets.ClassLabel)
    assert kind.names == ["gaussian", "poisson", "speckle", "salt_pepper"]
    mode = ds.features["final_resize_mode"]
    assert isinstance(mode, datasets.ClassLabel) and "bicubic" in mode.names
    for row in ds:
        records = json.loads(row["records"])
        noises = [r["op"] for r in records if r["op"].endswith("_noise")]
        expected = noises[-1].removesuffix("_noise") if noises else None
        got = None if row["noise_kind"] is None else kind.int2str(row["noise_kind"])
        assert got == expected
        [final] = [r["mode"] for r in records if r["op"] == "final_resize"]
        assert mode.int2str(row["final_resize_mode"]) == final


def test_card_describes_every_column_and_its_features_parse(built):
    out, _ = built
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    features = datasets.Features._from_yaml_list(meta["dataset_info"]["features"])
    ds = datasets.load_dataset("parquet", data_files=str(out / "data/*.parquet"))["train"]
    assert features == ds.features
    lines = [line for line in text.splitlines() if line.startswith("- `")]
    assert [line.split("`")[1] for line in lines] == list(ds.features)
    docs = [line.split("): ", 1)[1] for line in lines]
    assert len(set(docs)) == len(docs)  # every column has its own description

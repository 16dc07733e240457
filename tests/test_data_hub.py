"""degkit push: the exact files uploaded (no network), refusal of incomplete builds."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from data_corpus import photo_like, png_bytes, write_fast_recipe
from PIL import Image

from degkit.cli import main
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.hub import files_to_upload, push_dataset


def _build(root: Path, out: str, shard: str | None = None) -> Path:
    images = root / "images"
    images.mkdir(exist_ok=True)
    for i in range(5):
        (images / f"{i}.png").write_bytes(png_bytes(Image.fromarray(photo_like(24, 24, i))))
    config = BuildConfig(
        recipe=str(write_fast_recipe(root)),
        out=root / out,
        source=str(images),
        crop=16,
        splits="train=0.6,validation=0.4",
        rows_per_shard=2,
        shard=shard,
        workers=0,
        progress=False,
    )
    build_dataset(config)
    return root / out


def test_upload_list_is_card_shards_and_skipped(tmp_path, capsys):
    out = _build(tmp_path, "ds")
    (out / "data" / ".stray.tmp").write_text("x")
    (out / "notes.txt").write_text("local only")
    expected = [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "skipped.jsonl",
    ]
    assert files_to_upload(out) == expected
    assert main(["push", str(out), "user/repo", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == expected


def test_push_creates_the_repo_and_uploads_exactly_those_files(tmp_path, monkeypatch):
    out = _build(tmp_path, "ds")
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_dataset(out, "me/sr-data", private=True, token="t")
    assert url == "https://huggingface.co/datasets/me/sr-data"
    assert calls["token"] == "t"
    assert calls["create_repo"] == (
        "me/sr-data",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "me/sr-data" and upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(out)
    assert upload["allow_patterns"] == files_to_upload(out)


def test_incomplete_build_is_refused(tmp_path):
    out = _build(tmp_path, "half", shard="0/2")
    with pytest.raises(ValueError, match=r"incomplete.*BuildConfig\.resume=True"):
        files_to_upload(out)
    with pytest.raises(FileNotFoundError, match="not a degkit dataset"):
        files_to_upload(tmp_path)

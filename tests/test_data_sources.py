"""Sources: folders, CSV / JSONL lists, parquet files, saved HF datasets, embedded photos."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_corpus import photo_like, png_bytes, write_corpus
from PIL import Image

from degkit.captions import SEVERITY_WORDS, caption_types
from degkit.data.prepare import decode_rgb8
from degkit.data.sources import HELDOUT_PHOTOS, embedded_images, heldout_images, resolve_source


def test_embedded_photos_are_real_decodable_and_stable():
    photos = embedded_images()
    ids = [p.source_id for p in photos]
    assert len(photos) >= 14
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.startswith("embedded/") for i in ids)
    assert "embedded/skimage/astronaut" in ids
    assert [p.source_id for p in embedded_images()] == ids
    image = decode_rgb8(photos[ids.index("embedded/skimage/astronaut")].read_bytes())
    assert image.shape == (512, 512, 3)
    assert resolve_source(None) == photos == resolve_source("embedded")


def test_every_embedded_photo_has_a_short_content_caption_without_degradation_words():
    vocabulary = {"blurry", "noisy", "compressed", "quality", "pixelated", "resolution"}
    for kind in caption_types().values():
        vocabulary.update(re.findall(r"[a-z]+", f"{kind.name} {kind.phrase}"))
    vocabulary.update(SEVERITY_WORDS)
    vocabulary -= {"and", "with"}
    photos = embedded_images() + heldout_images()
    assert len(photos) == 24
    for photo in photos:
        words = re.findall(r"[a-z]+", photo.caption.lower())
        assert 3 <= len(words) <= 16, photo.source_id
        assert not vocabulary & set(words), (photo.source_id, vocabulary & set(words))
    assert len({p.caption for p in photos}) == len(photos)


def test_heldout_photos_never_enter_the_default_build_source():
    training = {s.source_id for s in resolve_source(None)}
    heldout = [s.source_id for s in resolve_source("embedded-heldout")]
    assert heldout == sorted(HELDOUT_PHOTOS) == [s.source_id for s in heldout_images()]
    assert training.isdisjoint(heldout)
    assert len(training) + len(heldout) == 24  # every embedded photo is in exactly one
    for source in heldout_images():
        image = decode_rgb8(source.read_bytes())
        assert min(image.shape[:2]) >= 256  # room for the test sets' 256 px crops


def test_folder_is_searched_recursively_for_image_extensions(tmp_path):
    expected = write_corpus(tmp_path)
    found = resolve_source(tmp_path)
    assert [s.source_id for s in found] == sorted(expected)  # no .txt, no hidden folders
    assert all(Path(s.location).is_file() for s in found)
    assert "nested/good_jpeg.jpg" in [s.source_id for s in found]


def test_csv_list_with_captions(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("b.png", "a.png"):
        (tmp_path / "imgs" / name).write_bytes(png_bytes(Image.fromarray(photo_like(8, 8, 0))))
    listing = tmp_path / "list.csv"
    listing.write_text('filepath,title\nimgs/b.png,"a red, round thing"\nimgs/a.png,\n')
    found = resolve_source(listing)
    assert [(s.source_id, s.caption) for s in found] == [
        ("imgs/a.png", ""),
        ("imgs/b.png", "a red, round thing"),
    ]
    assert found[0].read_bytes() == (tmp_path / "imgs" / "a.png").read_bytes()


def test_jsonl_list_and_errors(tmp_path):
    listing = tmp_path / "list.jsonl"
    listing.write_text(json.dumps({"image": "/abs/x.png", "caption": "x"}) + "\n")
    [only] = resolve_source(listing)
    assert (only.source_id, only.location, only.caption) == ("/abs/x.png", "/abs/x.png", "x")
    listing.write_text('{"image": "a.png"}\n{"image": "a.png"}\n')
    with pytest.raises(ValueError, match="line 2 repeats the path 'a.png' of line 1"):
        resolve_source(listing)
    listing.write_text('{"where": "a.png"}\n')
    with pytest.raises(ValueError, match="cannot tell which column.*BuildConfig.path_column"):
        resolve_source(listing)
    with pytest.raises(ValueError, match="no column 'nope'"):
        resolve_source(listing, path_column="nope")


def test_missing_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="BuildConfig.source .*does-not-exist"):
        resolve_source(tmp_path / "does-not-exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        resolve_source(tmp_path / "empty")


def _pngs(n):
    return [png_bytes(Image.fromarray(photo_like(20, 24, i))) for i in range(n)]


def test_parquet_with_hf_image_column(tmp_path):
    pngs = _pngs(5)
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in pngs], "text": [f"t{i}" for i in range(5)]},
        features=features,
    )
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "part.parquet"), batch_size=2)
    found = resolve_source(tmp_path / "pq")
    assert [s.source_id for s in found] == [f"part.parquet#{i:09d}" for i in range(5)]
    assert [s.caption for s in found] == [f"t{i}" for i in range(5)]
    assert [s.read_bytes() for s in found] == pngs


def test_parquet_with_raw_bytes_and_named_columns(tmp_path):
    pngs = _pngs(3)
    table = pa.table({"pixels": pngs, "desc": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "raw.parquet", row_group_size=1)
    found = resolve_source(tmp_path / "raw.parquet", image_column="pixels", caption_column="desc")
    assert [s.read_bytes() for s in found] == pngs
    assert [s.caption for s in found] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="cannot tell which column"):
        resolve_source(tmp_path / "raw.parquet")


def test_saved_dataset_folder(tmp_path):
    arrays = [photo_like(12, 16, i) for i in range(3)]
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays], "caption": ["x", "y", "z"]},
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Value("string")}
        ),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    found = resolve_source(tmp_path / "saved")
    assert [s.caption for s in found] == ["x", "y", "z"]
    for source, array in zip(found, arrays, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(source.read_bytes())).convert("RGB"))
        assert np.array_equal(decoded, array)

"""Reading back: torch Dataset / DataLoader over shards, row-group shuffling, DDP ranks."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from data_corpus import photo_like, png_bytes, write_fast_recipe
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit.data.build import BuildConfig, build_dataset
from degkit.data.loaders import RowGroupShuffleSampler, ShardDataset, make_dataloader


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("loaders")
    (root / "images").mkdir()
    for i in range(14):
        image = Image.fromarray(photo_like(40, 40 + 4 * i, i))
        (root / "images" / f"{i:02d}.png").write_bytes(png_bytes(image))
    build_dataset(
        BuildConfig(
            recipe=str(write_fast_recipe(root)),
            out=root / "ds",
            source=str(root / "images"),
            crop=16,
            per_image=3,
            rows_per_shard=13,
            workers=0,
            progress=False,
        )
    )
    return root / "ds"


def test_dataset_rows_match_load_dataset(dataset_dir):
    files = sorted(str(p) for p in dataset_dir.glob("data/train-*.parquet"))
    reference = datasets.load_dataset("parquet", data_files=files, split="train")
    ours = ShardDataset(dataset_dir, columns=["hr", "lr", "index", "fine_captions", "records"])
    assert len(ours) == len(reference) == 42
    for i in (0, 12, 13, 41, 5):
        row = ours[i]
        expected = reference[i]
        assert row["index"] == expected["index"]
        hr = torch.from_numpy(np.asarray(expected["hr"]).copy()).permute(2, 0, 1).float() / 255
        assert row["hr"].dtype == torch.float32 and torch.equal(row["hr"], hr)
        assert row["lr"].shape == (3, 4, 4)
        assert row["fine_captions"] == expected["fine_captions"]
        assert isinstance(row["records"], list) and row["records"][0]["op"] == "final_resize"
    with pytest.raises(IndexError):
        ours[42]
    with pytest.raises(ValueError, match="no column"):
        ShardDataset(dataset_dir, columns=["hr", "nonexistent"])
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        ShardDataset(dataset_dir, split="test")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), epoch=st.integers(0, 5), replicas=st.integers(1, 4))
def test_sampler_visits_each_row_once_in_row_group_runs(dataset_dir, seed, epoch, replicas):
    ds = ShardDataset(dataset_dir, columns=["index"])
    parts = []
    for rank in range(replicas):
        sampler = RowGroupShuffleSampler(ds, seed=seed, num_replicas=replicas, rank=rank)
        sampler.set_epoch(epoch)
        parts.append(list(sampler))
    assert len({len(p) for p in parts}) == 1  # equal length on every rank
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) == len(ds) // replicas * replicas
    # rows of one row group are contiguous in the order: one read per row group
    group_of = {i: g for g, r in enumerate(ds.group_ranges()) for i in r}
    whole = RowGroupShuffleSampler(ds, seed=seed)
    whole.set_epoch(epoch)
    order = [group_of[i] for i in whole]
    changes = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert changes == len(ds.group_ranges()) - 1


def test_sampler_order_changes_with_epoch_and_not_without(dataset_dir):
    ds = ShardDataset(dataset_dir, columns=["index"])
    sampler = RowGroupShuffleSampler(ds, seed=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(RowGroupShuffleSampler(ds, shuffle=False)) == list(range(len(ds)))


def test_dataloader_batches_with_workers(dataset_dir):
    loader = make_dataloader(dataset_dir, batch_size=8, num_workers=2, seed=0)
    seen = []
    for batch in loader:
        assert batch["hr"].shape[1:] == (3, 16, 16) and batch["lr"].shape[1:] == (3, 4, 4)
        assert (
            batch["hr"].dtype == torch.float32 and 0 <= batch["hr"].min() <= batch["hr"].max() <= 1
        )
        assert batch["index"].dtype == torch.int64
        assert len(batch["fine_captions"]) == len(batch["index"])
        assert all(isinstance(c, str) for c in batch["degradation_caption"])
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(42))

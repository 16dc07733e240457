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
from degkit.data.loaders import (
    InMemoryRows,
    RowGroupShuffleSampler,
    ShardDataset,
    decoded_image_bytes,
    in_memory_if_fits,
    make_dataloader,
)


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


def _epoch_order(ds: ShardDataset, seed: int, epoch: int) -> list[int]:
    """Epoch ``epoch``'s order from a fresh sampler told the epoch explicitly."""
    sampler = RowGroupShuffleSampler(ds, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_sampler_reshuffles_each_pass_by_itself(dataset_dir):
    ds = ShardDataset(dataset_dir, columns=["index"])
    sampler = RowGroupShuffleSampler(ds, seed=1)
    passes = [list(sampler) for _ in range(4)]
    # pass k is epoch k: the same as asking for epoch k explicitly, so a run is reproducible
    assert passes == [_epoch_order(ds, 1, k) for k in range(4)]
    assert all(sorted(p) == list(range(len(ds))) for p in passes)
    assert len({tuple(p) for p in passes}) == 4  # a new order every epoch
    sampler.set_epoch(1)  # jump back (resume / DDP): the next passes are epochs 1, 2
    assert [list(sampler), list(sampler)] == passes[1:3]
    ordered = RowGroupShuffleSampler(ds, shuffle=False)
    assert list(ordered) == list(ordered) == list(range(len(ds)))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_rows_in_memory_are_the_decoded_rows_within_the_budget(dataset_dir, dtype):
    columns = ["hr", "lr", "index", "fine_captions", "records"]
    shards = ShardDataset(dataset_dir, columns=columns, image_dtype=dtype)
    decoded = [shards[i] for i in range(len(shards))]
    size = sum(row[c].numel() * row[c].element_size() for row in decoded for c in ("hr", "lr"))
    assert decoded_image_bytes(shards, size) == size
    assert decoded_image_bytes(shards, size - 1) is None
    assert in_memory_if_fits(shards, size - 1) is shards
    assert in_memory_if_fits(shards, 0) is shards
    held = in_memory_if_fits(shards, size)
    assert isinstance(held, InMemoryRows) and len(held) == len(shards)
    assert held.group_ranges() == shards.group_ranges()
    assert _epoch_order(held, 3, 2) == _epoch_order(shards, 3, 2)
    for i, expected in enumerate(decoded):
        row = held[i]
        assert row.keys() == expected.keys()
        for c in ("hr", "lr"):
            assert row[c].dtype == dtype and row[c].is_contiguous()
            assert torch.equal(row[c], expected[c])
        assert {k: row[k] for k in columns[2:]} == {k: expected[k] for k in columns[2:]}
    with pytest.raises(IndexError, match="row 42 out of range"):
        held[42]


def test_rows_with_a_transform_are_not_held(dataset_dir):
    shards = ShardDataset(dataset_dir, columns=["hr"], transform=lambda row: row)
    assert in_memory_if_fits(shards, 2**30) is shards
    with pytest.raises(ValueError, match="no transform"):
        InMemoryRows(shards)


def test_dataloader_reshuffles_every_epoch_reproducibly(dataset_dir):
    def epochs(loader, n):
        return [[i for batch in loader for i in batch["index"].tolist()] for _ in range(n)]

    columns = ["index"]
    first = epochs(make_dataloader(dataset_dir, batch_size=5, seed=3, columns=columns), 3)
    again = epochs(make_dataloader(dataset_dir, batch_size=5, seed=3, columns=columns), 3)
    assert first == again
    ds = ShardDataset(dataset_dir, columns=columns)
    index_of_row = [ds[i]["index"] for i in range(len(ds))]
    assert first == [[index_of_row[r] for r in _epoch_order(ds, 3, k)] for k in range(3)]
    assert first[0] != first[1] != first[2]


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


def test_the_cards_loading_code_runs(dataset_dir, monkeypatch):
    """The card's ``## Loading`` block: ``datasets.load_dataset("parquet", ...)`` and our loader."""
    card = (dataset_dir / "README.md").read_text()
    code = card.split("## Loading", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert 'load_dataset("parquet", data_files=' in code
    monkeypatch.chdir(dataset_dir)  # the card's paths are relative to the dataset root
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    ds, loader = namespace["ds"], namespace["loader"]
    assert ds["train"].num_rows == 42
    assert isinstance(ds["train"].features["fine_captions"], datasets.List)
    assert sorted(ds["train"]["index"]) == sorted(i for b in loader for i in b["index"].tolist())

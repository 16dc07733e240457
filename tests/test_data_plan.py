"""The sample plan: splits by image, global indices, shards and --shard k/n jobs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit.data.plan import (
    assign_splits,
    default_rows_per_shard,
    parse_shard_spec,
    parse_splits,
    plan_shards,
    select_job,
)

fractions = st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), weights=fractions)
def test_splits_partition_images_with_the_asked_sizes(n, weights):
    spec = ",".join(f"s{i}={w}" for i, w in enumerate(weights))
    split_fractions = parse_splits(spec)
    ids = [f"img_{i:03d}.png" for i in range(n)]
    if n < len(weights):
        with pytest.raises(ValueError, match="splits but there are"):
            assign_splits(ids, split_fractions)
        return
    splits = assign_splits(ids, split_fractions)
    everything = sorted(o for ordinals in splits.values() for o in ordinals)
    assert everything == list(range(n))  # every image in exactly one split
    for name, ordinals in splits.items():
        assert ordinals == sorted(ordinals) and len(ordinals) >= 1
        # largest-remainder rounding: within one image of the exact share, or raised to 1
        assert abs(len(ordinals) - split_fractions[name] * n) < len(weights) + 1


def test_split_of_an_image_does_not_depend_on_seed_or_order():
    ids = [f"photo/{i}.jpg" for i in range(50)]
    a = assign_splits(ids, parse_splits("train=0.8,test=0.2"))
    b = assign_splits(ids, parse_splits("train=0.8,test=0.2"))
    assert a == b
    assert [len(a["train"]), len(a["test"])] == [40, 10]


@settings(max_examples=40, deadline=None)
@given(
    n_images=st.integers(1, 30),
    per_image=st.integers(1, 5),
    rows=st.integers(1, 17),
    jobs=st.integers(1, 6),
)
def test_shards_cover_every_sample_once_and_jobs_partition_shards(n_images, per_image, rows, jobs):
    ids = [f"{i}" for i in range(n_images)]
    weights = "train=0.7,validation=0.3" if n_images >= 2 else "train"
    splits = assign_splits(ids, parse_splits(weights))
    shards = plan_shards(splits, per_image, rows)
    indices = [i for s in shards for i in s.indices()]
    assert sorted(indices) == list(range(n_images * per_image))
    for split, ordinals in splits.items():
        own = [s for s in shards if s.split == split]
        assert [s.number for s in own] == list(range(len(own)))
        assert all(s.count == len(own) for s in own)
        flat = [i for s in own for i in s.indices()]
        assert flat == sorted(flat)  # rows are in index order across a split's shards
        assert {i // per_image for i in flat} == set(ordinals)
        assert all(len(s.samples) <= rows for s in own)
    picked = [s.file_name for k in range(jobs) for s in select_job(shards, k, jobs)]
    assert sorted(picked) == sorted(s.file_name for s in shards)
    assert len(set(picked)) == len(picked)


def test_shard_file_names():
    shards = plan_shards({"train": [0, 1, 2]}, 2, 4)
    assert [s.file_name for s in shards] == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert shards[1].indices() == [4, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3/3", "0 <= k < n"),
        ("1", "k/n"),
        ("a/b", "k/n"),
        ("0/0", "0 <= k < n"),
    ],
)
def test_bad_shard_spec_is_named(text, message):
    with pytest.raises(ValueError, match=f"BuildConfig.shard.*{message}"):
        parse_shard_spec(text)


def test_shard_spec_and_splits_parse():
    assert parse_shard_spec(None) == (0, 1)
    assert parse_shard_spec(" 2/5 ") == (2, 5)
    assert parse_splits("train") == {"train": 1.0}
    assert parse_splits("train=3,test=1") == {"train": 0.75, "test": 0.25}
    for bad, message in [
        ("train=0.5,train=0.5", "twice"),
        ("train=-1", "must be > 0"),
        ("train=x", "needs a fraction"),
        ("9bad=1", "bad split name"),
        ("train,test", "needs a fraction"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_splits(bad)


def test_default_rows_per_shard_keeps_shards_under_500_mb():
    for crop in (64, 128, 256, 512, 1024, 2048):
        rows = default_rows_per_shard(crop, 4)
        worst = rows * (3 * crop * crop * (1 + 1 / 16) + 4096)
        assert rows >= 1 and worst < 500e6
    assert default_rows_per_shard(256, 4) % 100 == 0

"""SR training pairs: aligned patches, the same augmentation on both sides, fresh
degradations per epoch that replay from their records, stable batch types, samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from degkit import recipes
from degkit.captions import flat_columns
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.loaders import ShardDataset
from degkit.models.estimator import levels_from_flat, levels_from_records
from degkit.train.sr_data import (
    EpochSampler,
    EvalSampler,
    OnTheFlyPairs,
    PairedPatches,
    StepBatchSampler,
    WholePairs,
    collate_pairs,
    collate_patches,
    degrade_batch,
    dihedral,
    patch_geometry,
)

SCALE = 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("srdata") / "set"
    build_dataset(BuildConfig(recipe="deplsr", out=out, crop=64, seed=2, progress=False))
    return out


def _numpy_transform(image: np.ndarray, hflip: bool, turns: int) -> np.ndarray:
    """The reference: NumPy's flip and rot90 on a ``C x H x W`` array."""
    if hflip:
        image = image[:, :, ::-1]
    return np.rot90(image, turns, axes=(1, 2))


def test_paired_patches_are_the_stored_pair_cut_and_turned_alike(dataset):
    pairs = PairedPatches(dataset, SCALE, lr_patch=8, seed=7)
    full = ShardDataset(dataset, columns=["hr", "lr"], image_dtype=torch.uint8)
    n = len(pairs)
    for sample_id in (0, 3, n + 3, 5 * n + 1):
        sample = pairs[sample_id]
        row = full[sample_id % n]
        top, left, hflip, turns = patch_geometry(7, sample_id, (16, 16), 8, True)
        lr = row["lr"].numpy()[:, top : top + 8, left : left + 8]
        hr = row["hr"].numpy()[:, 4 * top : 4 * top + 32, 4 * left : 4 * left + 32]
        assert sample["lr"].dtype == sample["hr"].dtype == torch.uint8
        np.testing.assert_array_equal(sample["lr"].numpy(), _numpy_transform(lr, hflip, turns))
        np.testing.assert_array_equal(sample["hr"].numpy(), _numpy_transform(hr, hflip, turns))


def test_geometry_depends_on_seed_and_id_only_and_changes_across_epochs(dataset):
    n = len(PairedPatches(dataset, SCALE, 8))
    first = [patch_geometry(1, i, (16, 16), 8, True) for i in range(n)]
    assert first == [patch_geometry(1, i, (16, 16), 8, True) for i in range(n)]
    assert first != [patch_geometry(1, n + i, (16, 16), 8, True) for i in range(n)]
    assert {g[2:] for g in first} != {(False, 0)}
    assert {patch_geometry(1, i, (16, 16), 8, False)[2:] for i in range(n)} == {(False, 0)}


@given(
    seed=st.integers(-(2**70), 2**70),
    sample_id=st.integers(0, 2**50),
    size=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    patch=st.integers(1, 300),
    augment=st.booleans(),
)
def test_geometry_stays_inside_the_image(seed, sample_id, size, patch, augment):
    assume(patch <= min(size))
    top, left, hflip, turns = patch_geometry(seed, sample_id, size, patch, augment)
    assert 0 <= top <= size[0] - patch and 0 <= left <= size[1] - patch
    assert isinstance(hflip, bool) and turns in range(4)
    assert (top, left) == patch_geometry(seed, sample_id, size, patch, not augment)[:2]


def test_geometry_is_uniform_over_positions_and_the_eight_transforms():
    draws = 8000
    geometry = [patch_geometry(3, i, (12, 10), 8, True) for i in range(draws)]
    # 5 x 3 positions (jointly: top and left independent) and 8 transforms; the
    # chi-square bounds sit above the 99.99th percentiles (14 and 7 degrees of freedom)
    cells = [
        ([3 * g[0] + g[1] for g in geometry], 15, 45),
        ([4 * g[2] + g[3] for g in geometry], 8, 30),
    ]
    for values, k, bound in cells:
        count = np.bincount(values, minlength=k)
        expected = draws / k
        assert len(count) == k and ((count - expected) ** 2 / expected).sum() < bound, count


def test_patch_larger_than_the_image_is_refused(dataset):
    with pytest.raises(ValueError, match="lr_patch 32 is larger than the LR image"):
        PairedPatches(dataset, SCALE, lr_patch=32)[0]
    with pytest.raises(ValueError, match="not 2 x the LR"):
        PairedPatches(dataset, 2, lr_patch=8)[0]


def test_on_the_fly_degradation_replays_and_is_fresh_each_epoch(dataset):
    recipe = recipes.load("deplsr")
    pairs = OnTheFlyPairs(dataset, recipe, lr_patch=8, seed=11)
    n = len(pairs)
    now, later = pairs[2], pairs[n + 2]
    assert now["records"] != later["records"]
    hr = now["hr"][None].float().div(255)
    replayed = recipe.pipeline.replay(hr, [now["records"]], scale=SCALE).lr[0]
    assert torch.equal(replayed.clamp(0, 1).mul(255).round().to(torch.uint8), now["lr"])
    levels, present = levels_from_flat(flat_columns(now["records"]))
    assert now["levels"] == pytest.approx(levels)
    assert now["present"] == present
    assert torch.equal(pairs[2]["lr"], now["lr"])


def test_device_batches_replay_what_workers_planned_and_labelled(dataset, monkeypatch):
    recipe = recipes.load("realesrgan")
    ids = [0, 3, 5, 9]
    per_sample = OnTheFlyPairs(dataset, recipe, lr_patch=8, seed=5)
    planned = OnTheFlyPairs(dataset, recipe, lr_patch=8, seed=5, degrade=False)
    samples = collate_patches([planned[i] for i in ids])
    assert all(s["lr"] is None and s["records"] and s["fine_captions"] for s in samples)

    def no_planning(*args, **kwargs):
        raise AssertionError("degrade_batch planned a degradation: the workers do that")

    monkeypatch.setattr(type(recipe.pipeline), "plan", no_planning)
    batch = degrade_batch(samples, planned, torch.device("cpu"))
    monkeypatch.undo()
    expected = collate_pairs([per_sample[i] for i in ids])
    assert batch.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(batch[key], value), key
        else:
            assert batch[key] == value, key


def test_images_kept_in_memory_give_the_samples_of_the_stored_ones(dataset):
    recipe = recipes.load("deplsr")
    for make in (
        lambda cache_mb: PairedPatches(dataset, SCALE, 16, seed=4, cache_mb=cache_mb),
        lambda cache_mb: OnTheFlyPairs(dataset, recipe, 8, seed=4, cache_mb=cache_mb),
    ):
        cached, stored = make(1), make(0)
        assert cached.in_memory and not stored.in_memory and not make(1e-3).in_memory
        n = len(stored)
        for sample_id in (0, 5, n + 2, 3 * n + 7):
            sample, expected = cached[sample_id], stored[sample_id]
            assert sample.keys() == expected.keys()
            for key in ("lr", "hr"):
                assert sample[key].dtype == expected[key].dtype
                assert torch.equal(sample[key], expected[key])
            others = ("id", "index", "levels", "present", "fine_captions", "content_caption")
            others += ("records",)
            assert {k: sample[k] for k in others} == {k: expected[k] for k in others}
            sample["lr"].zero_(), sample["hr"].zero_()  # a sample is its own copy
            assert torch.equal(cached[sample_id]["hr"], expected["hr"])


def test_batches_have_the_same_types_and_workers_do_not_change_them(dataset):
    recipe = recipes.load("deplsr")
    for pairs in (PairedPatches(dataset, SCALE, 8, seed=3), OnTheFlyPairs(dataset, recipe, 8, 3)):
        batches = []
        for workers in (0, 2):
            loader = DataLoader(
                pairs,
                batch_size=4,
                sampler=EpochSampler(pairs, seed=3),
                num_workers=workers,
                collate_fn=collate_pairs,
            )
            batches.append(next(iter(loader)))
        serial, parallel = batches
        assert {k: type(v) for k, v in serial.items()} == {k: type(v) for k, v in parallel.items()}
        for key in ("lr", "hr", "id", "levels", "present"):
            assert torch.equal(serial[key], parallel[key])
        assert serial["lr"].shape == (4, 3, 8, 8) and serial["hr"].shape == (4, 3, 32, 32)
        assert serial["levels"].dtype == torch.float32 and serial["present"].dtype == torch.bool
        assert serial["levels"].shape == serial["present"].shape == (4, 5)
        samples = [pairs[int(i)] for i in serial["id"]]
        assert serial["levels"].tolist() == [torch.tensor(s["levels"]).tolist() for s in samples]
        assert serial["present"].tolist() == [s["present"] for s in samples]
        assert serial["fine_captions"] == parallel["fine_captions"]


def test_epoch_sampler_numbers_samples_by_epoch(dataset):
    pairs = PairedPatches(dataset, SCALE, 8)
    n = len(pairs)
    sampler = EpochSampler(pairs, seed=0)
    assert sorted(sampler) == list(range(n))
    assert sorted(sampler) == list(range(n, 2 * n))
    sampler.set_epoch(5)
    assert sorted(sampler) == list(range(5 * n, 6 * n))
    halves = [set(EpochSampler(pairs, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert not halves[0] & halves[1] and len(halves[0]) == len(halves[1]) == n // 2


@given(rows=st.integers(0, 50), world=st.integers(1, 5))
def test_eval_sampler_covers_every_row_exactly_once(rows, world):
    seen = [i for rank in range(world) for i in EvalSampler(rows, world, rank)]
    assert sorted(seen) == list(range(rows))


@given(seed=st.integers(0, 2**16), scale=st.sampled_from([2, 3, 4]))
def test_hr_stays_under_the_lr_after_the_same_flip_and_rotation(seed, scale):
    lr = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(seed))
    # nearest upsampling commutes with flips and rotations: an independent reference
    hr = lr.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    for hflip in (False, True):
        for turns in range(4):
            turned = dihedral(lr, hflip, turns)
            expected = turned.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
            assert torch.equal(dihedral(hr, hflip, turns), expected)


def test_dihedral_returns_a_contiguous_copy_even_of_a_whole_image():
    image = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4)
    for source in (image, image[:, 1:, 1:3]):
        for hflip in (False, True):
            for turns in range(4):
                turned = dihedral(source, hflip, turns)
                assert turned.is_contiguous() and turned.dtype == source.dtype
                expected = _numpy_transform(source.numpy(), hflip, turns)
                np.testing.assert_array_equal(turned.numpy(), expected)
                turned.zero_()
                assert torch.equal(image, torch.arange(24, dtype=torch.uint8).view(2, 3, 4))


def test_step_batches_resume_at_any_step_and_split_ranks(dataset):
    pairs = PairedPatches(dataset, SCALE, 8)
    n = len(pairs)

    def take(sampler, count):
        batches = iter(sampler)
        return [next(batches) for _ in range(count)]

    straight = take(StepBatchSampler(pairs, 4, seed=2), 12)
    per_epoch = n // 4
    assert all(len(b) == 4 for b in straight)
    assert {i // n for b in straight[:per_epoch] for i in b} == {0}
    assert {i // n for b in straight[per_epoch : 2 * per_epoch] for i in b} == {1}
    for start in (1, per_epoch, per_epoch + 1, 9):
        assert take(StepBatchSampler(pairs, 4, seed=2, start=start), 12 - start) == straight[start:]
    ranks = [take(StepBatchSampler(pairs, 2, 2, 0, 2, rank), 2) for rank in (0, 1)]
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}
    with pytest.raises(ValueError, match=f"batch size {n + 1} is larger than the {n} rows"):
        StepBatchSampler(pairs, n + 1)


def test_whole_pairs_are_the_stored_rows_in_the_training_layout(dataset):
    whole = WholePairs(dataset)
    full = ShardDataset(dataset, columns=["hr", "lr"], image_dtype=torch.uint8)
    sample = whole[3]
    assert sample["id"] == 3
    assert torch.equal(sample["lr"], full[3]["lr"]) and torch.equal(sample["hr"], full[3]["hr"])
    assert sample.keys() == PairedPatches(dataset, SCALE, 8)[3].keys()


def test_on_the_fly_levels_of_a_recipe_that_blurs_before_resizing(dataset):
    pairs = OnTheFlyPairs(dataset, recipes.load("realesrgan"), lr_patch=8, seed=1)
    sample = pairs[0]
    levels, present = levels_from_records(sample["records"], hr_size=(32, 32))
    assert sample["levels"] == pytest.approx(levels) and present[0]
    assert sample["present"] == present

"""Counter-based streams: a sample's draws depend only on (seed, index, path)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from degkit.rng import BatchStreams, SampleStream, derive_key, field_generator
from degkit.testing import indices, seeds


@given(seed=seeds(), idx=indices(max_n=6))
def test_draws_do_not_depend_on_batch_composition(seed: int, idx: list[int]) -> None:
    batch = BatchStreams(seed, idx, "stage1/blur")
    together = batch.uniform(0, 1)
    alone = torch.cat([BatchStreams(seed, [i], "stage1/blur").uniform(0, 1) for i in idx])
    assert torch.equal(together, alone)
    reversed_batch = BatchStreams(seed, idx[::-1], "stage1/blur").uniform(0, 1)
    assert torch.equal(reversed_batch.flip(0), together)


def _draws(seed: int, index: int, path: str) -> list[int]:
    stream = SampleStream(seed, index, path)
    return [stream.bits() for _ in range(4)]


def test_streams_differ_by_seed_index_and_path() -> None:
    base = _draws(1, 2, "a")
    assert base != _draws(2, 2, "a")
    assert base != _draws(1, 3, "a")
    assert base != _draws(1, 2, "b")
    assert base == _draws(1, 2, "a")
    assert len(set(base)) == 4


def test_stream_bits_are_keyed_blake2b_of_the_counter() -> None:
    """Independent reference: the documented construction, written out with hashlib."""
    key = derive_key("degkit", 5, 9, "stage1/blur").to_bytes(16, "little")
    expected = [
        int.from_bytes(
            hashlib.blake2b(k.to_bytes(8, "little"), digest_size=8, key=key).digest(), "little"
        )
        for k in range(3)
    ]
    stream = SampleStream(5, 9, "stage1/blur")
    assert [stream.bits() for _ in range(3)] == expected


def test_uniform_bits_pass_a_chi_square_test() -> None:
    u = BatchStreams(11, range(20000)).uniform(0.0, 1.0).numpy()
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    _, p_value = stats.chisquare(counts)
    assert p_value > 1e-4


@given(n=st.integers(1, 40), seed=seeds())
def test_integers_and_permutations_are_in_range(n: int, seed: int) -> None:
    rng = BatchStreams(seed, range(5))
    k = rng.integers(3, 3 + n - 1)
    assert ((k >= 3) & (k <= 3 + n - 1)).all()
    for order in rng.permutation(n):
        assert sorted(order) == list(range(n))


def test_permutations_are_uniform() -> None:
    """All 6 orders of 3 items are about equally likely."""
    orders = BatchStreams(2, range(6000)).permutation(3)
    counts = np.unique(np.array(orders), axis=0, return_counts=True)[1]
    assert len(counts) == 6
    _, p_value = stats.chisquare(counts)
    assert p_value > 1e-4


def test_child_and_subset_keep_each_sample_stream() -> None:
    batch = BatchStreams(7, [10, 11, 12]).child("noise")
    assert batch.path == "noise"
    first = batch.uniform(0, 1)
    second_all = batch.uniform(0, 1)
    fresh = BatchStreams(7, [10, 11, 12], "noise")
    fresh.uniform(0, 1)
    sub = fresh.subset([2, 0])
    assert torch.equal(sub.uniform(0, 1), second_all[[2, 0]])
    assert sub.indices == [12, 10]
    assert not torch.equal(first, second_all)


@given(p=st.floats(0.05, 0.95))
def test_bernoulli_frequency_matches_probability(p: float) -> None:
    n = 4000
    hits = BatchStreams(3, range(n)).bernoulli(p).double().mean().item()
    tolerance = 5 * (p * (1 - p) / n) ** 0.5
    assert abs(hits - p) < tolerance


def test_weighted_choice_frequencies() -> None:
    weights = [0.45, 0.25, 0.3]
    picks = BatchStreams(0, range(6000)).choice(3, weights)
    for k, w in enumerate(weights):
        freq = (picks == k).double().mean().item()
        assert abs(freq - w) < 5 * (w * (1 - w) / 6000) ** 0.5


def test_ranges_are_respected() -> None:
    rng = BatchStreams(0, range(2000))
    u = rng.uniform(2.0, 3.0)
    assert u.min() >= 2.0 and u.max() < 3.0
    k = rng.integers(7, 21)
    assert k.min() == 7 and k.max() == 21


def test_field_seeds_regenerate_the_same_field() -> None:
    seeds_ = BatchStreams(5, [0, 1]).field_seeds()
    assert seeds_.dtype == torch.int64 and seeds_[0] != seeds_[1]
    a = field_generator(int(seeds_[0])).standard_normal(16)
    b = field_generator(int(seeds_[0])).standard_normal(16)
    assert (a == b).all()


def test_grid_draws_cover_the_grid_evenly() -> None:
    values = BatchStreams(0, range(3000)).grid(0.2, 1.0, 0.1)
    grid = [round(0.2 + 0.1 * k, 9) for k in range(9)]
    counts = np.array([(values == g).sum().item() for g in grid])
    assert counts.sum() == 3000  # nothing off the grid, 1.0 included
    assert np.abs(counts / 3000 - 1 / 9).max() < 5 * np.sqrt((1 / 9) * (8 / 9) / 3000)

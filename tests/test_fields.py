"""Device noise fields: the documented generator, bit for bit, and its distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from degkit.ops.fields import field_draws, field_keys, field_normals, field_uniforms

MASK = (1 << 64) - 1
P_FAIL = 1e-6


def _mix_reference(x: int) -> int:
    """SplitMix64's finaliser on Python ints (unsigned 64-bit, written from its definition)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def _draws_reference(seed: int, count: int) -> list[int]:
    """The first ``count`` 32-bit draws of a field seed, as the module docstring defines them."""
    key = _mix_reference((seed & MASK) ^ 0x6465676B69742D66)
    draws = []
    for k in range((count + 1) // 2):
        word = _mix_reference((key + (k + 1) * 0x9E3779B97F4A7C15) & MASK)
        draws += [word >> 32, word & 0xFFFFFFFF]
    return draws[:count]


def test_splitmix_reference_matches_its_published_output() -> None:
    """SplitMix64 seeded with 0 starts 0xE220A8397B1DCDAF (the reference C code's output)."""
    assert _mix_reference(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF


@settings(max_examples=40, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4), count=st.integers(1, 9))
def test_draws_are_the_documented_generator(seeds: list[int], count: int) -> None:
    keys = field_keys(torch.tensor(seeds), "cpu")
    draws = field_draws(keys, count)
    assert draws.shape == (len(seeds), count)
    assert draws.tolist() == [_draws_reference(s, count) for s in seeds]


def test_normals_are_box_muller_of_the_draws() -> None:
    seed, count = 1234567, 11
    u = np.array(_draws_reference(seed, count + 1), dtype=np.float64)
    radius = np.sqrt(-2 * np.log((u[0::2] + 0.5) / 2**32))
    angle = 2 * np.pi * u[1::2] / 2**32
    expected = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).ravel()[:count]
    got = field_normals(field_keys(torch.tensor([seed]), "cpu"), count)[0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)


def test_uniforms_are_centred_on_the_draws() -> None:
    keys = field_keys(torch.tensor([5, 6]), "cpu")
    draws = field_draws(keys, 7).double()
    torch.testing.assert_close(field_uniforms(keys, 7), (draws + 0.5) / 2**32, rtol=0, atol=0)


def test_a_field_prefix_does_not_depend_on_the_count() -> None:
    keys = field_keys(torch.tensor([3, 99]), "cpu")
    long, short = field_normals(keys, 301), field_normals(keys, 100)
    assert torch.equal(long[:, :100], short)
    assert torch.equal(field_draws(keys, 301)[:, :99], field_draws(keys, 99))


def test_samples_and_seeds_get_different_fields() -> None:
    draws = field_draws(field_keys(torch.arange(64), "cpu"), 16)
    assert torch.unique(draws, dim=0).shape[0] == 64


def test_uniforms_are_uniform_and_normals_normal() -> None:
    keys = field_keys(torch.tensor([11, 12]), "cpu")
    u = field_uniforms(keys, 50_000).flatten().numpy()
    assert stats.kstest(u, "uniform").pvalue > P_FAIL
    z = field_normals(keys, 50_000).flatten().double().numpy()
    assert stats.kstest(z, "norm").pvalue > P_FAIL
    # consecutive values come from one word: they must be uncorrelated too
    r = np.corrcoef(z[0::2], z[1::2])[0, 1]
    assert abs(r) < stats.norm.ppf(1 - P_FAIL / 2) / math.sqrt(z.size / 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_equal_cpu_draws() -> None:
    seeds = torch.tensor([0, 1, 2**62, 987654321])
    cpu = field_draws(field_keys(seeds, "cpu"), 4097)
    cuda = field_draws(field_keys(seeds, "cuda"), 4097)
    assert torch.equal(cuda.cpu(), cpu)
    normals = field_normals(field_keys(seeds, "cuda"), 4097).cpu()
    torch.testing.assert_close(normals, field_normals(field_keys(seeds, "cpu"), 4097))

"""Leaderboard statistics: spread across seeds and paired-gain bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from degkit.evaluate.gains import paired_gain, seed_spread


def _entries(gains: np.ndarray, base: float = 30.0) -> tuple[dict, dict]:
    """``a`` and ``b`` with ``a - b == gains[seed, image]``."""
    b = {s: {f"img{i}": base + i for i in range(gains.shape[1])} for s in range(gains.shape[0])}
    a = {s: {k: v + gains[s, i] for i, (k, v) in enumerate(b[s].items())} for s in b}
    return a, b


def test_spread_matches_numpy():
    scores = [[1.0, 3.0], [2.0, 4.0], [6.0, 6.0]]
    spread = seed_spread(scores)
    means = np.array([2.0, 3.0, 6.0])
    assert spread.mean == pytest.approx(means.mean())
    assert spread.std == pytest.approx(means.std(ddof=1))
    assert (spread.min, spread.max, spread.seeds) == (2.0, 6.0, 3)
    assert seed_spread([[5.0]]).text() == "5.00"
    with pytest.raises(ValueError):
        seed_spread([])


@given(value=st.floats(-5, 5), seeds=st.integers(1, 4), images=st.integers(1, 20))
def test_a_constant_gain_has_a_zero_width_interval(value, seeds, images):
    gain = paired_gain(*_entries(np.full((seeds, images), value)), replicates=200)
    assert gain.low == pytest.approx(value) and gain.high == pytest.approx(value)
    assert gain.mean == pytest.approx(value)


def test_interval_covers_the_true_gain_about_as_often_as_promised():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        gains = 0.3 + rng.normal(0, 1.0, size=(3, 40))
        g = paired_gain(*_entries(gains), replicates=400, seed=trial)
        covered += g.low <= 0.3 <= g.high
    assert 0.85 <= covered / 200 <= 0.995


def test_verdicts_and_text():
    rng = np.random.default_rng(1)
    win = paired_gain(*_entries(1.0 + 0.1 * rng.normal(size=(3, 30))))
    loss = paired_gain(*_entries(-1.0 + 0.1 * rng.normal(size=(3, 30))))
    noise = rng.normal(size=(3, 30))
    unclear = paired_gain(*_entries(noise - noise.mean()))
    assert win.verdict == "better" and "(n.s.)" not in win.text()
    assert loss.verdict == "worse"
    assert unclear.low < 0 < unclear.high
    assert unclear.verdict == "no clear difference" and unclear.text().endswith("(n.s.)")


def test_same_seed_gives_the_same_interval_and_mismatches_are_refused():
    gains = np.random.default_rng(2).normal(size=(2, 10))
    assert paired_gain(*_entries(gains), seed=4) == paired_gain(*_entries(gains), seed=4)
    a, b = _entries(gains)
    with pytest.raises(ValueError, match="same seeds"):
        paired_gain(a, {0: b[0]})
    b[1].pop("img3")
    with pytest.raises(
        ValueError, match="seed 1: the two entries were not scored on the same images"
    ):
        paired_gain(a, b)

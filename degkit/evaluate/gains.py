"""Statistics for leaderboards over training seeds: spread, and paired gains with intervals.

An entry trained with several seeds has one score per (seed, test image).

* :func:`seed_spread`: the mean over images per seed, then their mean, sample
  standard deviation, minimum and maximum across seeds.
* :func:`paired_gain`: the gain of entry A over entry B (e.g. a prior over no
  prior, same backbone) is ``A - B`` per (seed, image), seeds paired by their
  number and images by their id. Its interval is a two-level percentile
  bootstrap: each replicate resamples the seeds and, independently, the images
  (both with replacement) and takes the mean gain over the resampled grid, so
  the interval reflects both the variation between training runs and between
  test images. A gain whose interval contains zero is not a win
  (:attr:`Gain.verdict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["Gain", "Spread", "paired_gain", "seed_spread"]


@dataclasses.dataclass(frozen=True)
class Spread:
    """Across seeds: mean, sample standard deviation (0 for one seed), min, max, seed count."""

    mean: float
    std: float
    min: float
    max: float
    seeds: int

    def text(self, digits: int = 2) -> str:
        """``mean ± std`` (``mean`` alone for one seed)."""
        if self.seeds == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def seed_spread(scores: Sequence[Sequence[float]]) -> Spread:
    """The spread across seeds of per-seed mean scores (``scores[seed][image]``).

    Raises:
        ValueError: no seed, or a seed without scores.
    """
    if not scores or any(len(s) == 0 for s in scores):
        raise ValueError("seed_spread needs at least one seed, each with at least one score")
    means = np.array([np.mean(s) for s in scores], dtype=np.float64)
    std = float(means.std(ddof=1)) if len(means) > 1 else 0.0
    return Spread(float(means.mean()), std, float(means.min()), float(means.max()), len(means))


@dataclasses.dataclass(frozen=True)
class Gain:
    """Mean paired gain of A over B and its bootstrap interval (see the module doc)."""

    mean: float
    low: float
    high: float
    confidence: float
    seeds: int
    images: int

    @property
    def verdict(self) -> str:
        """``"better"``, ``"worse"`` or ``"no clear difference"`` (the interval holds 0)."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no clear difference"

    def text(self, digits: int = 2) -> str:
        """``+0.12 [+0.03, +0.20]``, with ``(n.s.)`` when the interval holds zero."""
        body = f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"
        return body if self.verdict != "no clear difference" else f"{body} (n.s.)"


def paired_gain(
    a: Mapping[int, Mapping[str, float]],
    b: Mapping[int, Mapping[str, float]],
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
) -> Gain:
    """The gain of ``a`` over ``b`` (``{seed: {image id: score}}``), with its interval.

    Raises:
        ValueError: the two entries do not have the same seeds and image ids, or
            ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if sorted(a) != sorted(b) or not a:
        raise ValueError(
            f"paired_gain needs the same seeds on both sides, got {sorted(a)} and {sorted(b)}"
        )
    seeds = sorted(a)
    images = sorted(a[seeds[0]])
    for s in seeds:
        if sorted(a[s]) != images or sorted(b[s]) != images:
            raise ValueError(f"seed {s}: the two entries were not scored on the same images")
    if not images:
        raise ValueError("paired_gain needs at least one image")
    gains = np.array([[a[s][i] - b[s][i] for i in images] for s in seeds], dtype=np.float64)
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, len(seeds), size=(replicates, len(seeds)))
    image_draws = rng.integers(0, len(images), size=(replicates, len(images)))
    per_seed = gains[:, image_draws]  # seeds x replicates x images
    means = per_seed.mean(axis=2).T  # replicates x seeds
    boot = np.take_along_axis(means, seed_draws, axis=1).mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return Gain(
        float(gains.mean()),
        float(low),
        float(high),
        confidence,
        len(seeds),
        len(images),
    )

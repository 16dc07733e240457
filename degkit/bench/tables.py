"""Leaderboard tables: scores across seeds, gains of each prior, gains by severity.

Every number is computed from the per-image scores of :mod:`degkit.bench.results`:

* scores: per entry and set, the mean over test images for each seed, shown
  as the mean ± sample standard deviation across seeds
  (:func:`~degkit.evaluate.gains.seed_spread`);
* gains: per backbone, each prior's score minus the score of the same backbone
  without a prior (``none``), paired per seed and test image, with a two-level
  bootstrap interval (:func:`~degkit.evaluate.gains.paired_gain`); an interval
  that holds zero is marked ``(n.s.)``, not counted as a win. ``deplsr`` is
  also compared with ``regressor``;
* severity: the same gains on the severity sets, per degradation type and level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from degkit.bench.results import EvalRun, scores_by_seed, split_entry
from degkit.evaluate.gains import Gain, Spread, paired_gain, seed_spread

__all__ = [
    "COMPARISONS",
    "gain_rows",
    "gain_text",
    "score_rows",
    "severity_rows",
    "spread_text",
]

COMPARISONS = (
    ("deplsr", "none"),
    ("regressor", "none"),
    ("oracle-params", "none"),
    ("oracle-text", "none"),
    ("deplsr", "regressor"),
    ("oracle-text", "deplsr"),
    ("oracle-params", "regressor"),
)
"""(prior, against) pairs compared on the same backbone. The last two put each learned
prior against the oracle of its own route (the adaptor's embeddings against the true
captions through the same frozen CLIP; the regressor's levels against the true levels
through the same level embedding): the oracle bound."""

OVER_NONE = tuple(c for c in COMPARISONS if c[1] == "none")
"""The comparisons against no prior (the severity break-down shows these)."""


def _entries(runs: Sequence[EvalRun]) -> list[str]:
    return sorted({r.entry for r in runs}, key=lambda e: (e != "bicubic", e))


def _sets(runs: Sequence[EvalRun]) -> list[str]:
    return sorted({r.set for r in runs})


def score_rows(runs: Sequence[EvalRun], metric: str) -> list[dict[str, Any]]:
    """One row per entry: ``{"entry": name, set: Spread or None, ...}``."""
    rows = []
    for entry in _entries(runs):
        row: dict[str, Any] = {"entry": entry}
        for set_name in _sets(runs):
            scores = scores_by_seed(runs, entry, set_name, metric)
            row[set_name] = (
                seed_spread([list(s.values()) for s in scores.values()]) if scores else None
            )
        rows.append(row)
    return rows


def _backbones(runs: Sequence[EvalRun]) -> list[str]:
    return sorted({b for b, _ in map(split_entry, (r.entry for r in runs)) if b is not None})


def _gain(
    runs: Sequence[EvalRun],
    backbone: str,
    prior: str,
    against: str,
    set_name: str,
    metric: str,
    where: dict | None = None,
) -> Gain | None:
    a = scores_by_seed(runs, f"{backbone}+{prior}", set_name, metric, where)
    b = scores_by_seed(runs, f"{backbone}+{against}", set_name, metric, where)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return paired_gain({s: a[s] for s in common}, {s: b[s] for s in common})


def gain_rows(runs: Sequence[EvalRun], metric: str) -> list[dict[str, Any]]:
    """One row per (backbone, comparison) that has results: ``{set: Gain or None}``."""
    rows = []
    for backbone in _backbones(runs):
        for prior, against in COMPARISONS:
            gains = {s: _gain(runs, backbone, prior, against, s, metric) for s in _sets(runs)}
            if any(g is not None for g in gains.values()):
                rows.append({"backbone": backbone, "prior": prior, "against": against, **gains})
    return rows


def severity_rows(
    runs: Sequence[EvalRun], metric: str, levels: Sequence[str] = ("light", "medium", "heavy")
) -> list[dict[str, Any]]:
    """Gains over ``none`` on each severity set (``severity_*``), per level."""
    rows = []
    for set_name in [s for s in _sets(runs) if s.startswith("severity_")]:
        for backbone in _backbones(runs):
            for prior, against in OVER_NONE:
                gains = {
                    level: _gain(runs, backbone, prior, against, set_name, metric, {"level": level})
                    for level in levels
                }
                if any(g is not None for g in gains.values()):
                    rows.append({"set": set_name, "backbone": backbone, "prior": prior, **gains})
    return rows


def spread_text(value: Spread | None, digits: int = 2) -> str:
    """A table cell: ``mean ± std`` or ``-``."""
    return value.text(digits) if value is not None else "-"


def gain_text(value: Gain | None, digits: int = 2) -> str:
    """A table cell: ``+0.12 [+0.03, +0.20]`` or ``-``."""
    return value.text(digits) if value is not None else "-"

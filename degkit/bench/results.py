"""The evaluation results of a leaderboard run, read back from its folder.

A run evaluates every entry (``bicubic``, or a backbone with a prior) with
every training seed on every test set, each evaluation in its own folder
``<eval root>/<set>/<entry>/seed-<seed>/`` holding ``degkit eval``'s
``summary.json`` and ``per_image.csv``. :func:`collect_runs` finds them;
:func:`scores_by_seed` gives one entry's per-image scores as
``{seed: {image id: score}}``, the shape :mod:`degkit.evaluate.gains` takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from degkit.evaluate.summary import Summary

__all__ = ["EvalRun", "collect_runs", "entry_name", "scores_by_seed", "split_entry"]

SEED_PREFIX = "seed-"
ENTRY_JOIN = "+"


def entry_name(backbone: str | None, prior: str | None) -> str:
    """``bicubic`` (no backbone) or ``<backbone>+<prior>``."""
    return "bicubic" if backbone is None else f"{backbone}{ENTRY_JOIN}{prior}"


def split_entry(name: str) -> tuple[str | None, str | None]:
    """The (backbone, prior) of an entry name (``(None, None)`` for bicubic)."""
    if ENTRY_JOIN not in name:
        return None, None
    backbone, prior = name.split(ENTRY_JOIN, 1)
    return backbone, prior


@dataclasses.dataclass(frozen=True)
class EvalRun:
    """One finished evaluation: entry, seed, set and its folder."""

    entry: str
    seed: int
    set: str
    folder: Path

    @property
    def summary(self) -> Summary:
        """The evaluation's ``summary.json``."""
        return Summary.read(self.folder / "summary.json")

    def per_image(self) -> pd.DataFrame:
        """The evaluation's per-image scores (one row per test pair)."""
        return pd.read_csv(self.folder / "per_image.csv", dtype={"id": str})


def collect_runs(root: str | Path) -> list[EvalRun]:
    """Every finished evaluation under ``root`` (those with a ``summary.json``), sorted."""
    runs = []
    for summary in sorted(Path(root).glob(f"*/*/{SEED_PREFIX}*/summary.json")):
        folder = summary.parent
        seed = int(folder.name[len(SEED_PREFIX) :])
        runs.append(EvalRun(folder.parent.name, seed, folder.parent.parent.name, folder))
    return runs


def scores_by_seed(
    runs: Sequence[EvalRun], entry: str, set_name: str, metric: str, where: dict | None = None
) -> dict[int, dict[str, float]]:
    """``{seed: {image id: score}}`` of one entry on one set (rows matching ``where``)."""
    out: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.entry != entry or run.set != set_name:
            continue
        table = run.per_image()
        for column, value in (where or {}).items():
            table = table[table[column].astype(str) == str(value)]
        out[run.seed] = dict(zip(table["id"], table[metric].astype(float), strict=True))
    return out

"""Leaderboard figures (matplotlib, Agg): per-set bars, and metric against severity level.

The severity figures read each result's per-image CSV and need its ``type``
and ``level`` columns (written for severity sets); other sets get bars only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from degkit.evaluate.leaderboard import Leaderboard

__all__ = ["draw_figures", "LEVEL_ORDER"]

LEVEL_ORDER = ("light", "medium", "heavy")


def draw_figures(board: Leaderboard, folder: Path) -> dict[str, list[Path]]:
    """Write the PNGs of ``board`` into ``folder``; returns their paths per set."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: [_bars(board, name, folder), *_severity(board, name, folder)] for name in board.sets
    }


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _bars(board: Leaderboard, set_name: str, folder: Path) -> Path:
    """One panel per metric: a bar per method, the best in orange, axis zoomed to the values."""
    import matplotlib.pyplot as plt

    from degkit.evaluate.leaderboard import format_score

    columns = [(i, c) for i, c in enumerate(board.columns) if c.set == set_name]
    fig, axes = plt.subplots(
        1, len(columns), figsize=(3.4 * len(columns), 1.0 + 0.4 * len(board.methods)), squeeze=False
    )
    for ax, (i, c) in zip(axes[0], columns, strict=True):
        best = board.best(i)
        values = [board.values.get((m, i)) for m in board.methods]
        numbers = [v for v in values if isinstance(v, float)]
        colors = ["tab:orange" if m in best else "tab:blue" for m in board.methods]
        bars = ax.barh(
            board.methods, [v if isinstance(v, float) else 0.0 for v in values], color=colors
        )
        ax.bar_label(bars, [format_score(v) for v in values], fontsize=7, padding=2)
        if numbers:
            lo, hi = min(numbers), max(numbers)
            pad = (hi - lo) * 0.6 or abs(hi) * 0.05 or 1.0
            ax.set_xlim(lo - pad, hi + pad)
            ax.ticklabel_format(axis="x", useOffset=False)
        ax.set_title(c.label, fontsize=9)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{set_name}: means (best in orange)", fontsize=10)
    fig.tight_layout()
    path = folder / f"{_safe(set_name)}_bars.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _severity(board: Leaderboard, set_name: str, folder: Path) -> list[Path]:
    """Rows: degradation types; columns: metrics; a line per method over the levels."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from degkit.evaluate.leaderboard import ARROW

    tables = {}
    for (method, s), (path, summary) in board.summaries.items():
        csv = path.parent / summary.per_image_csv
        if s == set_name and csv.is_file():
            table = pd.read_csv(csv, dtype={"id": str})
            if {"type", "level"} <= set(table.columns):
                tables[method] = table
    columns = [
        c
        for c in board.columns
        if c.set == set_name and any(c.metric in t.columns for t in tables.values())
    ]
    if not columns:
        return []
    types = sorted({t for table in tables.values() for t in table["type"].dropna().unique()})
    fig, axes = plt.subplots(
        len(types), len(columns), figsize=(3.2 * len(columns), 2.6 * len(types)), squeeze=False
    )
    for row, kind in enumerate(types):
        for ax, c in zip(axes[row], columns, strict=True):
            for method, table in tables.items():
                if c.metric not in table.columns:
                    continue
                means = table[table["type"] == kind].groupby("level")[c.metric].mean()
                levels = [lv for lv in LEVEL_ORDER if lv in means.index]
                levels += sorted(set(means.index) - set(LEVEL_ORDER))
                ax.plot(levels, [means[lv] for lv in levels], marker="o", label=method)
            ax.set_title(f"{kind}: {c.metric} {ARROW.get(c.direction, '')}", fontsize=9)
            ax.tick_params(labelsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{set_name}: mean by severity level", fontsize=10)
    fig.tight_layout()
    path = folder / f"{_safe(set_name)}_severity.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]

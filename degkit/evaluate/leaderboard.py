"""Merge evaluation summaries into a leaderboard: md, csv, json and a self-contained html.

Rows are methods, columns are (set, metric); the best value of each column is
marked (highest or lowest, per the metric's direction; ties all marked). The
footer lists every metric's protocol and every set's content hash. Results are
only merged when they are comparable: one hash per set name, one protocol per
(set, metric), one result per (method, set).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from degkit.data.state import write_text_atomic
from degkit.evaluate.summary import Summary

__all__ = ["Column", "Leaderboard", "load_leaderboard", "write_leaderboard", "format_score"]

ARROW = {"higher": "↑", "lower": "↓"}


@dataclasses.dataclass(frozen=True)
class Column:
    """One (set, metric) column with what makes its numbers comparable."""

    set: str
    metric: str
    direction: str
    set_hash: str
    protocol: dict[str, Any]

    @property
    def label(self) -> str:
        """``set metric ↑``."""
        return f"{self.set} {self.metric_label}"

    @property
    def metric_label(self) -> str:
        """``metric ↑`` (or ``↓`` where lower is better)."""
        return f"{self.metric} {ARROW.get(self.direction, '')}".strip()


@dataclasses.dataclass
class Leaderboard:
    """Merged results: methods x columns, with n/a texts and provenance."""

    methods: list[str]
    columns: list[Column]
    values: dict[tuple[str, int], float | str]  # (method, column index) -> mean | "n/a (...)"
    summaries: dict[tuple[str, str], tuple[Path, Summary]]  # (method, set) -> where, what
    sets: dict[str, dict[str, Any]]  # set name -> describe()
    command: str | None = None  # how the leaderboard was made, shown in its header

    def set_columns(self, set_name: str) -> list[int]:
        """Indices of the columns of one set, in order."""
        return [i for i, c in enumerate(self.columns) if c.set == set_name]

    def best(self, index: int) -> list[str]:
        """Methods holding the best value of column ``index`` (ties: all)."""
        numbers = {
            m: v
            for m in self.methods
            if isinstance(v := self.values.get((m, index)), float) and math.isfinite(v)
        }
        if not numbers:
            return []
        pick = max if self.columns[index].direction == "higher" else min
        top = pick(numbers.values())
        return [m for m, v in numbers.items() if v == top]


def format_score(value: float | str | None) -> str:
    """A mean with 4 significant-ish decimals; n/a texts pass through; missing is '-'."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return "n/a"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def load_leaderboard(paths: Sequence[str | Path]) -> Leaderboard:
    """Read ``summary.json`` files and check they can share one table."""
    if not paths:
        raise ValueError("leaderboard: no result files given")
    board = Leaderboard([], [], {}, {}, {})
    index: dict[tuple[str, str], int] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such result file")
        summary = Summary.read(path)
        method, set_name = summary.model["name"], summary.set["name"]
        if (method, set_name) in board.summaries:
            other = board.summaries[method, set_name][0]
            raise ValueError(f"{path}: a second result of {method} on {set_name} (first: {other})")
        known = board.sets.setdefault(set_name, summary.set)
        if known["hash"] != summary.set["hash"]:
            raise ValueError(
                f"{path}: set {set_name} has hash {summary.set['hash'][:12]}..., other results "
                f"used {known['hash'][:12]}...; results on different set contents do not compare"
            )
        board.summaries[method, set_name] = (path, summary)
        if method not in board.methods:
            board.methods.append(method)
        for metric, result in summary.metrics.items():
            column = Column(
                set_name, metric, result["direction"], known["hash"], result["protocol"]
            )
            i = index.setdefault((set_name, metric), len(board.columns))
            if i == len(board.columns):
                board.columns.append(column)
            elif board.columns[i] != column:
                raise ValueError(
                    f"{path}: {metric} on {set_name} was computed with another protocol "
                    f"({result['protocol']} vs {board.columns[i].protocol})"
                )
            board.values[method, i] = result["na"] if result["mean"] is None else result["mean"]
    order = sorted(
        range(len(board.columns)), key=lambda i: list(board.sets).index(board.columns[i].set)
    )
    remap = {old: new for new, old in enumerate(order)}
    board.columns = [board.columns[i] for i in order]
    board.values = {(m, remap[i]): v for (m, i), v in board.values.items()}
    return board


def write_leaderboard(
    results: Sequence[str | Path], out: str | Path, command: str | None = None
) -> list[Path]:
    """Write ``leaderboard.{md,csv,json,html}`` and ``figures/*.png`` to ``out``; returns them.

    ``command``, if given, is recorded in every file as the way to remake it.
    """
    from degkit.evaluate.leaderboard_figures import draw_figures
    from degkit.evaluate.leaderboard_html import leaderboard_html

    board = load_leaderboard(results)
    board.command = command
    out = Path(out)
    figures = draw_figures(board, out / "figures")
    written = [path for paths in figures.values() for path in paths]
    for name, text in (
        ("leaderboard.md", _markdown(board, figures, out)),
        ("leaderboard.csv", _csv(board)),
        ("leaderboard.json", json.dumps(_json(board), indent=1) + "\n"),
        ("leaderboard.html", leaderboard_html(board, figures)),
    ):
        write_text_atomic(out / name, text)
        written.append(out / name)
    return written


def _json(board: Leaderboard) -> dict[str, Any]:
    return {
        "command": board.command,
        "columns": [
            {**dataclasses.asdict(c), "best": board.best(i)} for i, c in enumerate(board.columns)
        ],
        "methods": [
            {
                "name": m,
                "model": next(s.model for (mm, _), (_, s) in board.summaries.items() if mm == m),
                "results": {
                    f"{c.set}/{c.metric}": board.values.get((m, i))
                    for i, c in enumerate(board.columns)
                },
                "summaries": {
                    set_name: str(path)
                    for (mm, set_name), (path, _) in board.summaries.items()
                    if mm == m
                },
            }
            for m in board.methods
        ],
        "sets": board.sets,
    }


def _csv(board: Leaderboard) -> str:
    import pandas as pd

    rows = []
    for i, c in enumerate(board.columns):
        best = board.best(i)
        for m in board.methods:
            value = board.values.get((m, i))
            rows.append(
                {
                    "method": m,
                    "set": c.set,
                    "metric": c.metric,
                    "direction": c.direction,
                    "value": value if isinstance(value, float) else None,
                    "na": value if isinstance(value, str) else "",
                    "best": m in best,
                    "set_hash": c.set_hash,
                    "protocol": json.dumps(c.protocol, sort_keys=True),
                }
            )
    return pd.DataFrame(rows).to_csv(index=False)


def cell_text(board: Leaderboard, method: str, index: int) -> str:
    """A table cell: the formatted score, with ``**`` around the column's best."""
    text = format_score(board.values.get((method, index)))
    return f"**{text}**" if method in board.best(index) else text


def footer_lines(board: Leaderboard) -> list[str]:
    """Protocol of every metric column and hash of every set, one line each."""
    lines = ["Sets (content sha256):", ""]
    lines += [
        f"- {name}: {d['hash']} (n={d.get('n')}, x{d.get('scale')})"
        for name, d in board.sets.items()
    ]
    lines += ["", "Metric protocols:", ""]
    seen: set[tuple[str, str]] = set()
    for c in board.columns:
        text = json.dumps(c.protocol, sort_keys=True)
        if (c.metric, text) not in seen:
            seen.add((c.metric, text))
            lines.append(f"- {c.metric} ({c.direction} is better): {text}")
    return lines


def set_heading(board: Leaderboard, set_name: str) -> str:
    """``name (n=36, x4, hash 47cff38b790a783b)``."""
    d = board.sets[set_name]
    return f"{set_name} (n={d.get('n')}, x{d.get('scale')}, hash {d['hash'][:16]})"


def _markdown(board: Leaderboard, figures: dict[str, list[Path]], out: Path) -> str:
    lines = [
        "# Leaderboard",
        "",
        "Means over each set; rows are methods, columns metrics; the best of each column in "
        "bold (↑ higher is better, ↓ lower). Metric protocols and full set hashes at the end.",
    ]
    if board.command:
        lines += ["", f"Made by: `{board.command}`"]
    for set_name in board.sets:
        columns = board.set_columns(set_name)
        header = ["method", *[board.columns[i].metric_label for i in columns]]
        lines += ["", f"## {set_heading(board, set_name)}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for m in board.methods:
            cells = [cell_text(board, m, i) for i in columns]
            lines.append("| " + " | ".join([m, *cells]) + " |")
        lines.append("")
        lines += [f"![{f.stem}]({f.relative_to(out).as_posix()})" for f in figures[set_name]]
    na = sorted({v for v in board.values.values() if isinstance(v, str)})
    if na:
        lines += ["", "## n/a", ""] + [f"- {text}" for text in na]
    lines += ["", "## Provenance", ""]
    lines += [model_line(board, m) for m in board.methods]
    lines += ["", *footer_lines(board)]
    return "\n".join(lines) + "\n"


def model_line(board: Leaderboard, method: str) -> str:
    """``- method: what it is; per set: n, device, seconds``."""
    runs = [(name, s) for (m, name), (_, s) in board.summaries.items() if m == method]
    model = runs[0][1].model
    what = [model["kind"]]
    what += [model[k] for k in ("architecture", "definition") if model.get(k)]
    if model.get("checkpoint_sha256"):
        what.append(f"checkpoint sha256 {model['checkpoint_sha256']}")
    what.append(f"{model.get('parameters')} parameters")
    per_set = [
        f"{name} n={s.n} on {s.device} in {s.wall_seconds:.1f} s "
        f"(degkit {s.degkit_version} @ {(s.git_commit or 'no git')[:12]})"
        for name, s in runs
    ]
    return f"- {method}: {', '.join(what)}; " + "; ".join(per_set)

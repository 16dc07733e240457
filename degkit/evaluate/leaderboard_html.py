"""The leaderboard as one self-contained HTML file: sortable table, embedded PNGs."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from degkit.evaluate.leaderboard import Leaderboard

__all__ = ["leaderboard_html"]

STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { cursor: pointer; background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; background: #fff3cd; }
img { max-width: 100%; display: block; margin: 1em 0; }
footer { font-size: 0.85em; color: #444; margin-top: 2em; }
"""

# Click a header to sort by that column (numbers numerically, n/a last); click again to reverse.
SORT_JS = """
document.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.up !== "1";
  th.dataset.up = up ? "1" : "0";
  const key = r => {
    const v = r.cells[col].dataset.v;
    return v === undefined ? r.cells[col].textContent : v === "" ? NaN : +v;
  };
  const cmp = (a, b) =>
    typeof a === "string" ? a.localeCompare(b) : isNaN(a) ? 1 : isNaN(b) ? -1 : a - b;
  [...body.rows].sort((a, b) => (up ? 1 : -1) * cmp(key(a), key(b)))
    .forEach(r => body.appendChild(r));
}));
"""


def leaderboard_html(board: Leaderboard, figures: list[Path]) -> str:
    """The HTML text: table with best cells marked, figures as base64 PNG, footer."""
    from degkit.evaluate.leaderboard import footer_lines, format_score, model_line

    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ["method", *[c.label for c in board.columns]])
    rows = []
    for m in board.methods:
        cells = [f"<td>{esc(m)}</td>"]
        for i in range(len(board.columns)):
            value = board.values.get((m, i))
            number = repr(value) if isinstance(value, float) else ""
            best = ' class="best"' if m in board.best(i) else ""
            title = f' title="{esc(value)}"' if isinstance(value, str) else ""
            text = esc(format_score(value))
            cells.append(f'<td{best} data-v="{number}"{title}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    images = [
        f'<img alt="{esc(f.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(f.read_bytes()).decode()}">'
        for f in figures
    ]
    lines = [
        "Methods:",
        "",
        *[model_line(board, m) for m in board.methods],
        "",
        *footer_lines(board),
    ]
    footer = "<br>\n".join(esc(line) for line in lines)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>degkit leaderboard</title>
<style>{STYLE}</style></head>
<body>
<h1>Leaderboard</h1>
<p>Means over each set; best per column highlighted (↑ higher is better, ↓ lower).
Click a column header to sort.</p>
<table><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<h2>Figures</h2>
{chr(10).join(images)}
<footer>{footer}</footer>
<script>{SORT_JS}</script>
</body></html>
"""

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

# Click a header to sort its table by that column (numbers numerically, n/a always last);
# click again to reverse.
SORT_JS = """
document.querySelectorAll("th").forEach(th => th.addEventListener("click", () => {
  const col = th.cellIndex, body = th.closest("table").tBodies[0], up = th.dataset.up !== "1";
  th.dataset.up = up ? "1" : "0";
  const key = r => {
    const v = r.cells[col].dataset.v;
    return v === undefined ? r.cells[col].textContent : v === "" ? null : +v;
  };
  const cmp = (a, b) => a === null ? (b === null ? 0 : 1) : b === null ? -1
    : (up ? 1 : -1) * (typeof a === "string" ? a.localeCompare(b) : a - b);
  [...body.rows].sort((a, b) => cmp(key(a), key(b))).forEach(r => body.appendChild(r));
}));
"""


def leaderboard_html(board: Leaderboard, figures: dict[str, list[Path]]) -> str:
    """The HTML text: a table per set with best cells marked, figures as base64 PNG, footer."""
    from degkit.evaluate.leaderboard import footer_lines, model_line, set_heading

    sections = []
    for set_name in board.sets:
        sections.append(f"<h2>{html.escape(set_heading(board, set_name))}</h2>")
        sections.append(_table(board, board.set_columns(set_name)))
        sections += [_image(f) for f in figures[set_name]]
    lines = [
        "Methods:",
        "",
        *[model_line(board, m) for m in board.methods],
        "",
        *footer_lines(board),
    ]
    footer = "<br>\n".join(html.escape(line) for line in lines)
    if board.command:
        sections.insert(0, f"<p>Made by: <code>{html.escape(board.command)}</code></p>")
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>degkit leaderboard</title>
<style>{STYLE}</style></head>
<body>
<h1>Leaderboard</h1>
<p>Means over each set; rows are methods, columns metrics; the best of each column
highlighted (↑ higher is better, ↓ lower). Click a column header to sort;
hover an n/a cell for the reason.</p>
{body}
<footer>{footer}</footer>
<script>{SORT_JS}</script>
</body></html>
"""


def _table(board: Leaderboard, columns: list[int]) -> str:
    from degkit.evaluate.leaderboard import format_score

    esc = html.escape
    labels = ["method", *[board.columns[i].metric_label for i in columns]]
    head = "".join(f"<th>{esc(h)}</th>" for h in labels)
    rows = []
    for m in board.methods:
        cells = [f"<td>{esc(m)}</td>"]
        for i in columns:
            value = board.values.get((m, i))
            number = repr(value) if isinstance(value, float) else ""
            best = ' class="best"' if m in board.best(i) else ""
            title = f' title="{esc(value)}"' if isinstance(value, str) else ""
            cells.append(f'<td{best} data-v="{number}"{title}>{esc(format_score(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows)
    return f"<table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'

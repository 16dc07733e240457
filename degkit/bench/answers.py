"""The leaderboard's questions answered in words, from its score and gain tables.

Per backbone, over the sets of one metric:

* does ``deplsr`` beat ``none``, and does it beat ``regressor``? Counted per
  set by the gain's verdict (better: the whole 95% interval above 0; worse:
  below 0; otherwise no clear difference), with the first set's gain shown;
* does the oracle bound the learned priors from above? Each learned prior is
  set against the oracle of its own route, so that only the estimate differs:
  ``oracle-text`` (the adaptor's content embedding with the true fine captions
  through its frozen text tower) against ``deplsr`` (the adaptor's content and
  per-type embeddings of the LR image), and
  ``oracle-params`` (the true levels) against ``regressor`` (its estimated
  levels, through the same level embedding). Counted per set by the verdict
  of the per-image gain, as above; the bound holds on a set unless the oracle
  is clearly worse there;
* is the SR network at all better than bicubic upsampling of the LR image?
  (``none`` against ``bicubic``, mean scores; a short training run can leave it
  below, which bounds what any prior can show).

No statistics beyond the tables': the sentences only count what they show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from degkit.evaluate.gains import Gain

__all__ = ["answer_lines"]

VERDICTS = ("better", "worse", "no clear difference")


def _row(rows: Sequence[dict[str, Any]], backbone: str, prior: str, against: str) -> dict | None:
    for row in rows:
        if (row["backbone"], row["prior"], row["against"]) == (backbone, prior, against):
            return row
    return None


def _verdicts(row: dict[str, Any], sets: Sequence[str]) -> str:
    gains: list[Gain] = [row[s] for s in sets if row.get(s) is not None]
    counts = {v: sum(g.verdict == v for g in gains) for v in VERDICTS}
    parts = [f"{v} on {counts[v]}" for v in VERDICTS if counts[v]]
    first = next((s for s in sets if row.get(s) is not None), None)
    shown = f"; {first}: {row[first].text(3)}" if first else ""
    return f"{', '.join(parts)} of {len(gains)} sets{shown}"


ORACLE_OF = {"deplsr": "oracle-text", "regressor": "oracle-params"}
"""Each learned prior's oracle: the same route into the SR network, fed the truth."""


def _oracle_bound(rows: Sequence[dict[str, Any]], backbone: str, sets: Sequence[str]) -> list[str]:
    facts = []
    for learned, oracle in ORACLE_OF.items():
        row = _row(rows, backbone, oracle, learned)
        if row is None:
            continue
        gains = [row[s] for s in sets if row.get(s) is not None]
        held = sum(g.verdict != "worse" for g in gains)
        facts.append(
            f"oracle bound, {oracle} against {learned}: {_verdicts(row, sets)}; "
            f"the bound holds on {held} of {len(gains)} sets"
        )
    return facts


def _against_bicubic(scores: Sequence[dict[str, Any]], backbone: str, sets: Sequence[str]) -> str:
    by_entry = {row["entry"]: row for row in scores}
    none, bicubic = by_entry.get(f"{backbone}+none"), by_entry.get("bicubic")
    if none is None or bicubic is None:
        return ""
    both = [s for s in sets if none.get(s) is not None and bicubic.get(s) is not None]
    above = sum(none[s].mean > bicubic[s].mean for s in both)
    return f"{backbone}+none scores above bicubic on {above} of {len(both)} sets"


def answer_lines(
    scores: Sequence[dict[str, Any]],
    gains: Sequence[dict[str, Any]],
    metric: str,
    sets: Sequence[str],
) -> list[str]:
    """Markdown bullet lines answering the leaderboard's questions for ``metric``
    (``scores`` / ``gains``: :func:`~degkit.bench.tables.score_rows` /
    :func:`~degkit.bench.tables.gain_rows` of that metric)."""
    lines = []
    for backbone in sorted({row["backbone"] for row in gains}):
        facts = [_against_bicubic(scores, backbone, sets)]
        for prior, against in (("deplsr", "none"), ("deplsr", "regressor")):
            row = _row(gains, backbone, prior, against)
            if row is not None:
                facts.append(f"{prior} against {against}: {_verdicts(row, sets)}")
        facts += _oracle_bound(gains, backbone, sets)
        lines += [f"- `{backbone}`, {metric}:"] + [f"  - {fact}" for fact in facts if fact]
    return lines

"""Write a test set as PNG files, so methods outside degkit can be run on it.

``export_set(test_set, out)`` writes ``out/LR/<id>.png``, ``out/HR/<id>.png``
(paired sets) and ``out/set.json``: :meth:`TestSet.describe` plus, per pair,
its id, file names and meta. PNGs are lossless, so they decode back to the
pairs' pixels exactly. ``set.json`` is written first: a folder holding it with
the same name and hash is an (maybe interrupted) export of the same set and is
completed; any other non-empty folder is refused, so nothing is overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from degkit.data.state import write_bytes_atomic, write_text_atomic
from degkit.data.work import encode_png
from degkit.evaluate.sets import TestSet

__all__ = ["export_set"]


def _check_target(test_set: TestSet, out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file, not a folder")
    if not any(out.iterdir()):
        return
    try:
        previous = json.loads((out / "set.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    same = (previous.get("name"), previous.get("hash")) == (test_set.name, test_set.hash)
    if not same:
        raise ValueError(
            f"output folder {str(out)!r} is not empty and is not an export of set "
            f"{test_set.name!r} "
            f"(hash {test_set.hash[:16]}); choose an empty or new folder"
        )


def export_set(test_set: TestSet, out: str | Path) -> int:
    """Write the set's PNGs and ``set.json`` into ``out``; return the number of pairs."""
    out = Path(out)
    _check_target(test_set, out)
    pairs = test_set.pairs()
    entries = []
    for pair in pairs:
        entry = {"id": pair.id, "lr": f"LR/{pair.id}.png", "meta": pair.meta}
        if pair.hr is not None:
            entry["hr"] = f"HR/{pair.id}.png"
        entries.append(entry)
    info = {**test_set.describe(), "pairs": entries}
    write_text_atomic(out / "set.json", json.dumps(info, indent=1) + "\n")
    for pair in pairs:
        write_bytes_atomic(out / "LR" / f"{pair.id}.png", encode_png(pair.lr))
        if pair.hr is not None:
            write_bytes_atomic(out / "HR" / f"{pair.id}.png", encode_png(pair.hr))
    return len(pairs)

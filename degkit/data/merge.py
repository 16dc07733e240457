"""``degkit merge``: join the parts of a split build (``--shard k/n``) into one dataset.

The parts must come from one build: the same fingerprint (recipe hash, seed,
source ids, every content setting; k and n are not part of it). Together they
must hold every planned shard exactly once, finished. Everything is checked
before anything is written, and an error names the part folder and what
differs or is missing. ``--out`` must be new, empty or this build's merge
folder; a folder of other files is refused. Shards are hard-linked into ``--out`` where the file
system allows, else copied (to a temporary name, then renamed), and the card
and ``skipped.jsonl`` are written from the merged shards as a single build
would write them. A killed merge can be rerun: shards already in ``--out`` are
kept.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from degkit.data.jobs import recorded_jobs
from degkit.data.shards import temp_path
from degkit.data.state import (
    OutputState,
    check_out_folder,
    empty_marker_path,
    finished_shard_meta,
    read_build_info,
    settings_differences,
)

__all__ = ["MergeSummary", "merge_parts"]


@dataclasses.dataclass
class MergeSummary:
    """What a merge did: shards (and their rows) taken from the parts, linked or copied."""

    out: Path
    parts: int
    shards: int
    linked: int
    copied: int
    rows: int

    def text(self) -> str:
        """A one-line human summary."""
        return (
            f"merged {self.parts} parts into {self.out}: {self.shards} shards "
            f"({self.linked} hard-linked, {self.copied} copied), {self.rows} rows"
        )


def _with_out(command: str, out: Path) -> str:
    """The canonical build command with its ``--out`` replaced."""
    args = shlex.split(command)
    args[args.index("--out") + 1] = str(out)
    return shlex.join(args)


def _check_same_build(parts: Sequence[Path], infos: Sequence[dict[str, Any]]) -> None:
    first, reference = parts[0], infos[0]
    for part, info in zip(parts[1:], infos[1:], strict=True):
        if info["fingerprint"] != reference["fingerprint"]:
            changes = settings_differences(reference["settings"], info["settings"])
            raise ValueError(
                f"part {str(part)!r} is not of the same build as part {str(first)!r} ({changes})"
            )


def _missing_hint(position: int, parts: Sequence[Path]) -> str:
    jobs = {part: recorded_jobs(part) for part in parts}
    for part, part_jobs in jobs.items():
        for k, n in part_jobs:
            if position % n == k:
                return (
                    f"part {str(part)!r} (job {k} of {n}) has not finished it; "
                    "resume its build (BuildConfig.resume=True)"
                )
    sizes = {n for part_jobs in jobs.values() for _, n in part_jobs}
    if len(sizes) == 1:
        n = sizes.pop()
        return f"no part given is job {position % n} of {n}"
    return "no part given holds it"


def _owners(
    parts: Sequence[Path], info: dict[str, Any], out: Path
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """``file -> (part, shard metadata)`` of every shard ``out`` still needs; checks coverage."""
    fingerprint = info["fingerprint"]
    owners: dict[str, tuple[Path, dict[str, Any]]] = {}
    missing: list[int] = []
    for position, planned in enumerate(info["shards"]):
        file = planned["file"]
        found = [
            (part, meta)
            for part in parts
            if (meta := finished_shard_meta(part, file, fingerprint)) is not None
        ]
        if len(found) > 1:
            raise ValueError(
                f"shard {file} is in part {str(found[0][0])!r} and in part "
                f"{str(found[1][0])!r}; give each shard's part once"
            )
        if found:
            owners[file] = found[0]
        elif finished_shard_meta(out, file, fingerprint) is None:
            missing.append(position)
    if missing:
        first = info["shards"][missing[0]]["file"]
        more = f" (and {len(missing) - 1} more shards)" if len(missing) > 1 else ""
        raise ValueError(f"shard {first}{more} is in no part: {_missing_hint(missing[0], parts)}")
    return owners


def _link_or_copy(source: Path, target: Path) -> bool:
    """Put ``source`` at ``target`` atomically; True if hard-linked, False if copied."""
    tmp = temp_path(target)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        linked = True
    except OSError:
        shutil.copyfile(source, tmp)
        linked = False
    os.replace(tmp, target)
    return linked


def merge_parts(parts: Sequence[str | Path], out: str | Path) -> MergeSummary:
    """Join the part folders into the dataset folder ``out``; see the module doc.

    Raises:
        FileNotFoundError: a part is not a built dataset folder.
        ValueError: the parts differ, overlap or leave a shard out, or ``out``
            is one of the parts, a file, or a folder of other files or another build.
    """
    from degkit.data.build import finalize

    parts = [Path(p) for p in parts]
    out = Path(out)
    if not parts:
        raise ValueError("degkit merge needs at least one part folder")
    seen: dict[Path, Path] = {}
    for part in parts:
        if part.resolve() == out.resolve():
            raise ValueError(f"output folder {str(out)!r} is one of the parts; choose a new folder")
        if part.resolve() in seen:
            raise ValueError(f"part {str(part)!r} is given twice")
        seen[part.resolve()] = part
    check_out_folder(out)
    infos = [read_build_info(part) for part in parts]
    _check_same_build(parts, infos)
    info = {**infos[0], "command": _with_out(infos[0]["command"], out)}
    try:
        existing = read_build_info(out)["fingerprint"]
    except FileNotFoundError:
        existing = None
    if existing not in (None, info["fingerprint"]):
        raise ValueError(
            f"output folder {str(out)!r} holds another build; choose a new folder for the merge"
        )
    owners = _owners(parts, info, out)
    OutputState.open(out, info)
    linked = 0
    for file, (part, meta) in owners.items():
        if meta["num_rows"]:
            linked += _link_or_copy(part / file, out / file)
        else:  # every sample of the shard was skipped: only its marker exists
            linked += _link_or_copy(empty_marker_path(part, file), empty_marker_path(out, file))
    finalize(out)
    rows = sum(meta["num_rows"] for _, meta in owners.values())
    return MergeSummary(out, len(parts), len(owners), linked, len(owners) - linked, rows)

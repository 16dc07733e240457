"""The output folder of a build and what is already done in it.

Layout::

    OUT/README.md              dataset card (rewritten at the end of every run)
    OUT/skipped.jsonl          images left out, with the reason
    OUT/data/*.parquet         the shards
    OUT/.degkit/build.json     settings, fingerprint, canonical command, planned shards
    OUT/.degkit/empty/*.json   metadata of shards whose every sample was skipped
    OUT/.degkit/jobs/*.json    the jobs of a split build (--shard k/n) that wrote here

The *fingerprint* hashes every setting that changes the content. A folder
holding another fingerprint is never written into, unless that build wrote no
shard file at all (a first run that failed, or one whose every image was
skipped): then its settings are replaced and its markers forgotten. A build
goes only into a new or empty folder or one holding a degkit build, never into
a folder of other files.

A shard counts as done when its parquet file is readable, carries this
fingerprint and holds the row count its metadata promises (or when its empty
marker exists). Every file is written to a temporary name and renamed, so a
killed build leaves only whole files behind plus, at worst, one
``data/.<shard>.tmp`` that the next run deletes (or, if killed while rewriting
the card, a hidden ``.<file>.tmp-<pid>`` that nothing reads or uploads).

Nothing the build cannot prove it wrote is ever deleted: besides its own
temporary files, a file at a shard's path is replaced only when its parquet
metadata carries this build's fingerprint. Any other file in the way (a
user's file, another build's shard, a shard damaged beyond reading) stops the
build with an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from degkit.data.plan import ShardPlan
from degkit.data.shards import read_shard_fingerprint, read_shard_meta, temp_path

__all__ = [
    "OutputState",
    "fingerprint_of",
    "write_bytes_atomic",
    "write_text_atomic",
    "read_build_info",
    "finished_shard_meta",
    "check_out_folder",
    "empty_marker_path",
    "settings_differences",
]

STATE_DIR = ".degkit"


def fingerprint_of(settings: dict[str, Any]) -> str:
    """Short hex hash of the content-defining settings."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it to ``path``.

    The temporary file is removed if writing fails (e.g. the disk is full).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary sibling, then rename it to ``path``."""
    write_bytes_atomic(path, text.encode("utf-8"))


def read_build_info(out: Path) -> dict[str, Any]:
    """The ``build.json`` of a built folder (settings, fingerprint, command, shards)."""
    path = Path(out) / STATE_DIR / "build.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(out)!r} is not a degkit dataset (no {STATE_DIR}/build.json)")
    info = json.loads(path.read_text(encoding="utf-8"))
    settings = info.get("settings") if isinstance(info, dict) else None
    missing = [k for k in _INFO_KEYS if not isinstance(info, dict) or k not in info]
    columns = settings.get("flat_columns") if isinstance(settings, dict) else None
    if (
        missing
        or not isinstance(columns, dict)
        or not all(isinstance(c, dict) for c in columns.values())
    ):
        what = f"no {', '.join(missing)}" if missing else "flat columns in an older form"
        raise ValueError(
            f"{str(path)!r} was not written by this degkit version ({what}); rebuild the dataset"
        )
    return info


_INFO_KEYS = ("settings", "fingerprint", "command", "shards")


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that holds no degkit build.

    A folder whose only entry is ``.degkit`` (a build killed while recording
    its settings) counts as a build.

    Raises:
        ValueError: ``out`` is not a folder degkit may write into.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"BuildConfig.out {str(out)!r} is a file, not a folder")
    if not out.is_dir() or (out / STATE_DIR).is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        raise ValueError(
            f"BuildConfig.out {str(out)!r} is not empty and holds no degkit build "
            f"(it has {shown}); "
            "choose a new or empty folder"
        )


def empty_marker_path(out: Path, file: str) -> Path:
    """Where the marker of the shard ``file`` with no rows lives."""
    return Path(out) / STATE_DIR / "empty" / (Path(file).stem + ".json")


def finished_shard_meta(out: Path, file: str, fingerprint: str) -> dict[str, Any] | None:
    """Metadata (with ``num_rows``) of a finished shard of the build ``fingerprint``, or None."""
    marker = empty_marker_path(out, file)
    if marker.is_file():
        meta = json.loads(marker.read_text(encoding="utf-8"))
        meta["num_rows"] = 0
    else:
        meta = read_shard_meta(Path(out) / file)
    if meta is None or meta.get("fingerprint") != fingerprint:
        return None
    return meta


class OutputState:
    """Opens an output folder for one build (one fingerprint) and tracks finished shards."""

    def __init__(self, out: Path, info: dict[str, Any], replaced: str | None = None) -> None:
        self.out = Path(out)
        self.info = info
        self.fingerprint = info["fingerprint"]
        self.replaced = replaced

    @classmethod
    def open(cls, out: Path, info: dict[str, Any]) -> OutputState:
        """Check the folder holds this build or nothing, and record ``build.json``.

        When the settings of an earlier build that wrote no shard file are
        replaced, :attr:`replaced` says which settings changed (else it is None).

        Raises:
            ValueError: the folder is not degkit's, or holds shards of a build
                with other settings.
        """
        out = Path(out)
        check_out_folder(out)
        try:
            previous = read_build_info(out)
        except FileNotFoundError:
            previous = None
        replaced = None
        if previous is not None and previous["fingerprint"] != info["fingerprint"]:
            changes = settings_differences(previous["settings"], info["settings"])
            if _shard_files(out):
                raise ValueError(
                    f"BuildConfig.out {str(out)!r} holds a build with other settings ({changes}); "
                    "choose another BuildConfig.out or repeat the original options"
                )
            _forget_shards(out, info["fingerprint"])
            replaced = changes
        if previous is None or replaced is not None:
            write_text_atomic(out / STATE_DIR / "build.json", json.dumps(info, indent=1) + "\n")
        (out / "data").mkdir(parents=True, exist_ok=True)
        return cls(out, info, replaced)

    def path_of(self, shard: ShardPlan) -> Path:
        """Final path of a shard's parquet file."""
        return self.out / shard.file_name

    def _marker(self, shard: ShardPlan) -> Path:
        return empty_marker_path(self.out, shard.file_name)

    def shard_meta(self, shard: ShardPlan) -> dict[str, Any] | None:
        """Metadata of a finished shard of this build, or None."""
        return finished_shard_meta(self.out, shard.file_name, self.fingerprint)

    def has_any_trace(self, shard: ShardPlan) -> bool:
        """Whether anything of this shard (file, temp file or marker) exists."""
        path = self.path_of(shard)
        return path.exists() or temp_path(path).exists() or self._marker(shard).exists()

    def owns_file(self, shard: ShardPlan) -> bool:
        """Whether the file at the shard's path carries this build's fingerprint."""
        return read_shard_fingerprint(self.path_of(shard)) == self.fingerprint

    def check_foreign(self, shards: list[ShardPlan]) -> None:
        """Refuse to start when a file this build did not write lies at one of its shard paths.

        Raises:
            ValueError: names the first such file.
        """
        for shard in shards:
            path = self.path_of(shard)
            if (path.exists() or path.is_symlink()) and not self.owns_file(shard):
                raise ValueError(
                    f"BuildConfig.out {str(self.out)!r} holds {shard.file_name}, "
                    "which does not carry "
                    "this build's fingerprint (a file it did not write, or one damaged beyond "
                    "reading); degkit deletes only files it can prove it wrote, so move it away"
                )

    def discard_partial(self, shard: ShardPlan) -> None:
        """Delete a shard's temp file and an unfinished file of this build in its place.

        Raises:
            ValueError: the file in its place is not this build's (see :meth:`check_foreign`).
        """
        path = self.path_of(shard)
        temp_path(path).unlink(missing_ok=True)
        if path.exists() and self.shard_meta(shard) is None:
            self.check_foreign([shard])
            path.unlink()

    def mark_empty(self, shard: ShardPlan, meta: dict[str, Any]) -> None:
        """Record a shard with no rows (every sample skipped)."""
        write_text_atomic(self._marker(shard), json.dumps(meta, sort_keys=True) + "\n")


def _shard_files(out: Path) -> list[Path]:
    """Parquet and temporary shard files under ``out/data``."""
    data = out / "data"
    if not data.is_dir():
        return []
    return sorted(data.glob("*.parquet")) + sorted(data.glob(".*.tmp"))


def _forget_shards(out: Path, fingerprint: str) -> None:
    """Delete the markers (empty shards, split-build jobs) of builds other than ``fingerprint``.

    Markers of ``fingerprint`` itself stay: another job of the same split build
    may have written them already.
    """
    for kind in ("empty", "jobs"):  # jobs: see degkit.data.jobs
        for marker in (out / STATE_DIR / kind).glob("*.json"):
            if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") != fingerprint:
                marker.unlink(missing_ok=True)


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``key: old -> new`` for every setting that differs, joined by ``; ``."""
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed) or "different fingerprint"

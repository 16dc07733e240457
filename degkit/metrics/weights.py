"""Where metric weights must be, whether they are there, and a guard against downloads.

pyiqa downloads missing weights when a metric is created; degkit never lets it:
missing files are found before pyiqa runs and reported with their name and folder.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from degkit.metrics.table import MetricSpec, RequiredFile


class DownloadBlocked(RuntimeError):
    """pyiqa or a backbone loader tried to download a file (never allowed)."""


def _torch_hub_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir())


def folder_of(file: RequiredFile) -> Path:
    """Folder where ``file`` must be; resolved now from $TORCH_HOME / $HF_HOME."""
    if file.folder == "pyiqa":
        return _torch_hub_dir() / "pyiqa"
    if file.folder == "checkpoints":
        return _torch_hub_dir() / "checkpoints"
    if file.folder == "clip":
        return _torch_hub_dir() / "clip"
    if file.folder.startswith("hf:"):
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    raise ValueError(f"unknown weights folder kind {file.folder!r}")


def _is_present(file: RequiredFile) -> bool:
    if not file.folder.startswith("hf:"):
        return (folder_of(file) / file.name).is_file()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo_id=file.folder[3:], filename=file.name, cache_dir=folder_of(file)
    )
    return isinstance(found, str)


def _describe_missing(file: RequiredFile) -> str:
    if file.folder.startswith("hf:"):
        return (
            f"put {file.name} of Hugging Face repo {file.folder[3:]} ({file.what}) "
            f"in the Hugging Face cache {folder_of(file)}"
        )
    return f"put {file.name} ({file.what}) in {folder_of(file)}/"


def _module_problem(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any import failure makes the metric unusable
        return f"python package {module!r} not importable ({type(error).__name__}: {error})"
    return None


def missing_requirements(spec: MetricSpec) -> str | None:
    """``None`` when everything ``spec`` needs is local, else what is missing and where."""
    problems = [p for p in map(_module_problem, spec.required_modules) if p]
    absent = [_describe_missing(f) for f in spec.required_files if not _is_present(f)]
    parts = []
    if problems:
        parts.append("dependency missing: " + "; ".join(problems))
    if absent:
        parts.append("weights missing: " + "; ".join(absent))
    return "; ".join(parts) or None


def _refuse_download(url: str, dst: str, *args: object, **kwargs: object) -> None:
    target = Path(dst)
    raise DownloadBlocked(f"put {target.name} in {target.parent}/ (pyiqa asked for {url})")


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Within the block, torch.hub / pyiqa / Hugging Face downloads fail at once.

    pyiqa's weights folder follows the current $TORCH_HOME (pyiqa fixes it at import).
    """
    import torch.hub
    from huggingface_hub import constants as hf_constants
    from pyiqa.utils import download_util

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch.hub, "download_url_to_file", _refuse_download))
        stack.enter_context(
            mock.patch.object(download_util, "download_url_to_file", _refuse_download)
        )
        stack.enter_context(
            mock.patch.object(
                download_util, "DEFAULT_CACHE_DIR", os.fspath(_torch_hub_dir() / "pyiqa")
            )
        )
        stack.enter_context(mock.patch.object(hf_constants, "HF_HUB_OFFLINE", True))
        yield

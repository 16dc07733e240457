"""Where the files degkit ships beside its code (recipes, test sets, leaderboard configs) lie."""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_dir"]

PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(installed_name: str, repo_folder: str) -> Path:
    """A repository folder that a wheel installs as ``degkit/<installed_name>``.

    In a wheel install that package folder (see pyproject.toml); in a source
    checkout the repository's own ``repo_folder`` (e.g. ``"benchmarks/sets"``).
    """
    installed = PACKAGE_DIR / installed_name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / repo_folder

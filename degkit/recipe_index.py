"""Names, scales, hashes and descriptions of the shipped recipes, fast.

A recipe's hash covers each op's version and the fields it sets away from the
op's defaults, so computing it builds the ops, which imports torch (seconds). ``degkit recipes``
lists the shipped recipes from a small JSON cache instead
(``$XDG_CACHE_HOME/degkit/recipe_index.json``, default ``~/.cache``), valid
while its key matches: the SHA-256 of the degkit version, every Python file of
the package and every shipped recipe file. Any edit to the code or a recipe
changes the key, and the next listing recomputes (and rewrites) the cache; a
cache that cannot be read or written is simply recomputed. This module itself
imports neither torch nor numpy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import degkit
from degkit.shipped import shipped_dir

__all__ = ["RECIPES_DIR", "RecipeSummary", "available", "cache_path", "summaries"]

PACKAGE_DIR = Path(degkit.__file__).resolve().parent


RECIPES_DIR = shipped_dir("recipe_files", "recipes")


@dataclasses.dataclass(frozen=True)
class RecipeSummary:
    """One line of ``degkit recipes``: what :func:`degkit.recipes.load` would report."""

    name: str
    scale: int
    hash: str
    description: str


def available(folder: Path = RECIPES_DIR) -> list[str]:
    """Names of the recipes (``*.yaml``) in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def cache_path() -> Path:
    """Where the listing cache lives (``$XDG_CACHE_HOME/degkit/recipe_index.json``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "degkit" / "recipe_index.json"


def _cache_key(folder: Path) -> str:
    """SHA-256 of the degkit version, every degkit source file, and every recipe in
    ``folder`` and the shipped folder (which ``extends`` can name)."""
    digest = hashlib.sha256(degkit.__version__.encode())
    recipes = set(RECIPES_DIR.glob("*.yaml")) | set(Path(folder).glob("*.yaml"))  # extends
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(recipes)
    for file in files:
        digest.update(str(file).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _compute(folder: Path) -> list[RecipeSummary]:
    from degkit import recipes  # builds the ops: imports torch

    out = []
    for name in available(folder):
        recipe = recipes.load(Path(folder) / f"{name}.yaml")
        out.append(RecipeSummary(name, recipe.scale, recipe.hash, recipe.description))
    return out


def _read_cache(path: Path, key: str) -> list[RecipeSummary] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return [RecipeSummary(**item) for item in data["recipes"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def summaries(folder: Path = RECIPES_DIR, cache: Path | None = None) -> list[RecipeSummary]:
    """Every recipe in ``folder`` (name order), from the cache when it is current.

    Args:
        folder: recipe folder (default: the shipped recipes).
        cache: cache file (default :func:`cache_path`).
    """
    cache = cache or cache_path()
    key = _cache_key(folder)
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    computed = _compute(folder)
    from degkit.data.state import write_text_atomic

    text = json.dumps({"key": key, "recipes": [dataclasses.asdict(s) for s in computed]})
    with contextlib.suppress(OSError):  # a read-only home: list without caching
        write_text_atomic(cache, text)
    return computed

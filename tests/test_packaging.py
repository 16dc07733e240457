"""Packaging: every subpackage is listed in pyproject.toml and the recipes ship with it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import degkit
from degkit import recipes

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    package_root = Path(degkit.__file__).parent
    found = {
        ".".join(("degkit", *init.parent.relative_to(package_root).parts))
        for init in package_root.rglob("__init__.py")
    }
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "degkit.recipe_files" in listed


def test_recipes_folder_is_the_shipped_one() -> None:
    assert sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml")) == recipes.available()

"""Packaging: every subpackage is listed in pyproject.toml; the recipes and test sets ship."""

from __future__ import annotations

import tomllib
from pathlib import Path

import degkit
from degkit import recipes
from degkit.evaluate import sets

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
    assert "degkit.set_files" in listed


def test_shipped_data_folders_are_package_data() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["degkit.set_files"] == "benchmarks/sets"
    assert setuptools["package-data"]["degkit.set_files"] == ["*.yaml"]


def test_recipes_folder_is_the_shipped_one() -> None:
    assert sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml")) == recipes.available()


def test_sets_folder_is_the_shipped_one() -> None:
    assert sorted(p.stem for p in (ROOT / "benchmarks" / "sets").glob("*.yaml")) == (
        sets.available_sets()
    )

"""pyproject.toml's version floors: every dependency has one, and the installed versions
satisfy them, so a floor raised above what this environment runs (and so never tested
here) fails loudly instead of shipping unchecked.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())[
    "project"
]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
EXTRAS = {
    extra: [Requirement(text) for text in items if not text.startswith("degkit")]
    for extra, items in PROJECT["optional-dependencies"].items()
}


def _floor(requirement: Requirement) -> str | None:
    floors = [s.version for s in requirement.specifier if s.operator == ">="]
    return floors[0] if len(floors) == 1 else None


@pytest.mark.parametrize("requirement", RUNTIME + sum(EXTRAS.values(), []), ids=str)
def test_every_dependency_has_one_floor(requirement):
    assert _floor(requirement) is not None, f"{requirement}: give exactly one >= floor"


@pytest.mark.parametrize("requirement", RUNTIME, ids=str)
def test_installed_runtime_dependency_meets_its_floor(requirement):
    installed = importlib.metadata.version(requirement.name)  # not installed: fails here
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed, below the floor {requirement}: "
        "the floor was not tested in this environment"
    )


@pytest.mark.parametrize("requirement", [r for items in EXTRAS.values() for r in items], ids=str)
def test_installed_optional_dependency_meets_its_floor(requirement):
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{requirement.name} (optional) is not installed")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed, below the floor {requirement}"
    )

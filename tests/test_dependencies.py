"""Dependencies as they are used: every import of degkit/ is declared, every requirement used.

An import is fine when its module is in the standard library, in degkit, in a
core dependency, or in an extra and *guarded*: imported inside a function, in
a ``try`` block, or in a module whose package calls ``degkit.extras.require``
for it first (a clear "pip install 'degkit[extra]'" error instead of a bare
``ModuleNotFoundError``).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from degkit.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "degkit"
# Declared though not imported by name: the embedded photos of degkit.data.sources are
# files of scikit-image, pyiqa and matplotlib; spandrel reads .safetensors checkpoints
# through safetensors.
NOT_IMPORTED = {"scikit-image", "pyiqa", "matplotlib", "safetensors"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(s) for s in project["dependencies"]}
    extras = {
        extra: {_requirement_name(s) for s in specs if not s.startswith("degkit")}
        for extra, specs in project["optional-dependencies"].items()
    }
    return core, extras


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(top-level module, guarded)`` of every absolute import in a file."""
    tree = ast.parse(path.read_text())
    guarded_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try):
            guarded_nodes.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(name.split(".")[0], id(node) in guarded_nodes) for name in names]
    return found


def _required_by_package(path: Path) -> set[str]:
    """Modules a file's package ``__init__`` (or the file itself) checks with ``require``."""
    texts = [path.read_text(), (path.parent / "__init__.py").read_text()]
    return {m for text in texts for m in re.findall(r'require\(\s*"([\w.]+)"', text)}


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_canonical(d) for d in _module_distributions().get(module, [])}


def test_every_import_is_declared_or_guarded() -> None:
    core, extras = _declared()
    optional = set().union(*extras.values())
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, guarded in _imports(path):
            if module == "degkit" or module in sys.stdlib_module_names:
                continue
            dists = _distributions(module)
            where = path.relative_to(ROOT)
            if dists & core:
                continue
            if not dists & optional:
                problems.append(f"{where}: {module} ({sorted(dists)}) is not declared")
            elif not guarded and module not in _required_by_package(path):
                problems.append(f"{where}: optional {module} is imported unguarded")
    assert not problems, "\n".join(problems)


def test_every_requirement_is_used() -> None:
    core, extras = _declared()
    imported = {
        dist
        for path in PACKAGE.rglob("*.py")
        for module, _ in _imports(path)
        for dist in _distributions(module)
    }
    required = {
        m
        for path in PACKAGE.rglob("*.py")
        for m in re.findall(r'require\(\s*"([\w.]+)"', path.read_text())
    }
    imported |= {d for module in required for d in _distributions(module.split(".")[0])}
    benchmarks = {
        dist
        for path in (ROOT / "benchmarks").rglob("*.py")
        for module, _ in _imports(path)
        for dist in _distributions(module)
    }
    assert core - imported - NOT_IMPORTED == set()
    for extra, names in extras.items():
        if extra in ("dev", "ray"):
            continue  # test tools; ray is checked by its own engine's tests
        used = benchmarks if extra == "bench" else imported
        assert names <= used, f"[{extra}] lists {sorted(names - used)}, which nothing imports"


def test_dev_extra_declares_what_the_tests_import() -> None:
    core, extras = _declared()
    declared = core | set().union(*extras.values())
    helpers = {p.stem for p in (ROOT / "tests").glob("*.py")}  # tests/ is on sys.path
    problems = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for module, _ in _imports(path):
            if module in ("degkit", *helpers) or module in sys.stdlib_module_names:
                continue
            if not _distributions(module) & declared:
                problems.append(f"{path.name}: {module} is in no requirement of degkit[dev]")
    assert not problems, "\n".join(problems)


def test_a_missing_extra_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtra, match=r"pip install 'degkit\[caption\]'"):
        require("transformers", "caption", "BuildConfig.captioner")

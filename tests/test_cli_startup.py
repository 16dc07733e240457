"""Start-up cost of the command line: ``--help`` and ``degkit recipes`` load no torch.

Import checks, not timings: a fresh interpreter (given the module names to look
for as arguments) parses ``--help`` (of every
sub-command too) and lists the recipes from a warm cache, then reports which
heavy modules it imported. The recipe listing cache is checked against
:func:`degkit.recipes.load` and against edits of the recipe files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from degkit import recipe_index, recipes

HEAVY = ("torch", "numpy", "PIL", "pyarrow", "pandas", "kornia", "cv2", "datasets", "scipy")

HELP_PROBE = """
import contextlib, io, json, sys
from degkit.cli import build_parser

parser = build_parser()
names = list(parser._subparsers._group_actions[0].choices)
texts = {}
for argv in [["--help"]] + [[name, "--help"] for name in names]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    texts[" ".join(argv)] = out.getvalue()
heavy = sorted(m for m in sys.argv[1:] if m in sys.modules)
print(json.dumps({"names": names, "texts": texts, "heavy": heavy}))
"""

LIST_PROBE = """
import sys
from degkit.cli import main

code = main(["recipes"])
print("HEAVY " + ",".join(sorted(m for m in sys.argv[1:] if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, check=True
    )


def test_help_of_every_command_loads_no_heavy_module(tmp_path):
    report = json.loads(_run(["-c", HELP_PROBE, *HEAVY], tmp_path).stdout)
    assert report["heavy"] == []
    names = report["names"]
    assert {"ops", "recipes", "preview", "build", "info", "push"} <= set(names)
    top = report["texts"]["--help"]
    assert all(name in top for name in names)  # every sub-command is listed
    assert all(report["texts"][f"{name} --help"].startswith("usage:") for name in names)


def test_recipes_listing_is_cached_and_matches_load(tmp_path):
    cold = _run(["-m", "degkit.cli", "recipes"], tmp_path)
    warm = _run(["-c", LIST_PROBE, *HEAVY], tmp_path)
    assert warm.stdout == cold.stdout
    assert "HEAVY \n" in warm.stderr  # the warm listing imported none of HEAVY
    rows = [line.split()[:3] for line in warm.stdout.splitlines()]
    assert [name for name, _, _ in rows] == recipes.available()
    for name, scale, short_hash in rows:
        recipe = recipes.load(name)
        assert (scale, short_hash) == (f"x{recipe.scale}", recipe.hash[:16])


def _reference(folder: Path) -> list[recipe_index.RecipeSummary]:
    return [
        recipe_index.RecipeSummary(r.name, r.scale, r.hash, r.description)
        for r in (recipes.load(p) for p in sorted(folder.glob("*.yaml")))
    ]


def test_cache_follows_recipe_edits_and_survives_bad_caches(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    for name in ("single_blur", "realesrgan_x2"):  # realesrgan_x2 extends realesrgan
        shutil.copy(recipes.RECIPES_DIR / f"{name}.yaml", folder)
    cache = tmp_path / "cache" / "index.json"
    first = recipe_index.summaries(folder, cache)
    assert first == _reference(folder)
    assert cache.is_file()

    def no_load(*args, **kwargs):
        raise AssertionError("a current cache must not rebuild the recipes")

    with monkeypatch.context() as m:
        m.setattr(recipes, "load", no_load)
        assert recipe_index.summaries(folder, cache) == first

    blur = folder / "single_blur.yaml"
    blur.write_text(blur.read_text().replace("sigma: [2.0, 3.0]", "sigma: [2.0, 3.5]"))
    edited = recipe_index.summaries(folder, cache)
    assert edited == _reference(folder)
    assert edited[1].hash != first[1].hash and edited[0] == first[0]

    cache.write_text("{not json")
    assert recipe_index.summaries(folder, cache) == edited
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert recipe_index.summaries(folder, blocked / "index.json") == edited  # unwritable

"""Leaderboard files: best markers per metric direction, hashes, embedded figures, merge rules."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from eval_fakes import mae_rgb, psnr_rgb, tiny_set, unavailable_metric

from degkit.evaluate.leaderboard import format_score, write_leaderboard
from degkit.evaluate.run import evaluate

METHODS = ("nearest", "bicubic", "lanczos")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    sets = [tiny_set(n=6, scale=2, name="alpha"), tiny_set(n=6, scale=2, seed=1, name="beta")]
    paths, summaries = [], {}
    for s in sets:
        for method in METHODS:
            out = root / s.name / method
            metrics = [psnr_rgb(), mae_rgb(), unavailable_metric()]
            summaries[method, s.name] = evaluate(s, method, metrics, out, progress=False)
            paths.append(out / "summary.json")
    return paths, summaries, sets


@pytest.fixture(scope="module")
def board(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("board")
    return out, write_leaderboard(results[0], out)


def _expected_best(summaries, set_name, metric, pick):
    scores = {m: summaries[m, set_name].scores[metric] for m in METHODS}
    return pick(scores, key=scores.get)


def test_files_mark_the_best_per_direction(results, board):
    _, summaries, sets = results
    out, written = board
    names = {p.name for p in written}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html"} <= names
    table = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    board = json.loads((out / "leaderboard.json").read_text())
    md = (out / "leaderboard.md").read_text()
    html = (out / "leaderboard.html").read_text()
    sections = {part.split(" ", 1)[0]: part for part in md.split("\n## ")[1:]}
    for s in sets:
        md_rows = {
            line.split(" | ")[0].strip("| "): line
            for line in sections[s.name].splitlines()
            if line.startswith("| ")
        }
        for metric, pick in (("psnr_rgb", max), ("mae_rgb", min)):
            best = _expected_best(summaries, s.name, metric, pick)
            flagged = [
                r["method"]
                for r in table
                if (r["set"], r["metric"], r["best"]) == (s.name, metric, "True")
            ]
            assert flagged == [best]
            column = next(
                c for c in board["columns"] if (c["set"], c["metric"]) == (s.name, metric)
            )
            assert column["best"] == [best]
            assert column["set_hash"] == s.hash
            value = format_score(summaries[best, s.name].scores[metric])
            assert f"**{value}**" in md_rows[best]
            assert re.search(rf'<td class="best" data-v="[^"]+">{re.escape(value)}</td>', html)
            assert f"{s.name} (n=6, x2, hash {s.hash[:16]})" in md
    # n/a metric: never a number, never best
    na = [r for r in table if r["metric"] == "lpips_fake"]
    assert all(
        r["value"] == "" and r["na"].startswith("n/a (") and r["best"] == "False" for r in na
    )
    assert md.count("**") == 2 * 2 * len(sets)  # one bold cell per numeric column


def test_footer_has_hashes_and_protocols_and_html_is_self_contained(results, board):
    _, _, sets = results
    out = board[0]
    md = (out / "leaderboard.md").read_text()
    html = (out / "leaderboard.html").read_text()
    for s in sets:
        assert s.hash in md and s.hash in html
    protocol = json.dumps(psnr_rgb().protocol, sort_keys=True)
    assert protocol in md and protocol.replace('"', "&quot;") in html
    assert "<script src" not in html and "http://" not in html and "https://" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    figures = sorted((out / "figures").glob("*.png"))
    # per-set bars, and severity curves since the sets carry type and level
    assert {f.name for f in figures} == {
        *(f"{s.name}_bars.png" for s in sets),
        *(f"{s.name}_severity.png" for s in sets),
    }
    assert sorted(base64.b64decode(i) for i in images) == sorted(f.read_bytes() for f in figures)
    assert all(f"(figures/{f.name})" in md for f in figures)


def test_incomparable_results_are_refused(results, tmp_path):
    paths, _, _ = results
    with pytest.raises(ValueError, match="a second result of nearest on alpha"):
        write_leaderboard([paths[0], paths[0]], tmp_path)
    other = tiny_set(n=6, scale=2, seed=5, name="alpha")  # same name, other pixels
    evaluate(other, "bicubic", [psnr_rgb()], tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="set alpha has hash .* do not compare"):
        write_leaderboard([paths[0], tmp_path / "x" / "summary.json"], tmp_path / "b")
    changed = psnr_rgb()
    changed.protocol = {**changed.protocol, "crop_border": 7}
    evaluate(
        tiny_set(n=6, scale=2, name="alpha"), "bicubic", [changed], tmp_path / "y", progress=False
    )
    with pytest.raises(ValueError, match="psnr_rgb on alpha was computed with another protocol"):
        write_leaderboard([paths[0], tmp_path / "y" / "summary.json"], tmp_path / "c")


def test_cli_leaderboard(results, tmp_path, capsys):
    from degkit.cli import main

    paths, _, _ = results
    assert main(["leaderboard", *map(str, paths), "--out", str(tmp_path / "b")]) == 0
    assert str(tmp_path / "b" / "leaderboard.html") in capsys.readouterr().out.splitlines()
    command = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["command"]
    assert command == " ".join(
        ["degkit", "leaderboard", *map(str, paths), "--out", str(tmp_path / "b")]
    )
    assert f"Made by: `{command}`" in (tmp_path / "b" / "leaderboard.md").read_text()
    missing = tmp_path / "absent.json"
    assert main(["leaderboard", str(missing), "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"degkit leaderboard: error: {missing}: no such result file"


NODE_SORT_CHECK = """
const rows = vals => vals.map(([name, v]) => ({cells: [{textContent: name, dataset: {}},
  {textContent: v, dataset: {v: v === "n/a" ? "" : v}}]}));
const table = r => ({tBodies: [{rows: r, appendChild(x) {
  this.rows.splice(this.rows.indexOf(x), 1); this.rows.push(x); }}]});
const t1 = table(rows([["a", "1"], ["b", "3"]]));
const t2 = table(rows([["x", "n/a"], ["y", "2"], ["z", "10"]]));
const clicks = [];
const th = (i, t) => ({cellIndex: i, dataset: {}, closest: () => t,
  addEventListener: (e, f) => clicks.push(f)});
global.document = {querySelectorAll: () => [th(0, t1), th(1, t1), th(0, t2), th(1, t2)]};
eval(SORT_JS);
const names = t => t.tBodies[0].rows.map(r => r.cells[0].textContent).join("");
clicks[3](); const up = names(t2); clicks[3](); const down = names(t2);
console.log(up, down, names(t1));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_html_sort_script_sorts_each_table_numerically_with_na_last():
    from degkit.evaluate.leaderboard_html import SORT_JS

    script = f"const SORT_JS = {json.dumps(SORT_JS)};\n{NODE_SORT_CHECK}"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["yzx", "zyx", "ab"]  # 2 < 10 numerically; n/a last both ways

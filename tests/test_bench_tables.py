"""Leaderboard tables from per-image results: spreads across seeds, paired gains, severity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from degkit.bench.answers import answer_lines
from degkit.bench.results import collect_runs, entry_name, scores_by_seed, split_entry
from degkit.bench.tables import gain_rows, score_rows, severity_rows

LEVELS = ("light", "medium", "heavy")


def _write(root, set_name, entry, seed, psnr, levels=None):
    folder = root / set_name / entry / f"seed-{seed}"
    folder.mkdir(parents=True)
    table = {"id": [f"img{i}" for i in range(len(psnr))], "psnr_y": psnr}
    if levels is not None:
        table["level"] = levels
    pd.DataFrame(table).to_csv(folder / "per_image.csv", index=False)
    (folder / "summary.json").write_text("{}")


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    base = 25 + rng.normal(size=30)
    levels = [LEVELS[i % 3] for i in range(30)]
    # deplsr helps by 0.5 dB on heavy images only; the regressor is no different from none
    lift = np.array([0.5 if lv == "heavy" else 0.0 for lv in levels])
    _write(tmp_path, "severity_blur_x4", "bicubic", 0, base - 2, levels)
    for seed in range(3):
        jitter = rng.normal(0, 0.01, size=30)
        _write(tmp_path, "severity_blur_x4", "compact+none", seed, base + jitter, levels)
        _write(tmp_path, "severity_blur_x4", "compact+deplsr", seed, base + lift + jitter, levels)
        _write(tmp_path, "severity_blur_x4", "compact+regressor", seed, base + jitter, levels)
    return collect_runs(tmp_path)


def test_entry_names_round_trip():
    assert split_entry(entry_name("dat_light", "oracle-params")) == ("dat_light", "oracle-params")
    assert split_entry(entry_name(None, None)) == (None, None)


def test_collect_and_scores(runs):
    assert {(r.entry, r.seed) for r in runs} >= {("bicubic", 0), ("compact+deplsr", 2)}
    scores = scores_by_seed(runs, "compact+none", "severity_blur_x4", "psnr_y", {"level": "heavy"})
    assert sorted(scores) == [0, 1, 2] and all(len(s) == 10 for s in scores.values())


def test_score_rows_average_images_then_spread_over_seeds(runs):
    rows = {r["entry"]: r["severity_blur_x4"] for r in score_rows(runs, "psnr_y")}
    assert list(rows)[0] == "bicubic" and rows["bicubic"].seeds == 1
    means = [
        pd.read_csv(r.folder / "per_image.csv")["psnr_y"].mean()
        for r in runs
        if r.entry == "compact+deplsr"
    ]
    assert rows["compact+deplsr"].mean == pytest.approx(np.mean(means))
    assert rows["compact+deplsr"].std == pytest.approx(np.std(means, ddof=1))


def test_gains_find_the_planted_effect(runs):
    rows = {(r["prior"], r["against"]): r["severity_blur_x4"] for r in gain_rows(runs, "psnr_y")}
    assert rows[("deplsr", "none")].mean == pytest.approx(0.5 / 3, abs=1e-3)
    assert rows[("deplsr", "none")].verdict == "better"
    assert rows[("regressor", "none")].verdict == "no clear difference"
    assert rows[("deplsr", "regressor")].verdict == "better"
    assert ("oracle-params", "none") not in rows  # no results, no row


def test_severity_rows_split_by_level(runs):
    rows = [r for r in severity_rows(runs, "psnr_y") if r["prior"] == "deplsr"]
    assert len(rows) == 1
    assert rows[0]["heavy"].mean == pytest.approx(0.5, abs=1e-3) and rows[0]["heavy"].low > 0
    assert rows[0]["light"].verdict == "no clear difference"


def test_answers_count_what_the_tables_show(runs):
    metric, sets = "psnr_y", ["severity_blur_x4"]
    lines = answer_lines(score_rows(runs, metric), gain_rows(runs, metric), metric, sets)
    assert lines[0] == "- `compact`, psnr_y:"
    text = "\n".join(lines)
    assert "compact+none scores above bicubic on 1 of 1 sets" in text  # planted 2 dB above
    gains = {(r["prior"], r["against"]): r["severity_blur_x4"] for r in gain_rows(runs, metric)}
    assert "deplsr against none: better on 1 of 1 sets; severity_blur_x4: " in text
    assert gains[("deplsr", "none")].text(3) in text
    assert "deplsr against regressor: better on 1 of 1 sets" in text
    assert "oracle" not in text  # no oracle results: nothing claimed about the bound


def test_answers_check_the_oracle_bound(tmp_path):
    rng = np.random.default_rng(1)
    base = 25 + rng.normal(size=12)
    lifts = {"none": 0.0, "deplsr": 0.2, "oracle-text": 0.1, "regressor": 0.1, "oracle-params": 0.3}
    for seed in range(2):
        for prior, lift in lifts.items():
            _write(tmp_path, "set_a", f"net+{prior}", seed, base + lift + rng.normal(0, 0.01, 12))
    runs = collect_runs(tmp_path)
    rows = gain_rows(runs, "psnr_y")
    lines = answer_lines(score_rows(runs, "psnr_y"), rows, "psnr_y", ["set_a"])
    text = "\n".join(lines)
    # planted: the true captions score below the adaptor's guess, the true levels above
    by_pair = {(r["prior"], r["against"]): r["set_a"] for r in rows}
    assert by_pair[("oracle-text", "deplsr")].mean == pytest.approx(-0.1, abs=0.01)
    assert by_pair[("oracle-params", "regressor")].mean == pytest.approx(0.2, abs=0.01)
    assert "oracle bound, oracle-text against deplsr: worse on 1 of 1 sets" in text
    assert "the bound holds on 0 of 1 sets" in text
    assert "oracle bound, oracle-params against regressor: better on 1 of 1 sets" in text
    assert "the bound holds on 1 of 1 sets" in text
    assert "bicubic" not in text  # no bicubic entry: no comparison claimed

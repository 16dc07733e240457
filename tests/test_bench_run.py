"""``degkit bench`` end to end on a tiny config: every stage, resume, the same numbers twice."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from adaptor_helpers import TINY
from bench_helpers import stage_work

from degkit.bench.config import load_bench_config
from degkit.bench.report import write_bench_report
from degkit.bench.run import (
    BenchRun,
    Stage,
    _run_in_workers,
    elapsed_seconds,
    plan_stages,
    run_bench,
    stage_hash,
)
from degkit.cli import main as cli_main
from degkit.models import config as model_config
from degkit.models.sr_checkpoint import read_sr_meta

SET = """\
description: tiny deplsr set for the bench test
source: embedded-heldout
recipe: deplsr
seed: 0
scale: 4
crop: 64
crops_per_image: 1
crop_mode: grid
"""

CONFIG = """\
name: tiny
description: a tiny leaderboard for tests
seeds: [0, 1]
data: {recipe: deplsr, crop: 64, per_image: 1, seed: 0}
adaptor: {model: tiny, pretrain_steps: 2, steps: 2, batch_size: 4}
regressor: {steps: 2, batch_size: 4}
sr: {backbones: [compact_tiny], priors: [none, oracle-params], steps: {compact_tiny: 2},
     batch_size: 2, patch: 8, ema: 0.0}
eval: {sets: [SET], metrics: [psnr_y]}
visual: {set: SET, images: 2, crop: 8}
profiles:
  quick: {}
"""


@pytest.fixture
def tiny_config_file(tmp_path, monkeypatch):
    monkeypatch.setitem(model_config.CONFIGS, "tiny", TINY)
    set_file = tmp_path / "tiny_set.yaml"
    set_file.write_text(SET)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(CONFIG.replace("SET", str(set_file)))
    return config_file


def test_tiny_bench_runs_resumes_and_repeats(tiny_config_file, tmp_path, capsys):
    tiny_config = load_bench_config(tiny_config_file, "quick")
    argv = ["bench", str(tiny_config_file), "--work", str(tmp_path / "work")]
    assert cli_main([*argv, "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    run, walls = run_bench(tiny_config, tmp_path / "work")  # every stage already finished
    assert "[1/" not in capsys.readouterr().err
    assert set(walls) == {s.name for s in plan_stages(run)}
    text = (tmp_path / "report" / "report.md").read_text()
    assert "![comparison](comparison.png)" in text
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 1000
    assert "| compact_tiny+oracle-params |" in text  # a score row
    assert "| compact_tiny | oracle-params | none |" in text  # its gain row
    assert "## Answers" in text and "compact_tiny+none scores above bicubic on" in text
    assert "oracle bound" not in text  # no learned prior to bound
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["provenance"]["training_data"]["recipe_hashes"]
    commits = results["provenance"]["stage_commits"]  # every stage ran at this checkout
    assert commits == [results["provenance"]["git_commit"] or "unrecorded"]
    assert results["estimation"]  # the degradation-estimation table is there
    assert "every SR entry: 2 steps," in text
    meta = read_sr_meta(run.sr(0, "compact_tiny+none") / "last.safetensors")
    assert meta["step"] == 2  # the backbone's own steps

    other, _ = run_bench(tiny_config, tmp_path / "work2")
    write_bench_report(other, walls, tmp_path / "report2", ["degkit", "bench", "tiny"])
    repeat = json.loads((tmp_path / "report2" / "results.json").read_text())
    assert repeat["scores"] == results["scores"]

    changed = dataclasses.replace(tiny_config, sr={**tiny_config.sr, "steps": {"compact_tiny": 3}})
    with pytest.raises(ValueError, match="was run with other settings"):
        run_bench(changed, tmp_path / "work")


def test_every_stage_comes_after_the_stages_it_reads(tiny_config_file):
    config = load_bench_config(tiny_config_file, "quick")
    config = dataclasses.replace(
        config, sr={**config.sr, "priors": ["none", "deplsr", "regressor", "oracle-text"]}
    )
    stages = plan_stages(BenchRun(config, Path("unused")))
    seen: set[str] = set()
    for stage in stages:
        pickle.dumps(stage.action)  # --jobs sends it to a worker process
        assert seen.issuperset(stage.after), stage.name
        seen.add(stage.name)
    after = {s.name: s.after for s in stages}
    assert after["seed-1.sr.compact_tiny+none"] == ("data",)
    assert after["seed-1.sr.compact_tiny+deplsr"] == ("data", "seed-1.adaptor")
    assert after["seed-1.sr.compact_tiny+oracle-text"] == ("data", "seed-1.adaptor")
    assert after["seed-0.sr.compact_tiny+regressor"] == ("data", "seed-0.regressor")
    assert (
        "seed-0.sr.compact_tiny+regressor" in after["eval.tiny_set.compact_tiny+regressor.seed-0"]
    )


def test_one_backbones_steps_change_only_its_own_stages(tiny_config_file):
    config = load_bench_config(tiny_config_file, "quick")
    sr = {**config.sr, "backbones": ["compact_tiny", "dat_tiny"]}
    base = dataclasses.replace(config, sr={**sr, "steps": {"compact_tiny": 2, "dat_tiny": 2}})
    more = dataclasses.replace(config, sr={**sr, "steps": {"compact_tiny": 2, "dat_tiny": 5}})
    stages = plan_stages(BenchRun(base, Path("unused")))
    changed = {s.name for s in stages if stage_hash(base, s) != stage_hash(more, s)}
    assert changed == {s.name for s in stages if "dat_tiny" in s.name}
    assert any(".sr.dat_tiny+" in n for n in changed) and any(
        n.startswith("eval.") for n in changed
    )
    fewer_priors = dataclasses.replace(base, sr={**base.sr, "priors": ["none"]})
    assert stage_hash(fewer_priors, stages[-1]) == stage_hash(base, stages[-1])


def test_an_sr_entry_depends_on_its_own_priors_estimator_only(tiny_config_file):
    config = load_bench_config(tiny_config_file, "quick")
    config = dataclasses.replace(
        config, sr={**config.sr, "priors": ["none", "deplsr", "regressor", "oracle-params"]}
    )
    plain = dataclasses.replace(config, regressor={**config.regressor, "jpeg_grid": False})
    stages = plan_stages(BenchRun(config, Path("unused")))
    changed = {s.name for s in stages if stage_hash(config, s) != stage_hash(plain, s)}
    regressor_route = {s.name for s in stages if "regressor" in s.name or "estimation" in s.name}
    assert changed == regressor_route


def _stages(folder: Path, failing: str = "") -> list[Stage]:
    plan = {"a": (), "b": (), "c": ("a",), "d": ("a", "b"), "e": ("c", "d"), "f": ()}
    return [
        Stage(name, (), partial(stage_work, folder, name, after, name == failing), after=after)
        for name, after in plan.items()
    ]


def test_jobs_run_side_by_side_and_wait_for_their_inputs(tmp_path):
    events: list[tuple[str, str]] = []
    _run_in_workers(
        _stages(tmp_path),
        2,
        lambda stage: events.append(("start", stage.name)),
        lambda stage, wall: events.append(("end", stage.name)),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == list("abcdef")
    assert events[:2] == [("start", "a"), ("start", "b")]  # two at once
    running = 0
    for kind, _ in events:
        running += 1 if kind == "start" else -1
        assert running <= 2


def test_a_failing_stage_stops_the_run_and_its_dependants_never_start(tmp_path):
    started: list[str] = []
    with pytest.raises(ValueError, match="stage c failed"):
        _run_in_workers(
            _stages(tmp_path, failing="c"), 2, lambda s: started.append(s.name), lambda s, w: None
        )
    assert "e" not in started and not (tmp_path / "e").exists()


def test_elapsed_time_counts_side_by_side_stages_once(tmp_path):
    run = BenchRun(load_bench_config("deplsr", "quick"), tmp_path)
    (tmp_path / "stages").mkdir()
    # (finished, seconds): a and b overlap by 5 s, c follows after a gap (a resumed run)
    for name, end, wall in [("a", 110.0, 10.0), ("b", 115.0, 10.0), ("c", 200.0, 20.0)]:
        marker = {"hash": "h", "wall_seconds": wall, "finished_unix": end}
        (tmp_path / "stages" / f"{name}.json").write_text(json.dumps(marker))
    assert elapsed_seconds(run) == pytest.approx(15.0 + 20.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killing_the_bench_process_ends_its_workers(tmp_path):
    script = (
        "import sys; from functools import partial; from pathlib import Path\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]\n"
        "from bench_helpers import sleeping_stage\n"
        "from degkit.bench.run import Stage, _run_in_workers\n"
        "if __name__ == '__main__':\n"
        f"    stage = Stage('sleep', (), partial(sleeping_stage, Path({str(tmp_path)!r})))\n"
        "    _run_in_workers([stage], 2, lambda s: None, lambda s, w: None)\n"
    )
    (tmp_path / "bench.py").write_text(script)
    bench = subprocess.Popen([sys.executable, str(tmp_path / "bench.py")])
    pid_file = tmp_path / "worker.pid"
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and bench.poll() is None, "the stage never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    bench.kill()  # SIGKILL: no clean-up code in the bench process runs
    bench.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)

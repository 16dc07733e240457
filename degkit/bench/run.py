"""Run a leaderboard config end to end (``degkit bench CONFIG``), resumable.

Stages, each in its own folder under the work folder:

1. ``data/``: the training dataset, built from the embedded training photos
   with the config's recipe; ``heldout/``: the same recipe on the held-out
   photos (split ``test``) for the degradation-estimation table;
2. per seed ``seed-<s>/adaptor/`` (``--init scratch``) and ``seed-<s>/regressor/``,
   and ``seed-<s>/estimation/`` (the degradation-estimation protocol);
3. per seed and SR entry ``seed-<s>/sr/<backbone>+<prior>/`` (``degkit train-sr``,
   the same data, patch and optimizer for every entry, and the same steps for
   every entry of a backbone);
4. ``eval/<set>/<entry>/seed-<s>/`` (``degkit eval``; bicubic once, as seed 0);
5. the report (:mod:`degkit.bench.report`) into the output folder.

A stage that finished leaves ``stages/<stage>.json`` (the hash of the config
sections it depends on and its wall time) and is skipped when the run is
started again; a stage interrupted midway resumes through its own resume
(training checkpoints, evaluation CSVs). A work folder made with other
settings is refused. Progress lines name the stage, the entry and an ETA from
the stages timed so far. ``jobs`` > 1 runs stages that do not read each other's
files side by side in worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any

from degkit.bench.config import BenchConfig, backbone_sr
from degkit.bench.results import entry_name
from degkit.evaluate.summary import git_commit
from degkit.models.priors import ESTIMATOR_OF

__all__ = [
    "BenchRun",
    "Stage",
    "elapsed_seconds",
    "plan_stages",
    "run_bench",
    "stage_commits",
    "stage_hash",
]

STAGES_DIR = "stages"
_PARENT_POLL_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Stage:
    """One unit of work: a name, the config sections it depends on, what it does (a
    picklable call, so that ``--jobs`` can run it in a worker process), a rough cost
    for the ETA, the stages whose files it reads, and the backbone of an SR entry's
    stages (whose ``sr`` section is that backbone's settings alone)."""

    name: str
    sections: tuple[str, ...]
    action: Callable[[], None]
    weight: float = 1.0
    after: tuple[str, ...] = ()
    backbone: str | None = None


@dataclasses.dataclass(frozen=True)
class BenchRun:
    """Paths of one run: the work folder and the stage folders inside it."""

    config: BenchConfig
    work: Path
    progress: bool = True

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def heldout(self) -> Path:
        return self.work / "heldout"

    @property
    def eval_root(self) -> Path:
        return self.work / "eval"

    def seed_dir(self, seed: int) -> Path:
        return self.work / f"seed-{seed}"

    def adaptor(self, seed: int) -> Path:
        return self.seed_dir(seed) / "adaptor" / "last.safetensors"

    def regressor(self, seed: int) -> Path:
        return self.seed_dir(seed) / "regressor" / "regressor.safetensors"

    def sr(self, seed: int, entry: str) -> Path:
        return self.seed_dir(seed) / "sr" / entry

    def estimation(self, seed: int) -> Path:
        return self.seed_dir(seed) / "estimation"

    def eval_dir(self, set_spec: str, entry: str, seed: int) -> Path:
        return self.eval_root / set_label(set_spec) / entry / f"seed-{seed}"

    def comparison_models(self) -> dict[str, str]:
        """Label -> model spec: bicubic and every SR entry of the first seed."""
        sr = self.config.sr
        seed = self.config.seeds[0]
        models = {"bicubic": "bicubic"}
        for backbone in sr["backbones"]:
            for prior in sr["priors"]:
                entry = entry_name(backbone, prior)
                models[entry] = str(self.sr(seed, entry) / "last.safetensors")
        return models


def set_label(set_spec: str) -> str:
    """A shipped set's name, or a set file's stem (folder and stage names)."""
    return Path(set_spec).stem if set_spec.endswith((".yaml", ".yml")) else set_spec


def _say(message: str) -> None:
    print(f"degkit bench: {message}", file=sys.stderr, flush=True)


def _build(run: BenchRun, out: Path, source: str, seed: int, split: str) -> None:
    from degkit.data.build import build_dataset
    from degkit.data.config import BuildConfig

    data = run.config.data
    build_dataset(
        BuildConfig(
            recipe=data["recipe"],
            out=out,
            source=source,
            crop=data["crop"],
            per_image=data["per_image"],
            seed=seed,
            splits=f"{split}=1",
            resume=out.exists(),
            progress=False,
        )
    )


def _train_adaptor(run: BenchRun, seed: int) -> None:
    from degkit.train.adaptor import TrainConfig, train_adaptor

    cfg = run.config
    out = run.adaptor(seed).parent
    train_adaptor(
        TrainConfig(
            data=run.data,
            out=out,
            init="scratch",
            seed=seed,
            device=cfg.device,
            resume=out.exists(),
            progress=run.progress,
            **cfg.adaptor,
        )
    )


def _train_regressor(run: BenchRun, seed: int) -> None:
    from degkit.train.regressor import RegressorConfig, train_regressor

    cfg = run.config
    train_regressor(
        RegressorConfig(
            data=run.data,
            out=run.regressor(seed).parent,
            seed=seed,
            device=cfg.device,
            progress=run.progress,
            **cfg.regressor,
        )
    )


def _estimate(run: BenchRun, seed: int) -> None:
    from degkit.evaluate.estimation_report import write_report
    from degkit.evaluate.estimation_run import estimate

    results, fine, truth = estimate(
        run.heldout, run.adaptor(seed), run.regressor(seed), split="test"
    )
    write_report(run.estimation(seed), results, fine, truth)


def _train_sr(run: BenchRun, seed: int, backbone: str, prior: str) -> None:
    from degkit.train.sr import SRTrainConfig, train_sr

    cfg = run.config
    out = run.sr(seed, entry_name(backbone, prior))
    train_sr(
        SRTrainConfig(
            data=run.data,
            out=out,
            backbone=backbone,
            prior=prior,
            adaptor=run.adaptor(seed) if ESTIMATOR_OF.get(prior) == "adaptor" else None,
            regressor=run.regressor(seed) if ESTIMATOR_OF.get(prior) == "regressor" else None,
            seed=seed,
            device=cfg.device,
            resume=(out / "last.safetensors").exists(),
            progress=run.progress,
            **backbone_sr(cfg.sr, backbone),
        )
    )


def _evaluate(run: BenchRun, set_name: str, entry: str, seed: int) -> None:
    from degkit.evaluate.run import evaluate

    cfg = run.config
    model = "bicubic" if entry == "bicubic" else str(run.sr(seed, entry) / "last.safetensors")
    evaluate(
        set_name,
        model,
        cfg.eval["metrics"],
        run.eval_dir(set_name, entry, seed),
        batch_size=cfg.eval["batch_size"],
        device=cfg.device,
        progress=False,
    )


def _sr_sections(prior: str) -> tuple[str, ...]:
    """The config sections an SR entry depends on: the data, its prior's estimator, ``sr``."""
    uses = ESTIMATOR_OF.get(prior)
    return ("data",) + ((uses,) if uses else ()) + ("sr",)


def _sr_inputs(seed: int, prior: str) -> tuple[str, ...]:
    """The stages an SR entry reads: the data, and its seed's estimator of those sections."""
    return tuple(s if s == "data" else f"seed-{seed}.{s}" for s in _sr_sections(prior)[:-1])


def plan_stages(run: BenchRun) -> list[Stage]:
    """Every stage of the run, in an order in which each comes after the stages it reads."""
    cfg = run.config
    seed0 = cfg.data["seed"]
    stages = [
        Stage("data", ("data",), partial(_build, run, run.data, "embedded", seed0, "train")),
        Stage(
            "heldout",
            ("data",),
            partial(_build, run, run.heldout, "embedded-heldout", seed0 + 1, "test"),
        ),
    ]
    entries = [(b, p, entry_name(b, p)) for b in cfg.sr["backbones"] for p in cfg.sr["priors"]]
    for seed in cfg.seeds:
        estimators = (f"seed-{seed}.adaptor", f"seed-{seed}.regressor")
        stages += [
            Stage(
                estimators[0], ("data", "adaptor"), partial(_train_adaptor, run, seed), 4, ("data",)
            ),
            Stage(
                estimators[1],
                ("data", "regressor"),
                partial(_train_regressor, run, seed),
                after=("data",),
            ),
            Stage(
                f"seed-{seed}.estimation",
                ("data", "adaptor", "regressor"),
                partial(_estimate, run, seed),
                after=("heldout", *estimators),
            ),
        ]
        for backbone in cfg.sr["backbones"]:
            for prior in cfg.sr["priors"]:
                stages.append(
                    Stage(
                        f"seed-{seed}.sr.{entry_name(backbone, prior)}",
                        _sr_sections(prior),
                        partial(_train_sr, run, seed, backbone, prior),
                        4,
                        _sr_inputs(seed, prior),
                        backbone,
                    )
                )
    for set_name in cfg.eval["sets"]:
        bicubic = f"eval.{set_label(set_name)}.bicubic"  # makes the set; the others reuse it
        stages.append(
            Stage(bicubic, ("eval",), partial(_evaluate, run, set_name, "bicubic", 0), 0.2)
        )
        for seed in cfg.seeds:
            for backbone, prior, entry in entries:
                stages.append(
                    Stage(
                        f"eval.{set_label(set_name)}.{entry}.seed-{seed}",
                        (*_sr_sections(prior), "eval"),
                        partial(_evaluate, run, set_name, entry, seed),
                        0.2,
                        (bicubic, f"seed-{seed}.sr.{entry}"),
                        backbone,
                    )
                )
    return stages


def stage_hash(config: BenchConfig, stage: Stage) -> str:
    """What a stage's result depends on: the seeds, the device and its sections."""
    return config.section_hash("seeds", "device", *stage.sections, backbone=stage.backbone)


def _marker(run: BenchRun, stage: Stage) -> Path:
    return run.work / STAGES_DIR / f"{stage.name}.json"


def _finished(run: BenchRun, stage: Stage, digest: str) -> dict[str, Any] | None:
    path = _marker(run, stage)
    if not path.is_file():
        return None
    done = json.loads(path.read_text(encoding="utf-8"))
    if done["hash"] != digest:
        raise ValueError(
            f"--work {run.work}: stage {stage.name} was run with other settings "
            f"(profile {done.get('profile')!r}); use a new --work folder"
        )
    return done


def stage_commits(run: BenchRun) -> list[str]:
    """The degkit commits the finished stages ran at (``"unrecorded"`` for markers without)."""
    markers = sorted((run.work / STAGES_DIR).glob("*.json"))
    found = {json.loads(m.read_text(encoding="utf-8")).get("commit") for m in markers}
    return sorted(c or "unrecorded" for c in found)


def _exit_with(parent: int) -> None:
    """Poll until the process that started this worker is gone, then exit at once."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _worker_init(threads: int, parent: int) -> None:
    """Set the worker's torch threads; end the worker when the bench process ends, however
    it ends (a killed bench must not leave a stage training in its work folder)."""
    import torch

    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _run_in_workers(
    stages: list[Stage],
    jobs: int,
    started: Callable[[Stage], None],
    finished: Callable[[Stage, float], None],
) -> None:
    """Run ``stages`` in ``jobs`` worker processes, each once every stage it reads is done."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    waiting = list(stages)
    unfinished = {s.name for s in stages}
    running: dict[Future[float], Stage] = {}
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads, os.getpid()),
    )
    try:
        while waiting or running:
            for stage in [s for s in waiting if unfinished.isdisjoint(s.after)]:
                if len(running) == jobs:
                    break
                waiting.remove(stage)
                started(stage)
                running[pool.submit(_timed, stage.action)] = stage
            if not running:
                raise RuntimeError(f"stages wait on each other: {[s.name for s in waiting]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                stage = running.pop(future)
                wall = future.result()  # a stage's error stops the run here
                unfinished.discard(stage.name)
                finished(stage, wall)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def elapsed_seconds(run: BenchRun) -> float:
    """Wall seconds the finished stages took, stages that ran side by side counted once.

    Each marker gives its stage's interval: it ends when the marker was written
    (``finished_unix``; the file's modification time for older markers) and
    lasts ``wall_seconds``. Time between interrupted and resumed runs is not counted.
    """
    intervals = []
    for marker in (run.work / STAGES_DIR).glob("*.json"):
        done = json.loads(marker.read_text(encoding="utf-8"))
        end = done.get("finished_unix", marker.stat().st_mtime)
        intervals.append((end - done["wall_seconds"], end))
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def run_bench(
    config: BenchConfig, work: str | Path, jobs: int = 1
) -> tuple[BenchRun, dict[str, float]]:
    """Run every stage not finished yet; returns the run and each stage's wall seconds.

    ``jobs`` > 1 runs independent stages at the same time in that many worker
    processes, each with ``cpu_count // jobs`` torch threads and no progress
    bars; a stage starts once the stages it reads have finished. (The thread
    count can change the last bits of trained weights, so compare runs made
    with the same ``jobs``.)
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    run = BenchRun(config, Path(work), progress=jobs == 1)
    (run.work / STAGES_DIR).mkdir(parents=True, exist_ok=True)
    stages = plan_stages(run)
    number = {stage.name: n for n, stage in enumerate(stages, 1)}
    digests = {s.name: stage_hash(config, s) for s in stages}
    walls: dict[str, float] = {}
    todo = []
    for stage in stages:
        done = _finished(run, stage, digests[stage.name])
        if done is None:
            todo.append(stage)
        else:
            walls[stage.name] = done["wall_seconds"]
    commit = git_commit()
    clock = {"timed": 0.0, "weight": 0.0, "remaining": sum(s.weight for s in todo)}

    def started(stage: Stage) -> None:
        _say(f"[{number[stage.name]}/{len(stages)}] {stage.name}")

    def finished(stage: Stage, wall: float) -> None:
        walls[stage.name] = wall
        clock["timed"] += wall
        clock["weight"] += stage.weight
        clock["remaining"] -= stage.weight
        eta = max(0.0, clock["remaining"]) * clock["timed"] / clock["weight"] / jobs
        _say(
            f"[{number[stage.name]}/{len(stages)}] {stage.name} done in {wall:.0f} s; "
            f"about {eta / 60:.0f} min left"
        )
        marker = {
            "hash": digests[stage.name],
            "profile": config.profile,
            "wall_seconds": round(wall, 3),
            "finished_unix": round(time.time(), 3),
            "commit": commit,
        }
        _marker(run, stage).write_text(json.dumps(marker) + "\n", encoding="utf-8")

    if jobs == 1:
        for stage in todo:
            started(stage)
            finished(stage, _timed(stage.action))
    else:
        _run_in_workers(todo, jobs, started, finished)
    return run, walls

"""One scratch run of the degradation adaptor and the level regressor, scored by eval-adaptor.

Runs, each as its own ``python -m degkit.cli`` process, timed from start to exit:

1. ``degkit build deplsr`` of the training photos (``--source embedded``),
   256 x 256 HR crops so the x4 LR images are 64 x 64, the ``small`` config's
   input size;
2. the same of the held-out photos (``--source embedded-heldout``, another
   seed, split ``test``);
3. ``degkit train-adaptor --init scratch --model small`` (CLIP pre-training,
   then the controller; with ``--evidence``, the adaptor's evidence head too);
4. ``degkit train-regressor``;
5. ``degkit eval-adaptor`` into ``--out``, which also gets ``README.md``: the
   commands, their wall and CPU times and the machine.

Datasets and checkpoints go to ``--work`` (not the report folder). Usage::

    python benchmarks/adaptor_report.py --out reports/adaptor --work /tmp/adaptor-run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_timing import machine_load

CROP = 256  # x4 -> 64 x 64 LR, the small config's image size


def _cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], log: list[dict]) -> None:
    """Run ``python -m degkit.cli COMMAND``, record its wall and CPU seconds, fail loudly."""
    shown = "degkit " + shlex.join(command)
    print(f"$ {shown}", file=sys.stderr, flush=True)
    began, cpu = time.perf_counter(), _cpu_seconds()
    subprocess.run([sys.executable, "-m", "degkit.cli", *command], check=True)
    seconds = time.perf_counter() - began
    log.append({"command": shown, "seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu})
    print(f"  {seconds:.0f} s", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/adaptor", help="report folder")
    parser.add_argument("--work", required=True, help="folder for datasets and checkpoints")
    parser.add_argument("--per-image", type=int, default=48, help="training crops per photo")
    parser.add_argument("--test-per-image", type=int, default=32, help="test crops per photo")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=300, help="controller steps")
    parser.add_argument("--regressor-steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4, help="controller peak lr")
    parser.add_argument("--pretrain-lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--evidence",
        action="store_true",
        help="train the adaptor with train-adaptor --evidence (JPEG grid, noise and sharpness "
        "statistics)",
    )
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    train, test = work / "train", work / "test"
    adaptor, regressor = work / "adaptor", work / "regressor"
    log: list[dict] = []
    load_before = machine_load()
    crop = ["--crop", str(CROP), "--quiet"]
    _run(
        [
            "build",
            "deplsr",
            "--source",
            "embedded",
            "--out",
            str(train),
            *crop,
            "--per-image",
            str(args.per_image),
            "--seed",
            str(args.seed),
        ],
        log,
    )
    _run(
        [
            "build",
            "deplsr",
            "--source",
            "embedded-heldout",
            "--out",
            str(test),
            *crop,
            "--per-image",
            str(args.test_per_image),
            "--seed",
            str(args.seed + 1),
            "--splits",
            "test=1",
        ],
        log,
    )
    _run(
        [
            "train-adaptor",
            "--data",
            str(train),
            "--out",
            str(adaptor),
            "--model",
            "small",
            "--init",
            "scratch",
            "--pretrain-steps",
            str(args.pretrain_steps),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--lr",
            str(args.lr),
            "--pretrain-lr",
            str(args.pretrain_lr),
            "--seed",
            str(args.seed),
            "--quiet",
            *(["--evidence"] if args.evidence else []),
        ],
        log,
    )
    _run(
        [
            "train-regressor",
            "--data",
            str(train),
            "--out",
            str(regressor),
            "--steps",
            str(args.regressor_steps),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            str(args.seed),
            "--quiet",
        ],
        log,
    )
    _run(
        [
            "eval-adaptor",
            "--data",
            str(test),
            "--adaptor",
            str(adaptor / "last.safetensors"),
            "--regressor",
            str(regressor / "regressor.safetensors"),
            "--out",
            str(out),
        ],
        log,
    )
    total = sum(entry["seconds"] for entry in log)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)"
    )
    lines = [
        "# Degradation adaptor: one scratch run",
        "",
        f"Made by: `python benchmarks/adaptor_report.py --out {out} --work {work} "
        f"--per-image {args.per_image} --test-per-image {args.test_per_image} "
        f"--pretrain-steps {args.pretrain_steps} --steps {args.steps} "
        f"--regressor-steps {args.regressor_steps} --batch-size {args.batch_size} "
        f"--lr {args.lr:g} --pretrain-lr {args.pretrain_lr:g} --seed {args.seed}"
        f"{' --evidence' if args.evidence else ''}`, "
        f"on {machine}. Load before: `{load_before}`; after: `{machine_load()}` (wall times "
        "include any waiting for a busy CPU; CPU times are the commands' own, user + system, "
        "all threads).",
        "",
        "Results: [report.md](report.md) (accuracy per type beside chance, confusion "
        "matrices, PCA of the fine embeddings, provenance); raw numbers in results.json.",
        "",
        "| step | command | wall time | CPU time |",
        "|---|---|---|---|",
    ]
    names = ["train set", "test set", "adaptor", "regressor", "eval-adaptor"]
    for name, entry in zip(names, log, strict=True):
        lines.append(
            f"| {name} | `{entry['command']}` | {entry['seconds']:.0f} s "
            f"| {entry['cpu_seconds']:.0f} s |"
        )
    cpu = sum(entry["cpu_seconds"] for entry in log)
    lines += ["", f"Total: {total:.0f} s wall ({total / 60:.1f} min), {cpu:.0f} s CPU.", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "timings.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"total {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

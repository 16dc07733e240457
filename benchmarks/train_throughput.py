"""Steps/s of ``degkit train-sr`` beside a minimal hand-written PyTorch loop, same run.

Data: a small deplsr dataset built from the embedded photos (``--crop`` HR crops,
x4, one per photo) unless ``--data`` names one. Every run trains the same
spandrel trunk (``build_backbone``) with Adam and L1 for ``--steps`` steps (one
value, or one per backbone) at the same batch and LR patch size, on the same
device, in the same process:

* degkit: ``train_sr(SRTrainConfig(...))``, exactly what ``degkit train-sr``
  runs (patches read and augmented by its DataLoader, checkpoint written once
  at the end), with ``--prior bare`` (EMA 0.999 and EMA off) and ``--prior
  oracle-params`` (fusion blocks and the prior's MLP trained too);
  steps/s and the data-wait share are those of ``OUT/train.json`` (the
  training loop: set-up and the final checkpoint excluded);
* hand loop: the bare trunk, ``torch.optim.Adam`` (betas 0.9, 0.99), L1, on
  the same patches drawn beforehand by degkit's sampler and held in memory
  as [0, 1] floats (no data loading), timed over the same steps.

Runs take turns, one of each per round, after a warm-up round that is not
timed (``bench_timing.interleaved_seconds``); medians over ``--repeats``
rounds. Usage::

    python benchmarks/train_throughput.py --out reports/train_throughput.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_timing import interleaved_seconds, machine_load

import degkit
from degkit.data.build import BuildConfig, build_dataset
from degkit.evaluate.summary import git_commit
from degkit.models.backbones import build_backbone
from degkit.train.sr import BETAS, SRTrainConfig, train_sr
from degkit.train.sr_data import PairedPatches, StepBatchSampler, collate_pairs

SCALE = 4
HAND = "hand loop (bare trunk, tensors in memory)"


def build_data(folder: Path, crop: int) -> Path:
    """A deplsr dataset of the embedded photos, one ``crop`` x ``crop`` HR crop each, x4."""
    build_dataset(
        BuildConfig(recipe="deplsr", out=folder, crop=crop, scale=SCALE, seed=0, progress=False)
    )
    return folder


def preloaded_batches(data: Path, args: argparse.Namespace) -> list[tuple[torch.Tensor, ...]]:
    """The first ``--steps`` batches degkit's sampler draws, as [0, 1] floats on the device."""
    pairs = PairedPatches(data, SCALE, args.patch, seed=0)
    sampler = StepBatchSampler(pairs, args.batch_size, 0)
    batches = []
    for _, ids in zip(range(args.steps), sampler, strict=False):
        batch = collate_pairs([pairs[i] for i in ids])
        batches.append(tuple(batch[k].to(args.device).float().div(255) for k in ("lr", "hr")))
    return batches


def hand_loop(
    backbone: str, batches: list[tuple[torch.Tensor, ...]], lr: float, device: str
) -> Callable[[], dict[str, float]]:
    """A run of the minimal loop: a fresh trunk, Adam, L1, one step per preloaded batch."""

    def run() -> dict[str, float]:
        torch.manual_seed(0)
        model = build_backbone(backbone, SCALE).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS)
        sync()
        start = time.perf_counter()
        for x, y in batches:
            loss = F.l1_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync()
        return {"steps_per_s": len(batches) / (time.perf_counter() - start)}

    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    return run


def degkit_run(
    data: Path, scratch: Path, args: argparse.Namespace, backbone: str, **options
) -> Callable[[], dict[str, float]]:
    """A fresh ``train_sr`` run (new output folder each call); its ``train.json`` figures."""
    calls = [0]

    def run() -> dict[str, float]:
        calls[0] += 1
        out = scratch / f"{backbone}-{'-'.join(map(str, options.values()))}-{calls[0]}"
        cfg = SRTrainConfig(
            data=data,
            out=out,
            backbone=backbone,
            steps=args.steps,
            batch_size=args.batch_size,
            patch=args.patch,
            save_every=args.steps,
            device=args.device,
            progress=False,
            **options,
        )
        return train_sr(cfg).summary

    return run


def measure(backbone: str, data: Path, scratch: Path, args: argparse.Namespace) -> list[str]:
    """Markdown table of one backbone: steps/s, ratio to the hand loop, data-wait share."""
    runs: dict[str, Callable[[], dict[str, float]]] = {}
    for workers in args.workers:
        runs[f"degkit, prior bare, EMA 0.999, {workers} workers"] = degkit_run(
            data, scratch, args, backbone, prior="bare", workers=workers
        )
        runs[f"degkit, prior bare, EMA off, {workers} workers"] = degkit_run(
            data, scratch, args, backbone, prior="bare", workers=workers, ema=0.0
        )
        runs[f"degkit, prior oracle-params, EMA 0.999, {workers} workers"] = degkit_run(
            data, scratch, args, backbone, prior="oracle-params", workers=workers
        )
    runs[HAND] = hand_loop(backbone, preloaded_batches(data, args), SRTrainConfig.lr, args.device)
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in runs}

    def recorded(name: str) -> Callable[[], None]:
        return lambda: figures[name].append(runs[name]())

    sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else None
    interleaved_seconds({name: recorded(name) for name in runs}, args.repeats, sync=sync)
    timed = {name: values[1:] for name, values in figures.items()}  # the warm-up round dropped
    rate = {n: statistics.median(v["steps_per_s"] for v in values) for n, values in timed.items()}
    hand = rate[HAND]
    lines = [
        f"### {backbone}",
        "",
        "| run | steps/s | / hand loop | data-wait share |",
        "|---|---|---|---|",
    ]
    for name, values in timed.items():
        waits = [v["data_wait_share"] for v in values if "data_wait_share" in v]
        wait = f"{statistics.median(waits):.1%}" if waits else "-"
        lines.append(f"| {name} | {rate[name]:.3f} | {rate[name] / hand:.2f} | {wait} |")
    for workers in args.workers:
        bare = rate[f"degkit, prior bare, EMA 0.999, {workers} workers"]
        oracle = rate[f"degkit, prior oracle-params, EMA 0.999, {workers} workers"]
        no_ema = rate[f"degkit, prior bare, EMA off, {workers} workers"]
        lines += [
            "",
            f"{workers} workers: degkit, prior bare, EMA off runs at {no_ema / hand:.0%} of "
            f"the hand loop's speed, with EMA at {bare / hand:.0%} (a step with EMA takes "
            f"{no_ema / bare:.2f}x the time of one without); the fusion blocks and the "
            f"oracle-params prior make a step {bare / oracle:.2f}x as long as the bare one.",
        ]
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["compact"])
    parser.add_argument("--data", type=Path, default=None, help="a built x4 dataset to reuse")
    parser.add_argument("--crop", type=int, default=128, help="HR crop of the built dataset")
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[12],
        help="steps per run: one value for every backbone, or one per --backbones "
        "(a tiny model needs more steps for a stable rate)",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32, help="LR patch side")
    parser.add_argument("--workers", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--devices", nargs="+", default=None, help="default: cpu, and cuda when available"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if len(args.steps) not in (1, len(args.backbones)):
        parser.error(f"--steps: one value or one per backbone ({len(args.backbones)})")
    args.steps_of = dict(zip(args.backbones, args.steps * len(args.backbones), strict=False))
    load_before = machine_load()
    with tempfile.TemporaryDirectory(prefix="degkit-train-bench-") as tmp:
        data = args.data or build_data(Path(tmp) / "data", args.crop)
        sections = []
        for device in args.devices:
            sections += [f"## {_device_name(device)}", ""]
            for backbone in args.backbones:
                on_device = argparse.Namespace(
                    **{**vars(args), "device": device, "steps": args.steps_of[backbone]}
                )
                section = measure(backbone, data, Path(tmp), on_device)
                print("\n".join(section), flush=True)
                sections += section
    report = _report(args, sections, load_before, machine_load())
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report, encoding="utf-8")


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name()})"
    return device


def _steps(args: argparse.Namespace) -> str:
    if len(set(args.steps_of.values())) == 1:
        return f"{args.steps[0]} steps"
    return ", ".join(f"{n} steps ({name})" for name, n in args.steps_of.items())


def _report(args: argparse.Namespace, sections: list[str], before: str, after: str) -> str:
    command = " ".join(["python", *sys.argv])
    lines = [
        "# Training throughput: degkit train-sr vs a hand-written PyTorch loop",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Work: {_steps(args)} of batch {args.batch_size}, LR patch {args.patch} "
        f"(HR {args.patch * SCALE}), x{SCALE}, Adam + L1, on "
        + (f"`{args.data}`" if args.data else f"the embedded photos' deplsr crops ({args.crop} HR)")
        + ". degkit: `train_sr` (its DataLoader, augmentation, uint8 to float, learning-rate "
        "schedule, EMA when on, one checkpoint at the end; steps/s of `OUT/train.json`). Hand "
        "loop: the bare spandrel trunk on the same patches preloaded as float tensors. "
        f"Median of {args.repeats} rounds in which the runs take turns, after an untimed "
        "warm-up round.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}, "
        f"degkit {degkit.__version__} @ {(git_commit() or 'no git')[:12]}. The cores are "
        f"shared with other jobs; load before: `{before}`; after: `{after}`.",
        "",
        *sections,
    ]
    if not any(torch.device(d).type == "cuda" for d in args.devices):
        lines += [
            "## CUDA",
            "",
            "Not measured on this machine (no GPU); run with `--device cuda` where one is.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

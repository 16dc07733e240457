"""``degkit train-sr``: an SR model (spandrel trunk + fusion + prior) on a built dataset."""

from __future__ import annotations

import argparse
import dataclasses

__all__ = ["register", "run_train_sr"]

# Kept here (not imported from degkit.models) so `degkit --help` imports no torch.
BACKBONES = ("compact", "compact_tiny", "dat", "dat_light", "dat_s", "dat_tiny")
PRIORS = ("bare", "none", "deplsr", "regressor", "oracle-text", "oracle-params")
CACHE_MB = 1024
DEGRADE_ON = ("auto", "loader", "device")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-sr`` sub-command."""
    p = sub.add_parser(
        "train-sr",
        help="train an SR model (spandrel DAT / Compact trunk with fusion blocks and a prior)",
        description="Train a spandrel SR trunk with one fusion block per residual group, fed "
        "by a prior (bare: the trunk alone; none: constant tokens; deplsr: a trained adaptor; "
        "regressor: a trained level regressor; oracle-text: the adaptor's content embedding "
        "with the true fine captions; oracle-params: the true levels), computed once per "
        "image from the whole stored LR, or per patch with --recipe (the dataset's HR crops "
        "degraded afresh for every sample). Random paired patches with flips and rotations, "
        "L1 against the HR (or its USM-sharpened version), Adam, step-wise decayed learning "
        "rate, optional EMA, PSNR-Y validation. Writes OUT/last.safetensors (weights, EMA, "
        "optimizer, config) every --save-every steps, "
        "OUT/trunk.safetensors (the EMA trunk when --ema > 0) in spandrel's format, "
        "OUT/val.jsonl and OUT/train.json (speed); --resume continues a run. Under torchrun "
        "every process trains on its own part of the data with averaged gradients.",
    )
    p.add_argument("--data", required=True, help="a dataset folder written by degkit build")
    p.add_argument("--out", required=True, help="folder for the checkpoints")
    p.add_argument("--backbone", default="dat_light", choices=BACKBONES, help="default dat_light")
    p.add_argument("--prior", default="none", choices=PRIORS, help="default none")
    p.add_argument("--adaptor", help="adaptor checkpoint (deplsr, oracle-text)")
    p.add_argument("--regressor", help="level regressor checkpoint (regressor)")
    p.add_argument(
        "--prior-dim",
        type=int,
        help="token width of the none / regressor / oracle-params priors "
        "(default: the adaptor's embed dim, else 512)",
    )
    p.add_argument("--init", help="a spandrel-format checkpoint of the same trunk to start from")
    p.add_argument(
        "--init-partial",
        action="store_true",
        help="load only the --init tensors that fit (e.g. an x4 trunk from an x2 checkpoint)",
    )
    p.add_argument(
        "--recipe",
        help="degrade the HR crops of --data afresh for every sample with this recipe "
        "(its scale is used) instead of the stored pairs",
    )
    p.add_argument(
        "--target",
        default="hr",
        choices=("hr", "usm"),
        help="L1 against the HR patch, or against it sharpened as Real-ESRGAN does "
        "(usm: weight 0.5, threshold 10, radius 50) (default hr)",
    )
    p.add_argument("--steps", type=int, default=1000, help="default 1000")
    p.add_argument("--batch-size", type=int, default=4, help="default 4")
    p.add_argument("--patch", type=int, default=64, help="LR patch side in pixels (default 64)")
    p.add_argument("--lr", type=float, default=2e-4, help="initial learning rate (default 2e-4)")
    p.add_argument(
        "--milestones",
        default="0.5,0.8,0.9,0.95",
        help="fractions of --steps where the learning rate is multiplied by --gamma",
    )
    p.add_argument("--gamma", type=float, default=0.5, help="default 0.5")
    p.add_argument(
        "--ema",
        type=float,
        default=0.999,
        help="EMA decay of the weights, used for validation and trunk.safetensors "
        "(0: none; default 0.999)",
    )
    p.add_argument("--val-data", help="a dataset folder to report mean PSNR-Y on, whole images")
    p.add_argument(
        "--val-split",
        default="train",
        help="split of --val-data (default train: a set built on its own keeps its rows there)",
    )
    p.add_argument("--val-every", type=int, default=1000, help="steps (default 1000, and the end)")
    p.add_argument("--save-every", type=int, default=100, help="steps (default 100)")
    p.add_argument("--seed", type=int, default=0, help="model init, data order, patches")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--split", default="train", help="split of --data (default train)")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes (default 0: read in the training process); "
        "results do not depend on it",
    )
    p.add_argument(
        "--cache-mb",
        type=float,
        default=CACHE_MB,
        help="decode the training split's images once and keep them in memory (uint8, per "
        "process; workers share them) when they fit in this many MiB, instead of decoding "
        f"the stored PNGs at every read; 0: no cache (default {CACHE_MB}); results do not "
        "depend on it",
    )
    p.add_argument(
        "--degrade-on",
        default="auto",
        choices=DEGRADE_ON,
        help="with --recipe, where patches are degraded: loader (one sample at a time in the "
        "DataLoader, on the CPU), device (a whole batch at once on --device, in the step) or "
        "auto (device on CUDA, else loader; default); on the CPU results do not depend on it",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train_sr)


def _milestones(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise ValueError(f"--milestones {text!r}: give fractions, e.g. 0.5,0.8,0.9,0.95") from None


def run_train_sr(args: argparse.Namespace) -> int:
    """Train and print the checkpoint path."""
    from degkit.train.sr import SRTrainConfig, train_sr

    fields = {f.name for f in dataclasses.fields(SRTrainConfig)} - {"milestones", "progress"}
    flags = {k: v for k, v in vars(args).items() if k in fields}
    milestones = _milestones(args.milestones)
    config = SRTrainConfig(**flags, milestones=milestones, progress=not args.quiet)
    print(train_sr(config).checkpoint)
    return 0

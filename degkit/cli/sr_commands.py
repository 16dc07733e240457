"""``degkit train-sr``: an SR model (spandrel trunk + fusion + prior) on a built dataset."""

from __future__ import annotations

import argparse
import dataclasses

__all__ = ["register", "run_train_sr"]

# Kept here (not imported from degkit.models) so `degkit --help` imports no torch.
BACKBONES = ("compact", "compact_tiny", "dat", "dat_light", "dat_s", "dat_tiny")
PRIORS = ("bare", "none", "deplsr", "regressor", "oracle-text", "oracle-params")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-sr`` sub-command."""
    p = sub.add_parser(
        "train-sr",
        help="train an SR model (spandrel DAT / Compact trunk with fusion blocks and a prior)",
        description="Train a spandrel SR trunk with one fusion block per residual group, fed "
        "by a prior computed once per image from the stored LR (bare: the trunk alone; none: "
        "constant tokens; deplsr: a trained adaptor; regressor: a trained level regressor; "
        "oracle-text / oracle-params: the rows' true captions / levels). Random paired "
        "patches with flips and rotations, L1, Adam, step-wise halved learning rate. Writes "
        "OUT/last.safetensors (model, optimizer, config) every --save-every steps and "
        "OUT/trunk.safetensors, the trunk in spandrel's format; --resume continues a run.",
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
    p.add_argument("--save-every", type=int, default=100, help="steps (default 100)")
    p.add_argument("--seed", type=int, default=0, help="model init, data order, patches")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--split", default="train")
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

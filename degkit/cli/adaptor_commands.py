"""``degkit train-adaptor`` / ``train-regressor``: degradation estimators on a built dataset."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

__all__ = ["register", "run_train_adaptor", "run_train_regressor"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-adaptor`` sub-command."""
    p = sub.add_parser(
        "train-adaptor",
        help="train the degradation adaptor (frozen CLIP + controller) on a degkit dataset",
        description="Freeze a CLIP (pre-trained here with --init scratch, or real open_clip "
        "weights from --init FILE) and train the controller, zero layers, per-type head and "
        "loss temperatures on the LR images and captions of a built dataset. Writes "
        "OUT/last.safetensors every --save-every steps (and, for --init scratch, "
        "OUT/clip-pretrained.safetensors); --resume continues an interrupted run. Under "
        "torchrun each process trains on its own part of the data, the contrastive losses "
        "see every process's batch and gradients are averaged.",
    )
    p.add_argument("--data", required=True, help="a dataset folder written by degkit build")
    p.add_argument("--out", required=True, help="folder for the checkpoints")
    p.add_argument(
        "--model", default="small", help="architecture: small (trains on a CPU) or vit_b32"
    )
    p.add_argument(
        "--init",
        default="scratch",
        help="'scratch' (pre-train the CLIP on the dataset first) or an open_clip weights "
        "file (.pt / .bin / .safetensors) of the --model architecture (default: scratch)",
    )
    p.add_argument(
        "--quick-gelu",
        action="store_true",
        help="QuickGELU activations, as OpenAI's CLIP weights need (open_clip's -quickgelu "
        "models); the default GELU fits LAION / open_clip weights",
    )
    p.add_argument(
        "--evidence",
        action="store_true",
        help="per-type embeddings also read fixed image statistics (JPEG grid scores, "
        "noise and sharpness statistics) through a zero-initialised head: an extension "
        "beyond the paper's adaptor, off by default",
    )
    p.add_argument("--steps", type=int, default=200, help="controller steps (default 200)")
    p.add_argument(
        "--batch-size", type=int, default=32, help="per process under torchrun (default 32)"
    )
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--warmup", type=int, default=20, help="linear warm-up steps (default 20)")
    p.add_argument(
        "--weight-decay", type=float, default=0.2, help="on weight matrices only (default 0.2)"
    )
    p.add_argument("--loss", default="siglip", choices=("siglip", "infonce"), help="default siglip")
    p.add_argument(
        "--loss-weights",
        default="0.2,0.3,0.5",
        help="content,degradation,per-type weights (default 0.2,0.3,0.5)",
    )
    p.add_argument(
        "--levels-weight",
        type=float,
        default=1.0,
        help="weight of the prompt-level term: each type's embedding scored against that "
        "type's captions at the estimation protocol's prompt levels, cross-entropy towards "
        "the level nearest the truth; also added to --init scratch pre-training when > 0 "
        "(default 1.0; 0: the paper's three terms only)",
    )
    p.add_argument(
        "--pretrain-steps", type=int, default=200, help="CLIP steps for --init scratch (200)"
    )
    p.add_argument("--pretrain-lr", type=float, default=5e-4, help="default 5e-4")
    p.add_argument(
        "--caption-template",
        default="A photo with {}",
        help="text around every degradation and fine caption, '{}' marking the caption "
        "(default 'A photo with {}', the prompt eval-adaptor scores with)",
    )
    p.add_argument("--save-every", type=int, default=50, help="steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="model init and data order (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--split", default="train")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train_adaptor)

    r = sub.add_parser(
        "train-regressor",
        help="train the level regressor (a small CNN, the non-VLM control) on a degkit dataset",
        description="Regress per-type presence and level (blur sigma, noise sigma / scale, "
        "JPEG quality, ringing) from LR images, with targets from the dataset's flat "
        "columns. Writes OUT/regressor.safetensors.",
    )
    r.add_argument("--data", required=True, help="a dataset folder written by degkit build")
    r.add_argument("--out", required=True, help="folder for the checkpoint")
    r.add_argument("--steps", type=int, default=300)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--lr", type=float, default=3e-3)
    r.add_argument("--warmup", type=int, default=20)
    r.add_argument(
        "--width", type=int, default=32, help="channels of the stem and the first conv block"
    )
    r.add_argument(
        "--stem", type=int, default=2, help="stride-1 convs at full resolution before the blocks"
    )
    r.add_argument(
        "--pool",
        default="mean_std",
        choices=("mean", "mean_std"),
        help="global pooling: the last block's mean, or the mean and std of the stem's and "
        "the last block's features (default)",
    )
    r.add_argument(
        "--no-jpeg-grid",
        dest="jpeg_grid",
        action="store_false",
        help="leave out the JPEG grid scores (the fit of the 8x8 block DCT to each quality's "
        "quantiser) from the head's features",
    )
    r.add_argument(
        "--level-bins",
        type=int,
        default=16,
        help="each level as a distribution over this many equal bins, trained by "
        "cross-entropy towards the true level blurred by a Gaussian and read as its median "
        "(a histogram loss; default 16); 0: each level a number, trained by a smooth-L1 loss",
    )
    r.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no random flips / 90-degree rotations of the LR images",
    )
    r.add_argument(
        "--crop",
        type=int,
        default=0,
        help="train on square LR patches of this size (a multiple of 16, offsets on the "
        "JPEG block grid); 0: whole images",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--split", default="train")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=run_train_regressor)


def _loss_weights(text: str) -> tuple[float, float, float]:
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 3:
        raise ValueError(f"--loss-weights {text!r}: give three numbers, e.g. 0.2,0.3,0.5")
    return weights


def _options(config_class: type, args: argparse.Namespace, **values: Any) -> Any:
    """``config_class`` from the flags named like its fields, plus ``values``."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    flags = {k: v for k, v in vars(args).items() if k in fields}
    return config_class(**flags, progress=not args.quiet, **values)


def run_train_adaptor(args: argparse.Namespace) -> int:
    """Train and print the checkpoint path."""
    from degkit.train.adaptor import TrainConfig, train_adaptor

    content, degradation, types = _loss_weights(args.loss_weights)
    config = _options(
        TrainConfig,
        args,
        content_weight=content,
        degradation_weight=degradation,
        types_weight=types,
    )
    print(train_adaptor(config).checkpoint)
    return 0


def run_train_regressor(args: argparse.Namespace) -> int:
    """Train the level regressor and print the checkpoint path."""
    from degkit.train.regressor import RegressorConfig, train_regressor

    print(train_regressor(_options(RegressorConfig, args)))
    return 0

"""``degkit sr``: super-resolve an image or a folder of images with a trained SR model."""

from __future__ import annotations

import argparse

from degkit.cli.eval_commands import add_inference_options

__all__ = ["register", "run_sr"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sr`` sub-command."""
    p = sub.add_parser(
        "sr",
        help="super-resolve an image or a folder of images with an SR model",
        description="Writes OUT/<stem>.png for each input image (a file, or the files of a "
        "folder; files that are not images are skipped with the reason). A degkit train-sr "
        "checkpoint computes its prior once per whole image and reuses it for every tile "
        "(--prior-per-tile: once per tile); oracle priors need ground truth and are refused. "
        "Existing outputs are kept unless --overwrite.",
    )
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a degkit train-sr checkpoint (OUT/last.safetensors), a checkpoint spandrel "
        "loads, or bicubic | lanczos | nearest",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scale", type=int, help="SR factor (default: the checkpoint's; built-ins)")
    add_inference_options(p)
    p.add_argument("--prior-per-tile", action="store_true", help="compute the prior on each tile")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no line per image")
    p.set_defaults(run=run_sr)


def run_sr(args: argparse.Namespace) -> int:
    """Upscale every input; print a summary line and each skipped file with its reason."""
    from degkit.evaluate.infer import super_resolve_files
    from degkit.evaluate.models import load_model

    model = load_model(args.checkpoint, args.scale, adaptor=args.adaptor, regressor=args.regressor)
    result = super_resolve_files(
        model,
        args.input,
        args.out,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        prior_per_tile=args.prior_per_tile,
        device=args.device,
        precision=args.precision,
        overwrite=args.overwrite,
        say=(lambda line: None) if args.quiet else None,
    )
    print(f"wrote {len(result.written)} image(s) to {args.out} (x{model.scale}, {model.name})")
    for file, reason in result.skipped:
        print(f"skipped {file}: {reason}")
    return 0

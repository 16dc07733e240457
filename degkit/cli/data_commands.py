"""``degkit build``, ``degkit info`` and ``degkit push``: make, inspect and publish datasets."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run_build", "run_info", "run_push"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``build``, ``info`` and ``push`` sub-commands."""
    _register_build(sub)
    p = sub.add_parser("info", help="summarise a built dataset folder")
    p.add_argument("dir", help="dataset folder (the --out of degkit build)")
    p.add_argument("--bins", type=int, default=10, help="histogram bins per parameter")
    p.add_argument("--examples", type=int, default=5, help="caption examples to show")
    p.set_defaults(run=run_info)

    p = sub.add_parser("push", help="upload a built dataset (shards and card) to the Hub")
    p.add_argument("dir", help="dataset folder (the --out of degkit build)")
    p.add_argument("repo_id", help="Hub dataset repository, e.g. user/my-sr-data")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to push to")
    p.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the repo id; show the target, each file's size and the card's license",
    )
    p.set_defaults(run=run_push)


def _register_build(sub: argparse._SubParsersAction) -> None:
    from degkit.data.config import config_defaults
    from degkit.data.defaults import CROP_MODES, ENGINES

    d = config_defaults()  # every default lives on BuildConfig, none here
    p = sub.add_parser(
        "build",
        help="degrade HR images with a recipe into captioned parquet shards",
        description="Build a caption-labelled HR/LR parquet dataset. With no --source, "
        "the real photos embedded in installed packages are used, less the ones held out "
        "for the test sets (degkit sets).",
    )
    p.add_argument("recipe", help="recipe name (see degkit recipes) or YAML path")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--source",
        default=d["source"],
        help="image folder, .csv/.jsonl list, .parquet file or folder, saved HF dataset, "
        "'embedded' (default: the training photos) or 'embedded-heldout' (the test-set photos)",
    )
    p.add_argument(
        "--scale", type=int, default=d["scale"], help="SR factor (default: the recipe's)"
    )
    crop = p.add_mutually_exclusive_group()
    crop.add_argument(
        "--crop",
        type=int,
        default=d["crop"],
        help=f"HR crop size, a multiple of the scale (default {d['crop']})",
    )
    crop.add_argument(
        "--no-crop", dest="crop", action="store_const", const=None, help="keep whole images"
    )
    p.add_argument("--per-image", type=int, default=d["per_image"], help="crops per source image")
    p.add_argument(
        "--crop-mode",
        choices=CROP_MODES,
        default=d["crop_mode"],
        help="random or evenly spaced grid",
    )
    p.add_argument(
        "--seed", type=int, default=d["seed"], help="dataset seed (crops and degradations)"
    )
    p.add_argument(
        "--splits",
        default=d["splits"],
        help="e.g. train=0.9,validation=0.1 (by image; fractions must sum to 1)",
    )
    p.add_argument(
        "--shard",
        default=d["shard"],
        help="k/n: write only part k of n (0-based); auto: k/n of the SLURM job array "
        "or torchrun's RANK/WORLD_SIZE (join the parts with degkit merge)",
    )
    p.add_argument(
        "--rows-per-shard", type=int, default=d["rows_per_shard"], help="default: ~400 MB shards"
    )
    p.add_argument("--device", default=d["device"], help="torch device of the degradation")
    p.add_argument(
        "--workers",
        type=int,
        default=d["workers"],
        help="worker processes (default: one per core; 0: all in this process)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=d["engine"],
        help="local: this machine's --workers processes; ray: one Ray task (one CPU) per "
        "shard on the cluster at RAY_ADDRESS, else a local one (needs degkit[ray])",
    )
    p.add_argument(
        "--batch-size", type=int, default=d["batch_size"], help="samples degraded together"
    )
    p.add_argument("--resume", action="store_true", help="continue a killed build")
    p.add_argument(
        "--png-level",
        type=int,
        default=d["png_level"],
        help=f"PNG compression level, 0-9 (default {d['png_level']})",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=d["max_pixels"],
        help="skip source images with more pixels (decompression-bomb guard)",
    )
    p.add_argument(
        "--image-column", default=d["image_column"], help="image column of a parquet source"
    )
    p.add_argument(
        "--caption-column", default=d["caption_column"], help="content caption column of the source"
    )
    p.add_argument(
        "--path-column", default=d["path_column"], help="path column of a CSV/JSONL source"
    )
    p.add_argument(
        "--captioner", default=d["captioner"], help="image-to-text model for content captions"
    )
    p.add_argument("--license", default=d["license"], help="license field of the dataset card")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build the dataset and print the summary."""
    import dataclasses

    from degkit.data.build import BuildConfig, build_dataset

    fields = [f.name for f in dataclasses.fields(BuildConfig)]
    options = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    options["progress"] = not args.quiet
    summary = build_dataset(BuildConfig(**options))
    print(summary.text())
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the summary of a built dataset."""
    from degkit.data.info import info_text

    print(info_text(args.dir, bins=args.bins, n_examples=args.examples))
    return 0


def run_push(args: argparse.Namespace) -> int:
    """Upload the shards and card (or, with --dry-run, show the target, files and license)."""
    from degkit.data.hub import push_dataset, push_plan

    if args.dry_run:
        print(push_plan(args.dir, args.repo_id, args.private, args.revision).text())
        return 0
    url = push_dataset(
        args.dir, args.repo_id, private=args.private, revision=args.revision, token=args.token
    )
    print(f"pushed {args.dir} to {url}", file=sys.stderr)
    return 0

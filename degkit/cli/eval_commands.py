"""``degkit eval`` and ``degkit leaderboard``: score SR models on test sets, compare them."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_eval", "run_leaderboard", "add_inference_options", "DEFAULT_METRICS"]

DEFAULT_METRICS = "psnr_y,ssim_y,lpips"


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options of running an SR model: prior files, device, precision, tiling."""
    p.add_argument("--adaptor", help="a degkit checkpoint's prior adaptor (default: its own)")
    p.add_argument("--regressor", help="a degkit checkpoint's prior regressor (default: its own)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="autocast dtype on CUDA; the CPU always runs fp32",
    )
    p.add_argument("--tile", type=int, default=None, help="LR tile side for tiled inference")
    p.add_argument("--tile-overlap", type=int, default=16, help="LR pixels tiles overlap (16)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` and ``leaderboard`` sub-commands."""
    p = sub.add_parser(
        "eval",
        help="score an SR model or a folder of SR results on a test set",
        description="Writes OUT/per_image.csv (appended per batch; a rerun resumes) and, "
        "once every pair is scored, OUT/summary.json with provenance.",
    )
    p.add_argument("set", help="test set name (see degkit sets) or set YAML path")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        help="bicubic | lanczos | nearest | a degkit train-sr checkpoint | a checkpoint "
        "spandrel loads | package.module:function",
    )
    source.add_argument("--results", help="folder of SR results named <pair id>.png")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--metrics", default=DEFAULT_METRICS, help=f"comma-separated (default {DEFAULT_METRICS})"
    )
    p.add_argument("--name", default=None, help="method name in reports (default from --model)")
    p.add_argument("--batch-size", type=int, default=8, help="images per model call (default 8)")
    add_inference_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_eval)

    p = sub.add_parser(
        "leaderboard",
        help="merge evaluation summaries into md / csv / json / html tables with figures",
    )
    p.add_argument("results", nargs="+", help="summary.json files written by degkit eval")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run_leaderboard)


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate, then print one line per metric."""
    from pathlib import Path

    from degkit.evaluate.models import load_model
    from degkit.evaluate.results_folder import ResultsFolder
    from degkit.evaluate.run import evaluate
    from degkit.evaluate.sets import load_set

    test_set = load_set(args.set)
    if args.results:
        for flag in ("name", "adaptor", "regressor"):
            if getattr(args, flag):
                raise ValueError(f"--{flag}: applies to --model, not to a results folder")
        model = ResultsFolder(Path(args.results), test_set.scale)
    else:
        model = load_model(
            args.model,
            test_set.scale,
            name=args.name,
            adaptor=args.adaptor,
            regressor=args.regressor,
        )
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    summary = evaluate(
        test_set,
        model,
        metrics,
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        progress=not args.no_progress,
    )
    print(f"{summary.model['name']} on {test_set.name} (n={summary.n}):")
    for name, score in summary.scores.items():
        direction = summary.metrics[name]["direction"]
        text = score if isinstance(score, str) else f"{score:.4f}"
        print(f"  {name:<12} {text}  ({direction} is better)")
    print(f"wrote {args.out}/summary.json and per_image.csv")
    return 0


def run_leaderboard(args: argparse.Namespace) -> int:
    """Write the leaderboard files and list them."""
    import shlex

    from degkit.evaluate.leaderboard import write_leaderboard

    command = shlex.join(["degkit", "leaderboard", *args.results, "--out", args.out])
    for path in write_leaderboard(args.results, args.out, command=command):
        print(path)
    return 0

"""``degkit eval-adaptor``: the degradation-estimation protocol on a built test set."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_eval_adaptor"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval-adaptor`` sub-command."""
    p = sub.add_parser(
        "eval-adaptor",
        help="score the adaptor (and the level regressor) on the degradation-estimation protocol",
        description="Per type, pick a prompt level (blur sigma 0/1/2/3 within 0.5, Gaussian "
        "noise sigma 0/15/30 within 10, Poisson scale 0/1/2/3 within 0.5, JPEG quality "
        "30/50/70/90 within 10, ringing absent/present) for every LR image of a built test "
        "set: the adaptor by its fine embedding's most similar prompt 'A photo with "
        "{caption}', the regressor by its level snapped to the nearest prompt level. Writes "
        "OUT/results.json, OUT/report.md (accuracy beside chance and the majority baseline, "
        "with provenance), OUT/confusion.png and OUT/pca.png.",
    )
    p.add_argument("--data", required=True, help="a test set folder written by degkit build")
    p.add_argument("--adaptor", required=True, help="an adaptor checkpoint (train-adaptor)")
    p.add_argument("--regressor", default=None, help="a regressor checkpoint (train-regressor)")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--split", default="test", help="split of --data (default test)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (64)")
    p.set_defaults(run=run_eval_adaptor)


def run_eval_adaptor(args: argparse.Namespace) -> int:
    """Run the protocol, write the report, print accuracy per type."""
    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    from degkit.evaluate.estimation_report import write_report
    from degkit.evaluate.estimation_run import estimate

    command = ["degkit", "eval-adaptor", "--data", args.data, "--adaptor", args.adaptor]
    command += ["--regressor", args.regressor] if args.regressor else []
    command += ["--out", args.out, "--split", args.split, "--batch-size", str(args.batch_size)]
    results, fine, truth = estimate(
        args.data, args.adaptor, args.regressor, args.split, args.batch_size, command
    )
    write_report(args.out, results, fine, truth)
    for name, entry in results["types"].items():
        scores = [f"chance {entry['chance']:.3f}"]
        scores += [
            f"{m} {entry[m]['accuracy']:.3f}" for m in ("adaptor", "regressor") if m in entry
        ]
        print(f"{name}: " + ", ".join(scores))
    return 0

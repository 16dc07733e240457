"""``degkit bench``: run a leaderboard config end to end and write its report."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_bench_command"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    p = sub.add_parser(
        "bench",
        help="train and evaluate every entry of a leaderboard config; write its report",
        description="Build the training data, train the adaptor and the regressor per seed, "
        "train every SR entry (backbone x prior) per seed, evaluate all on the config's test "
        "sets and write tables with seed spreads and bootstrap intervals to --out. An "
        "interrupted run continues where it stopped when started again with the same --work.",
    )
    p.add_argument("config", help="a config file, or the name of a shipped one (e.g. deplsr)")
    p.add_argument(
        "--profile",
        default="quick",
        help="quick (under 30 min on a 2-core CPU with --jobs 2), cpu-long (about 2 h), gpu "
        "(about 10 min on one H100), full; or another profile of the config (default: quick)",
    )
    p.add_argument("--work", required=True, help="folder for datasets, checkpoints and scores")
    p.add_argument("--out", help="report folder (default: reports/<config>/<profile>)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="stages run side by side in worker processes, each with cpu_count / jobs "
        "threads and no progress bars (default 1: one at a time in this process). On a "
        "2-core CPU --jobs 2 runs the small CPU-profile networks faster",
    )
    p.set_defaults(run=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the stages not finished yet, then write the report."""
    from pathlib import Path

    from degkit.bench.config import load_bench_config
    from degkit.bench.report import write_bench_report
    from degkit.bench.run import run_bench
    from degkit.bench.visual import comparison_grid

    config = load_bench_config(args.config, args.profile)
    run, walls = run_bench(config, args.work, args.jobs)
    out = Path(args.out or f"reports/{config.name}/{config.profile}")
    out.mkdir(parents=True, exist_ok=True)
    visual = config.visual
    grid = comparison_grid(
        visual["set"],
        run.comparison_models(),
        visual["images"],
        visual["crop"],
        out / "comparison.png",
    )
    command = ["degkit", "bench", args.config, "--profile", args.profile, "--work", args.work]
    if args.jobs != 1:
        command += ["--jobs", str(args.jobs)]
    print(write_bench_report(run, walls, out, [*command, "--out", str(out)], [grid]))
    return 0

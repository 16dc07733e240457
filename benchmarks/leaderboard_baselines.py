"""Interpolation baselines (bicubic, lanczos, nearest) on every shipped test set -> leaderboard.

Same as running, for every set S in ``degkit sets`` and every method M::

    degkit eval S --model M --out reports/leaderboard/results/S/M
    degkit leaderboard reports/leaderboard/results/*/*/summary.json --out reports/leaderboard

but in one process (pairs and metrics are made once). Reruns resume: finished
results are read back, not recomputed. Usage::

    python benchmarks/leaderboard_baselines.py --out reports/leaderboard
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from degkit.evaluate.leaderboard import write_leaderboard
from degkit.evaluate.models import INTERPOLATIONS, load_model
from degkit.evaluate.run import evaluate
from degkit.evaluate.sets import available_sets, load_set
from degkit.metrics import create_metric

METRICS = ("psnr_y", "ssim_y", "lpips", "niqe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/leaderboard", help="leaderboard folder")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated")
    parser.add_argument("--methods", default=",".join(INTERPOLATIONS), help="comma-separated")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    out = Path(args.out)
    summaries = []
    for name in available_sets():
        test_set = load_set(name)
        metrics = [
            create_metric(m, scale=test_set.scale, device=args.device)
            for m in args.metrics.split(",")
        ]
        for method in args.methods.split(","):
            result = out / "results" / name / method
            evaluate(
                test_set,
                load_model(method, test_set.scale),
                metrics,
                result,
                batch_size=12,
                device=args.device,
                progress=False,
            )
            summaries.append(result / "summary.json")
            print(f"{name} {method}: done")
    command = shlex.join(["python", "benchmarks/leaderboard_baselines.py", *sys.argv[1:]])
    for path in write_leaderboard(summaries, out, command=command):
        print(path)


if __name__ == "__main__":
    main()

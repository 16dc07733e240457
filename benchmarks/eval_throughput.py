"""Images/s of ``degkit eval`` (batched) beside calling pyiqa directly, one image at a time.

Both sides score the bicubic x4 upscales of every pair of the shipped sets
with PSNR-Y and SSIM-Y (BT.601 Y on the 0-255 scale, crop border 4) and LPIPS
(AlexNet, v0.1), on the same device in the same process:

* degkit: ``degkit.evaluate.run.evaluate(set, "bicubic", metrics, out)`` per
  set: batched upscaling and scoring, the per-image CSV and the summary
  written, exactly what ``degkit eval`` runs;
* pyiqa: per pair, the LR image to a tensor, the same bicubic upscale, 8-bit
  rounding, then pyiqa's ``psnr``, ``ssim`` and ``lpips`` on that single
  image, created with the settings degkit's metric table records for them
  (``test_y_channel``, ``color_space="ycbcr"``, ``data_range=255``, crop 4).

LPIPS weights cannot be downloaded offline, so the benchmark writes randomly
initialised AlexNet and LPIPS weights into a temporary ``$TORCH_HOME``, where
pyiqa (and degkit through it) loads them: the compute is the real network's.
The report gives the largest per-image difference between the two sides' scores.
Runs alternate; medians over repeats. Usage::

    python benchmarks/eval_throughput.py --out reports/eval_throughput.md
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

METRICS = ("psnr_y", "ssim_y", "lpips")


def write_random_lpips_weights(torch_home: Path) -> None:
    """Random AlexNet + LPIPS weights where torchvision and pyiqa look for the real ones."""
    import torch
    import torchvision
    from pyiqa.archs.lpips_arch import LPIPS, default_model_urls

    torch.manual_seed(0)
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    alexnet = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    torch.save(torchvision.models.alexnet().state_dict(), checkpoints / alexnet)
    lpips_file = default_model_urls["0.1_alex"].rsplit("/", 1)[1]
    (torch_home / "hub" / "pyiqa").mkdir(parents=True, exist_ok=True)
    net = LPIPS(pretrained=False, net="alex", pnet_rand=True)
    torch.save(net.state_dict(), torch_home / "hub" / "pyiqa" / lpips_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the markdown report here")
    parser.add_argument(
        "--sets",
        default=None,
        help="comma-separated, or 'all' (default: the shipped sets that are not severity sets, "
        "which keeps a CPU run at a few minutes)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="degkit-eval-bench-"))
    os.environ["TORCH_HOME"] = str(home)  # before pyiqa is imported: it reads it at import
    write_random_lpips_weights(home)
    run(args, home)


def run(args: argparse.Namespace, home: Path) -> None:
    """Time both sides and print (and optionally write) the report."""
    import pandas as pd
    import pyiqa
    import torch
    from bench_timing import interleaved_seconds

    from degkit.evaluate.models import load_model, super_resolve
    from degkit.evaluate.run import evaluate
    from degkit.evaluate.sets import available_sets, load_set
    from degkit.metrics import create_metric
    from degkit.metrics.table import METRICS as METRIC_TABLE

    names = available_sets() if args.sets == "all" else args.sets.split(",") if args.sets else []
    names = names or [n for n in available_sets() if not n.startswith("severity_")]
    sets = [load_set(n) for n in names]
    pairs = {s.name: s.pairs() for s in sets}
    n_images = sum(len(p) for p in pairs.values())
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    ours = {m: create_metric(m, scale=4, device=args.device) for m in METRICS}
    for m in ours.values():
        if not m.available:
            raise SystemExit(f"{m.name}: {m.na_text}")
    theirs = {  # pyiqa configured as degkit's protocol states (Y of BT.601 YCbCr, 0-255, crop)
        name: pyiqa.create_metric(
            METRIC_TABLE[name].pyiqa_name,
            device=device,
            **({"crop_border": 4} if METRIC_TABLE[name].crop_is_scale else {}),
            **METRIC_TABLE[name].pyiqa_kwargs,
        )
        for name in METRICS
    }
    runs_done = [0]
    pyiqa_scores: dict[tuple[str, str], dict[str, float]] = {}

    def degkit_side() -> None:
        runs_done[0] += 1
        for s in sets:
            evaluate(
                s,
                load_model("bicubic", s.scale),
                list(ours.values()),
                home / "runs" / str(runs_done[0]) / s.name,
                batch_size=args.batch_size,
                device=args.device,
                progress=False,
            )

    def pyiqa_side() -> None:
        for s in sets:
            model = load_model("bicubic", s.scale)
            for p in pairs[s.name]:
                lr = torch.tensor(p.lr).permute(2, 0, 1)[None].to(device).float() / 255
                hr = torch.tensor(p.hr).permute(2, 0, 1)[None].to(device).float() / 255
                sr = super_resolve(model, lr).mul(255).round().div(255)
                pyiqa_scores[s.name, p.id] = {
                    k: float(metric(sr, hr).flatten()[0]) for k, metric in theirs.items()
                }

    seconds = interleaved_seconds(
        {"degkit": degkit_side, "pyiqa": pyiqa_side}, args.repeats, sync=sync
    )
    differences = {k: 0.0 for k in METRICS}
    for s in sets:
        table = pd.read_csv(home / "runs" / "1" / s.name / "per_image.csv", dtype={"id": str})
        for row in table.itertuples():
            for k in METRICS:
                diff = abs(getattr(row, k) - pyiqa_scores[s.name, row.id][k])
                differences[k] = max(differences[k], diff)
    report = _report(args, names, n_images, seconds, differences)
    print(report)
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")


def _report(args, names, n_images, seconds, differences) -> str:
    import torch

    device = args.device
    if torch.device(device).type == "cuda":
        device += f" ({torch.cuda.get_device_name()})"
    lines = [
        "# Evaluation throughput: degkit eval (batched) vs pyiqa image by image",
        "",
        "```bash",
        f"python benchmarks/eval_throughput.py --sets {','.join(names)} --device {args.device} "
        f"--batch-size {args.batch_size} --repeats {args.repeats} --out reports/eval_throughput.md",
        "```",
        "",
        f"Work: bicubic x4 of every pair of {len(names)} shipped sets ({n_images} images, "
        "48x48 / 64x64 LR), scored with PSNR-Y, SSIM-Y (crop 4) and LPIPS-Alex "
        "(random weights written by the benchmark, real compute). degkit side: "
        "`evaluate()` per set (CSV + summary written). pyiqa side: the same upscale, "
        "then `pyiqa.create_metric(...)` called per image.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
        f"median of {args.repeats} alternating runs.",
        "",
        "| implementation | seconds | images/s | speed-up |",
        "|---|---|---|---|",
    ]
    for name in ("degkit", "pyiqa"):
        speed = seconds["pyiqa"] / seconds[name]
        lines.append(
            f"| {name} | {seconds[name]:.2f} | {n_images / seconds[name]:.1f} | {speed:.2f}x |"
        )
    lines += ["", "Same work: largest per-image difference between the two sides' scores:", ""]
    lines += ["| metric | max abs difference |", "|---|---|"]
    lines += [f"| {k} | {differences[k]:.2e} |" for k in METRICS]
    lines += [
        "",
        "PSNR-Y and LPIPS agree to float rounding. degkit's SSIM-Y is Wang et al.'s SSIM on "
        "8-bit-rounded BT.601 Y with an 11 x 11 Gaussian window (sigma 1.5) over valid "
        "positions, equal to scikit-image's `structural_similarity(gaussian_weights=True, "
        "sigma=1.5, use_sample_covariance=False)` (tests/test_eval_run.py); pyiqa's `ssim` "
        "also clamps the contrast-structure term at 0, which changes the score of low-SSIM "
        "images.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

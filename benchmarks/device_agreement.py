"""How far the device code path's LR is from the CPU's, per recipe: records and 8-bit levels.

For each recipe, one batch of real-photo 256 x 256 crops is degraded twice
with the same seed and indices: on the CPU as it runs by default (ragged
batches grouped by shape, OpenCV kernels, libjpeg) and on ``--device`` (ragged
batches as canvases, torch kernels, the tensor JPEG codec). With ``--device
cpu`` the second run is the device code path on the CPU. Reported: whether the
records are identical, the fraction of LR samples that are identical, and the
fraction of 8-bit LR values (pixels x channels) off by one level and by more,
with the largest difference. Usage::

    python benchmarks/device_agreement.py --device cuda --out reports/device_agreement_cuda.md
"""

from __future__ import annotations

import argparse
import platform

import torch
from ops_throughput import photo_crops

from degkit import recipes
from degkit.ops.canvas import ragged_batches
from degkit.ops.quantize import to_uint8

RECIPES = ("realesrgan", "bsrgan", "deplsr")


def agreement(recipe: str, hr: torch.Tensor, device: torch.device, seed: int) -> str:
    """One markdown row: the device path's LR and records against the CPU default's."""
    pipeline = recipes.load(recipe).pipeline
    n = hr.shape[0]
    with ragged_batches("groups"):
        cpu = pipeline(hr, seed, range(n), 4)
    with ragged_batches("canvas"):
        dev = pipeline(hr.to(device), seed, range(n), 4)
    a, b = to_uint8(cpu.lr).int(), to_uint8(dev.lr.cpu()).int()
    diff = (a - b).abs()
    same_samples = int((diff.flatten(1).amax(1) == 0).sum())
    return (
        f"| {recipe} | {n} | {'yes' if cpu.records == dev.records else 'no'} | "
        f"{same_samples}/{n} | {(diff == 1).float().mean().item():.3%} | "
        f"{(diff > 1).float().mean().item():.3%} | {int(diff.max())} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the markdown report here")
    args = parser.parse_args()
    device = torch.device(args.device)
    hr = torch.from_numpy(photo_crops(args.batch)).permute(0, 3, 1, 2).float().div(255)
    header = [
        "| recipe | crops | records identical | LR samples identical | "
        "values 1 level off | values > 1 level off | largest difference (levels) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [agreement(name, hr.contiguous(), device, args.seed) for name in RECIPES]
    print("\n".join(header + rows))
    if args.out:
        machine = platform.processor() or platform.machine()
        if device.type == "cuda":
            machine += f", {torch.cuda.get_device_name(device)}"
        text = [
            f"# LR agreement: the device code path on {device.type} against the CPU default",
            "",
            f"Command: `python benchmarks/device_agreement.py --device {args.device} "
            f"--batch {args.batch} --seed {args.seed} --out {args.out}`",
            "",
            f"Machine: {machine}; torch {torch.__version__}.",
            "",
            "Protocol: real-photo 256 x 256 crops (scikit-image samples), x4, dataset seed "
            f"{args.seed}, indices 0..{args.batch - 1}; each recipe run once on the CPU with "
            "ragged batches grouped by shape (the CPU default) and once on the device with "
            "ragged batches as canvases; LR compared after rounding to 8 bits (values = "
            "pixels x channels).",
            "",
            *header,
            *rows,
            "",
        ]
        with open(args.out, "w") as fh:
            fh.write("\n".join(text))


if __name__ == "__main__":
    main()

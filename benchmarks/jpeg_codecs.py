"""The tensor JPEG codec (libjpeg's lossy steps in tensor ops) against libjpeg: agreement and speed.

For each quality and chroma subsampling, a batch of 256 x 256 crops of
scikit-image's astronaut, chelsea and coffee photos goes through
:func:`degkit.ops.jpeg_tensor.jpeg_round_trip` on ``--device`` (the JPEG op's
codec on CUDA) and through libjpeg(-turbo) via OpenCV on the CPU (the op's
codec there; on CUDA its time includes copying the batch to the host and back).
Agreement: PSNR between the two outputs (0-255), largest absolute difference in
8-bit levels and the fraction of pixels with any channel differing. Speed:
images/s of each, medians of alternating rounds after a warm-up. The ``mixed``
row gives sample ``i`` quality ``30 + i mod 66``, as the op's per-sample draws
do. Usage::

    python benchmarks/jpeg_codecs.py --device cuda --out reports/jpeg_codecs_cuda.md
"""

from __future__ import annotations

import argparse
import math
import platform

import numpy as np
import torch
from bench_timing import interleaved_seconds
from skimage import data

from degkit.ops.jpeg import SUBSAMPLINGS, jpeg_codec
from degkit.ops.jpeg_tensor import jpeg_round_trip
from degkit.ops.quantize import to_uint8

SIZE = 256


def photo_crops(n: int) -> torch.Tensor:
    """``n`` 256 x 256 crops (float32 N x 3 x H x W in [0, 1]) of three real photos."""
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        top = (37 * i) % (img.shape[0] - SIZE)
        left = (53 * i) % (img.shape[1] - SIZE)
        crops.append(img[top : top + SIZE, left : left + SIZE])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).contiguous()


def agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int, float]:
    """PSNR (dB, 0-255), max abs difference (levels), fraction of pixels differing."""
    diff = (a.cpu() * 255).round() - (b.cpu() * 255).round()
    mse = float(diff.square().mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return psnr, int(diff.abs().max()), float((diff != 0).any(dim=1).float().mean())


def measure(x: torch.Tensor, name: str, quality: list[int], subsampling: str, repeats: int) -> str:
    """One table row: agreement and images/s of both codecs at ``quality`` (per sample)."""
    pixels, qualities = to_uint8(x), torch.tensor(quality, device=x.device)

    def libjpeg() -> torch.Tensor:
        return jpeg_codec(x.cpu(), quality, subsampling).to(x.device)

    runs = {
        "tensor": lambda: jpeg_round_trip(pixels, qualities, subsampling).float() / 255,
        "libjpeg": libjpeg,
    }
    psnr, worst, differing = agreement(runs["tensor"](), runs["libjpeg"]())
    sync = torch.cuda.synchronize if x.is_cuda else None
    seconds = interleaved_seconds(runs, repeats, sync)
    n = x.shape[0]
    return (
        f"| {name} | {subsampling} | {psnr:.2f} | {worst} | {differing:.4f} | "
        f"{n / seconds['tensor']:,.0f} | {n / seconds['libjpeg']:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--qualities", type=int, nargs="+", default=[30, 50, 70, 90, 95])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    device = torch.device(args.device)
    x = photo_crops(args.batch).to(device)
    header = [
        "| quality | subsampling | PSNR (dB) | max diff (levels) | pixels differing "
        "| tensor codec img/s | libjpeg (OpenCV, CPU) img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = []
    qualities = {str(q): [q] * args.batch for q in args.qualities}
    qualities["mixed"] = [30 + i % 66 for i in range(args.batch)]
    for subsampling in SUBSAMPLINGS:
        for name, quality in qualities.items():
            rows.append(measure(x, name, quality, subsampling, args.repeats))
            print(rows[-1], flush=True)
    if args.out:
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        if device.type == "cuda":
            machine += f", {torch.cuda.get_device_name(device)}"
        text = [
            f"# JPEG: the tensor codec on {args.device} against libjpeg (OpenCV)",
            "",
            f"Command: `python benchmarks/jpeg_codecs.py --device {args.device} --batch "
            f"{args.batch} --repeats {args.repeats} --out {args.out}`",
            "",
            f"Machine: {machine}; torch {torch.__version__}.",
            "",
            f"{args.batch} crops of 256 x 256; images/s = batch / median wall time of "
            f"{args.repeats} alternating rounds after a warm-up (rounding to 8 bits and "
            "division by 255 included). PSNR inf and 0 levels: the same pixels.",
            "",
            *header,
            *rows,
            "",
        ]
        with open(args.out, "w") as fh:
            fh.write("\n".join(text))


if __name__ == "__main__":
    main()

"""Milliseconds to build ``blur``'s kernels, and to filter with them off the OpenCV path.

Real-ESRGAN's random kernels (six Gaussian-family types, a sinc a tenth of the
time, kernel size 7..21 per sample) for a batch of samples:

* ``host, per size``: on the host, one build per kernel size (OpenCV's path);
* ``device, fixed sizes``: on ``--device``, all samples in one computation per
  family at :data:`~degkit.ops.filtering.BUILD_SIZES` (the torch path);

then the whole op on a ``batch x 3 x 64 x 64`` batch through the torch path:
as a plain batch without OpenCV (kernels built there, one ``conv2d`` per kind
of kernel) and as a canvas. Medians over interleaved repeats. Usage::

    python benchmarks/kernel_build.py --device cpu --batch 256 --repeats 20
"""

from __future__ import annotations

import argparse

import torch
from bench_timing import interleaved_seconds, print_milliseconds
from canvas_blur import without_opencv

from degkit.ops import create_op
from degkit.ops.blur import _blur_kernels_at, _separable_sigmas
from degkit.ops.canvas import Canvas, ragged_batches
from degkit.rng import BatchStreams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    op = create_op("blur", kernel_size=(7, 21), sinc_prob=0.1)
    params = op.sample(BatchStreams(0, range(args.batch)), args.batch)
    separable, sigma_h, sigma_v = _separable_sigmas(params)
    kinds = [
        ((separable == kind).nonzero().flatten(), (sigma_h, sigma_v) if kind else None)
        for kind in (False, True)
    ]

    def build(on: torch.device | None) -> object:
        return [_blur_kernels_at(params, positions, sigmas, on) for positions, sigmas in kinds]

    x = torch.rand(args.batch, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
    canvas = Canvas(x, torch.tensor([[64, 64]] * args.batch))

    def plain() -> object:
        with without_opencv():
            return op.apply(x, params)

    def on_canvas() -> object:
        with ragged_batches("canvas"):
            return op.apply_batched(canvas, params)

    runs = {
        "host, per size": lambda: build(None),
        "device, fixed sizes": lambda: build(device),
        "op, plain batch": plain,
        "op, canvas": on_canvas,
    }
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    with torch.no_grad():
        seconds = interleaved_seconds(runs, args.repeats, sync)
    print_milliseconds(
        f"blur kernels of {args.batch} samples on {device}, {torch.get_num_threads()} threads",
        seconds,
    )


if __name__ == "__main__":
    main()

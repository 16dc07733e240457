"""Seconds per ragged batch of degkit's ``blur``: one canvas pass against grouping by shape.

A batch of 32 samples, each of its own height and width (38..120 pixels), is
blurred with Real-ESRGAN's random kernels (kernel size 7..21 per sample; a
sinc a tenth of the time). Three ways run in the same process, taking turns:

* ``groups, OpenCV``: grouping by shape, as the CPU does by default (each
  sample through OpenCV's ``filter2D`` / ``sepFilter2D``);
* ``groups, conv2d``: grouping by shape, each group's kernels built where its
  images are and run through one ``conv2d`` per kind of kernel (what a GPU
  does without canvases);
* ``canvas``: the whole batch on one canvas, one gather and one ``conv2d`` per
  kind of kernel (separable, 2-D).

Medians over repeats. Usage::

    python benchmarks/canvas_blur.py --device cpu --repeats 20
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from unittest import mock

import torch
from bench_timing import interleaved_seconds, print_milliseconds

from degkit.ops import blur, create_op, filtering
from degkit.ops.canvas import Canvas, ragged_batches
from degkit.rng import BatchStreams


@contextlib.contextmanager
def without_opencv() -> Iterator[None]:
    """Within the block, blur takes its ``conv2d`` path on the CPU as well."""
    never = mock.patch.object(blur, "use_opencv", lambda x, k: False)
    with never, mock.patch.object(filtering, "use_opencv", lambda x, k: False):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(38, 121, (args.batch, 2), generator=g).tolist()
    images = [torch.rand(3, h, w, generator=g).to(device) for h, w in sizes]
    op = create_op("blur", kernel_size=(7, 21), sinc_prob=0.1)
    params = op.sample(BatchStreams(0, range(args.batch)), args.batch)
    canvas = Canvas.from_images(images)

    def grouped() -> object:
        with ragged_batches("groups"):
            return op.apply(images, params)

    def grouped_conv2d() -> object:
        with without_opencv(), ragged_batches("groups"):
            return op.apply(images, params)

    def on_canvas() -> object:
        with ragged_batches("canvas"):
            return op.apply_batched(canvas, params)

    runs = {"groups, conv2d": grouped_conv2d, "canvas": on_canvas}
    if device.type == "cpu":
        runs = {"groups, OpenCV": grouped, **runs}
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    seconds = interleaved_seconds(runs, args.repeats, sync)
    print_milliseconds(
        f"blur of {args.batch} ragged samples on {device}, {torch.get_num_threads()} threads",
        seconds,
    )


if __name__ == "__main__":
    main()

"""Time a per-sample resize of one batch three ways, then the final resize back.

A batch of ``--n`` random ``--size`` x ``--size`` images gets per-sample
scales ``U(0.15, 1.5)`` and interpolations (area, bilinear, bicubic), as
Real-ESRGAN's first resize draws them; each way is then resized to
``size / 4`` (``final_resize``):

* ``loop``: ``F.interpolate`` of every sample alone (the clamp for bicubic);
* ``groups``: ``resize`` with ragged batches grouped by shape (the CPU
  default: OpenCV where it computes the same, else ``F.interpolate``);
* ``canvas``: ``resize`` with ragged batches on canvases (the default on
  accelerators: one pass for the whole batch).

Prints the median milliseconds of ``--repeat`` runs. Usage::

    OMP_NUM_THREADS=1 python benchmarks/resize_canvas.py --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from degkit.ops import create_op
from degkit.ops.canvas import ragged_batches
from degkit.ops.resize import INTERPOLATIONS


def _median_ms(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    fn()  # warm-up (tap caches, kernels)
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="batch size")
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, args.size, args.size, generator=gen).to(device)
    scale = 0.15 + 1.35 * torch.rand(args.n, generator=gen, dtype=torch.float64)
    params = {
        "scale": scale,
        "mode": torch.randint(0, 3, (args.n,), generator=gen),
        "antialias": torch.zeros(args.n, dtype=torch.bool),
    }
    sizes = torch.floor(args.size * scale).clamp_min(1).long().tolist()
    modes = [INTERPOLATIONS[m] for m in params["mode"].tolist()]
    target = args.size // 4
    final_params = {
        "size": torch.tensor([[target, target]] * args.n),
        "mode": params["mode"],
        "antialias": params["antialias"],
    }
    resize, final = create_op("resize"), create_op("final_resize")

    def loop_resize() -> list[torch.Tensor]:
        out = []
        for i, (s, mode) in enumerate(zip(sizes, modes, strict=True)):
            y = F.interpolate(x[i : i + 1], size=(s, s), mode=mode)
            out.append(y.clamp(0, 1) if mode == "bicubic" else y)
        return out

    def loop_final(ys: list[torch.Tensor]) -> None:
        for y, mode in zip(ys, modes, strict=True):
            F.interpolate(y, size=(target, target), mode=mode)

    print(f"{args.n} x 3 x {args.size}^2 on {device}, scales U(0.15, 1.5), then to {target}^2")
    print("median ms: resize, final_resize")
    ragged = loop_resize()
    times = [_median_ms(loop_resize, device, args.repeat)]
    times.append(_median_ms(lambda: loop_final(ragged), device, args.repeat))
    print(f"{'loop':>7}: {times[0]:8.1f} {times[1]:8.1f}")
    for mode in ("groups", "canvas"):
        with ragged_batches(mode):
            ragged = resize.apply_batched(x, params)
            times = [_median_ms(lambda: resize.apply_batched(x, params), device, args.repeat)]
            times.append(
                _median_ms(
                    lambda r=ragged: final.apply_batched(r, final_params), device, args.repeat
                )
            )
        print(f"{mode:>7}: {times[0]:8.1f} {times[1]:8.1f}")


if __name__ == "__main__":
    main()

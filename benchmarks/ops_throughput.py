"""Images/s of degkit ops and of a blur + resize + noise + JPEG chain, beside peers.

The chain degrades 256 x 256 crops to 64 x 64: isotropic Gaussian blur (sigma
U(0.2, 3), kernel 7..21 per sample), resize to 64 x 64 (area), Gaussian noise
(sigma U(1, 30) / 255) and JPEG (quality U(30, 95)). Three implementations
run in the same process on the same crops:

* degkit: batched, per-sample parameters, records kept (codec JPEG = libjpeg
  through Pillow; on CUDA also the differentiable JPEG);
* albumentations: per image on uint8 HWC arrays (OpenCV), as users run it;
* Kornia: batched, per-sample sigma and quality, one kernel size per batch,
  ``jpeg_codec_differentiable``.

It also times the whole Real-ESRGAN x4 degradation, 256 x 256 -> 64 x 64:
degkit's ``realesrgan`` recipe (per-sample scales, records), with the ragged
batches its per-sample resizes make kept as canvases (one padded tensor; the
default off the CPU) and as groups of equal shape (the default on the CPU),
and replaying records planned beforehand (the device's share of
``train-sr --degrade-on device``, whose DataLoader workers plan), and, with
``--basicsr-src`` (BasicSR's source archive, see ``basicsr_realesrgan.py``),
BasicSR's own functions run as Real-ESRGAN's training step runs them (one
resize scale per batch), with the per-sample
kernels its dataset draws on the CPU counted or not.

Medians over repeats. Usage::

    python benchmarks/ops_throughput.py --out reports/ops_throughput.md
"""

from __future__ import annotations

import argparse
import functools
import platform
from collections.abc import Callable

import albumentations as A
import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F
from bench_timing import interleaved_seconds

from degkit import recipes
from degkit.ops import create_op
from degkit.ops.canvas import canvas_enabled, ragged_batches
from degkit.rng import BatchStreams

HR, LR = 256, 64
RAGGED_NAMES = {"canvas": "canvases", "groups": "shape groups"}


def photo_crops(n: int) -> np.ndarray:
    """``n`` real-photo crops (uint8, N x 256 x 256 x 3) from scikit-image's samples."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        top = (37 * i) % (img.shape[0] - HR)
        left = (53 * i) % (img.shape[1] - HR)
        crops.append(img[top : top + HR, left : left + HR, :3])
    return np.stack(crops)


def degkit_chain(jpeg_mode: str) -> Callable[[torch.Tensor, BatchStreams], torch.Tensor]:
    """The benchmark chain built from degkit ops (sample, apply and describe each)."""
    blur = create_op("blur", kernel_types=("iso",), sigma=(0.2, 3.0), kernel_size=(7, 21))
    resize = create_op("final_resize", modes=("area",))
    noise = create_op("gaussian_noise", sigma=(1.0, 30.0), gray_prob=0.0)
    jpeg = create_op("jpeg", quality=(30, 95), mode=jpeg_mode)

    def run(x: torch.Tensor, rng: BatchStreams) -> torch.Tensor:
        target = {"target_size": torch.tensor([[LR, LR]] * x.shape[0])}
        x, _ = blur(x, rng.child("blur"))
        x, _ = resize(x, rng.child("resize"), target)
        x, _ = noise(x, rng.child("noise"))
        x, _ = jpeg(x, rng.child("jpeg"))
        return x

    return run


def albumentations_chain() -> A.Compose:
    """The same chain, per image, with albumentations (OpenCV)."""
    return A.Compose(
        [
            A.GaussianBlur(blur_limit=(7, 21), sigma_limit=(0.2, 3.0), p=1.0),
            A.Resize(LR, LR, interpolation=cv2.INTER_AREA),
            A.GaussNoise(std_range=(1 / 255, 30 / 255), p=1.0),
            A.ImageCompression(quality_range=(30, 95), p=1.0),
        ]
    )


def kornia_chain(x: torch.Tensor) -> torch.Tensor:
    """The same chain, batched, with Kornia."""
    n = x.shape[0]
    sigma = torch.empty(n, 1, device=x.device).uniform_(0.2, 3.0).expand(n, 2)
    x = kornia.filters.gaussian_blur2d(x, (21, 21), sigma)
    x = F.interpolate(x, size=(LR, LR), mode="area")
    x = x + torch.randn_like(x) * torch.empty(n, 1, 1, 1, device=x.device).uniform_(1, 30) / 255
    quality = torch.empty(n, device=x.device).uniform_(30, 95)
    return kornia.enhance.jpeg_codec_differentiable(x.clamp(0, 1), quality)


def single_ops() -> dict[str, tuple[Callable, int]]:
    """Single degkit ops at the size they see in the chain: name -> (op, input size)."""
    return {
        "blur iso 7..21 @256": (create_op("blur", kernel_types=("iso",)), HR),
        "blur Real-ESRGAN mix @256": (create_op("blur", sinc_prob=0.1), HR),
        "final_resize 256->64": (create_op("final_resize"), HR),
        "gaussian_noise @64": (create_op("gaussian_noise"), LR),
        "poisson_noise @64": (create_op("poisson_noise"), LR),
        "jpeg codec @64": (create_op("jpeg", mode="codec"), LR),
        "jpeg differentiable @64": (create_op("jpeg", mode="differentiable"), LR),
        "usm @256": (create_op("usm"), HR),
    }


def measure_batch(device: torch.device, n: int, repeats: int) -> list[str]:
    """Chain rates of every implementation and single-op rates for one device and batch size."""
    sync = device.type == "cuda"
    crops = photo_crops(n)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).contiguous().to(device)
    rng = BatchStreams(0, range(n))
    target = {"target_size": torch.tensor([[LR, LR]] * n)}
    album = albumentations_chain()
    chains = {"degkit (codec JPEG)": functools.partial(degkit_chain("codec"), x, rng)}
    if device.type == "cuda":
        chains["degkit (differentiable JPEG)"] = functools.partial(
            degkit_chain("differentiable"), x, rng
        )
    chains["kornia"] = functools.partial(kornia_chain, x)
    chains["albumentations (per image)"] = lambda: [album(image=img) for img in crops]
    wait = torch.cuda.synchronize if sync else None
    seconds = interleaved_seconds(chains, repeats, wait)
    rates = {name: n / s for name, s in seconds.items()}
    base = rates["degkit (codec JPEG)"]
    rows = [
        f"| chain | {name} | {device.type} | {n} | {rate:,.0f} | {base / rate:.2f}x |"
        for name, rate in rates.items()
    ]
    small = F.interpolate(x, size=(LR, LR), mode="area")
    ops = {
        name: functools.partial(op, x if size == HR else small, rng, target)
        for name, (op, size) in single_ops().items()
    }
    for name, s in interleaved_seconds(ops, repeats, wait).items():
        rows.append(f"| op | {name} | {device.type} | {n} | {n / s:,.0f} | |")
    return rows


def measure_realesrgan(
    device: torch.device, n: int, repeats: int, basicsr_src: str | None
) -> list[str]:
    """Real-ESRGAN degradation rates: degkit's recipe with ragged batches as canvases and as
    shape groups, beside BasicSR's functions when its source is given."""
    x = (
        torch.from_numpy(photo_crops(n))
        .permute(0, 3, 1, 2)
        .float()
        .div(255)
        .contiguous()
        .to(device)
    )
    pipeline = recipes.load("realesrgan").pipeline

    def degkit_recipe(mode: str) -> Callable[[], object]:
        def degrade() -> object:
            with ragged_batches(mode):
                return pipeline(x, 0, range(n), 4)

        return degrade

    default = "canvas" if canvas_enabled(device) else "groups"
    other = "groups" if default == "canvas" else "canvas"
    records = pipeline.plan(0, range(n), (HR, HR), 4)
    runs = {
        "degkit realesrgan recipe": degkit_recipe(default),
        f"degkit realesrgan recipe, ragged batches as {RAGGED_NAMES[other]}": degkit_recipe(other),
        "degkit realesrgan recipe, records planned beforehand": lambda: pipeline.replay(
            x, records, 4
        ),
    }
    if basicsr_src:
        from basicsr_realesrgan import BasicSRRealESRGAN, load_basicsr

        basicsr = BasicSRRealESRGAN(load_basicsr(basicsr_src), device)
        kernels = basicsr.kernels(n)
        runs["BasicSR, kernels drawn beforehand"] = lambda: basicsr(x, kernels)
        runs["BasicSR, kernels drawn per batch"] = lambda: basicsr(x, basicsr.kernels(n))
    wait = torch.cuda.synchronize if device.type == "cuda" else None
    rates = {name: n / s for name, s in interleaved_seconds(runs, repeats, wait).items()}
    base = rates["degkit realesrgan recipe"]
    return [
        f"| realesrgan | {name} | {device.type} | {n} | {rate:,.0f} | {base / rate:.2f}x |"
        for name, rate in rates.items()
    ]


def run(
    batch_sizes: list[int], repeats: int, devices: list[str], basicsr_src: str | None = None
) -> list[str]:
    """Run every measurement; print and return markdown table rows."""
    rows = []
    for device in map(torch.device, devices):
        for n in batch_sizes:
            batch_rows = measure_batch(device, n, repeats)
            batch_rows += measure_realesrgan(device, n, repeats, basicsr_src)
            print("\n".join(batch_rows), flush=True)
            rows += batch_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="write the markdown table here")
    parser.add_argument(
        "--devices",
        nargs="+",
        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"],
        help="devices to measure (default: cpu, and cuda when present)",
    )
    parser.add_argument(
        "--basicsr-src",
        help="BasicSR's source archive (.tar.gz or unpacked), for the Real-ESRGAN rows",
    )
    args = parser.parse_args()
    header = [
        "| kind | implementation | device | batch | images/s | degkit / this |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(header))
    rows = run(args.batch_sizes, args.repeats, args.devices, args.basicsr_src)
    if args.out:
        machine = (
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
            + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
        )
        text = "\n".join(
            [
                "# Degradation op throughput",
                "",
                "Command: `python benchmarks/ops_throughput.py "
                f"--batch-sizes {' '.join(map(str, args.batch_sizes))} --repeats {args.repeats}"
                f" --devices {' '.join(args.devices)}"
                + (" --basicsr-src basicsr-1.4.2.tar.gz" if args.basicsr_src else "")
                + f" --out {args.out}`",
                "",
                f"Machine: {machine}; torch {torch.__version__}, kornia {kornia.__version__}, "
                f"albumentations {A.__version__}, OpenCV {cv2.__version__}.",
                "",
                "Protocol: real-photo 256 x 256 crops (scikit-image samples); chain = iso Gaussian "
                "blur (sigma U(0.2, 3), kernel 7..21; Kornia: 21 for the whole batch) -> area "
                "resize to 64 x 64 -> Gaussian noise (sigma U(1, 30)/255) -> JPEG (quality "
                "U(30, 95)). Images/s = batch / median wall time of "
                f"{args.repeats} rounds after a warm-up round; in each round every chain "
                "(and, separately, every op) runs once in turn, so drift in machine speed hits "
                "all alike; "
                "including degkit's parameter sampling and records. 'degkit / this' is the "
                "degkit codec-JPEG chain's rate divided by the row's rate (same device, batch). "
                "Op rows: one degkit op at the size it sees in the chain."
                + " Realesrgan rows: the whole Real-ESRGAN x4 degradation, 256 x 256 -> 64 x 64; "
                "degkit's recipe (every sample its own resize scale, mode, kernel and noise; "
                "libjpeg; records kept), the ragged batches after its per-sample resizes kept "
                "as canvases (one padded tensor, the default off the CPU) or as groups of equal "
                "shape (the default on the CPU), or replaying records planned beforehand (as "
                "DataLoader workers plan them for `train-sr --degrade-on device`)"
                + (
                    ", against BasicSR 1.4.2's own functions in the order of "
                    "Real-ESRGAN's training step (one resize scale and mode per batch; DiffJPEG), "
                    "its per-sample kernels drawn on the CPU as its dataset does, outside the "
                    "timing or inside it"
                    if args.basicsr_src
                    else ""
                )
                + "; 'degkit / this' relative to degkit's recipe in its default mode.",
                "",
                *header,
                *rows,
                "",
            ]
        )
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()

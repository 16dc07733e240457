"""Real-ESRGAN's training degradation made of BasicSR's own functions, as a timing baseline.

BasicSR (the library Real-ESRGAN trains with) draws three 21 x 21 kernels per
sample on the CPU in its dataset (``RealESRGANDataset.__getitem__``) and
degrades whole batches on the training device in ``RealESRGANModel.feed_data``:
USM-sharpened GT, blur, one resize scale and mode per batch, Gaussian or
Poisson noise, DiffJPEG, a second blur / resize / noise, and the final resize +
sinc and JPEG in either order, then rounding to 8 bits. :class:`BasicSRRealESRGAN`
runs that sequence with the x4plus training settings, calling the functions of
BasicSR's source archive (``degradations.py``, ``img_process_util.py``,
``diffjpeg.py``, loaded from the files, without installing BasicSR); get it with::

    pip download --no-deps --no-binary :all: basicsr==1.4.2 -d basicsr-src

and pass the ``.tar.gz`` (or the folder it unpacks to) as ``--basicsr-src``.
The paired random crop and the training-pair queue of ``feed_data`` are left
out: they move no pixels through a degradation.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# RealESRGAN x4plus training options (Real-ESRGAN's options/train_realesrgan_x4plus.yml).
KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
KERNEL_PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
KERNEL_SIZES = [2 * v + 1 for v in range(3, 11)]
STAGES = (
    {
        "sigma": [0.2, 3.0],
        "sinc_prob": 0.1,
        "resize_prob": [0.2, 0.7, 0.1],
        "resize_range": [0.15, 1.5],
        "noise_range": [1, 30],
        "poisson_range": [0.05, 3.0],
    },
    {
        "sigma": [0.2, 1.5],
        "sinc_prob": 0.1,
        "resize_prob": [0.3, 0.4, 0.3],
        "resize_range": [0.3, 1.2],
        "noise_range": [1, 25],
        "poisson_range": [0.05, 2.5],
    },
)
SCALE = 4
GRAY_PROB, GAUSSIAN_PROB, SECOND_BLUR_PROB, FINAL_SINC_PROB = 0.4, 0.5, 0.8, 0.8
JPEG_RANGE = (30, 95)


def _module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_basicsr(src: str | Path) -> types.SimpleNamespace:
    """BasicSR's degradation functions from its source archive (``.tar.gz`` or unpacked folder)."""
    src = Path(src)
    if src.is_file():
        folder = Path(tempfile.mkdtemp(prefix="basicsr-"))
        with tarfile.open(src) as archive:
            archive.extractall(folder, filter="data")
        src = folder
    found = sorted(src.rglob("basicsr/data/degradations.py"))
    if not found:
        raise FileNotFoundError(f"--basicsr-src {src}: no basicsr/data/degradations.py inside")
    root = found[0].parent.parent
    # degradations.py imports rgb_to_grayscale from a torchvision module that
    # torchvision 0.17 removed; the function lives on in transforms.functional.
    if "torchvision.transforms.functional_tensor" not in sys.modules:
        import torchvision.transforms.functional as functional

        sys.modules["torchvision.transforms.functional_tensor"] = functional
    degradations = _module("basicsr_degradations", root / "data" / "degradations.py")
    process = _module("basicsr_img_process_util", root / "utils" / "img_process_util.py")
    diffjpeg = _module("basicsr_diffjpeg", root / "utils" / "diffjpeg.py")
    return types.SimpleNamespace(
        random_mixed_kernels=degradations.random_mixed_kernels,
        circular_lowpass_kernel=degradations.circular_lowpass_kernel,
        gaussian_noise=degradations.random_add_gaussian_noise_pt,
        poisson_noise=degradations.random_add_poisson_noise_pt,
        filter2D=process.filter2D,
        USMSharp=process.USMSharp,
        DiffJPEG=diffjpeg.DiffJPEG,
    )


class BasicSRRealESRGAN:
    """Real-ESRGAN x4plus's degradation with BasicSR's functions on ``device``."""

    def __init__(self, basicsr: types.SimpleNamespace, device: torch.device) -> None:
        self.basicsr = basicsr
        self.device = device
        self.jpeger = basicsr.DiffJPEG(differentiable=False).to(device)
        self.usm = basicsr.USMSharp().to(device)

    def _kernel(self, stage: dict) -> np.ndarray:
        size = random.choice(KERNEL_SIZES)
        if np.random.uniform() < stage["sinc_prob"]:
            cutoff = np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
            kernel = self.basicsr.circular_lowpass_kernel(cutoff, size, pad_to=False)
        else:
            sigma = stage["sigma"]
            kernel = self.basicsr.random_mixed_kernels(
                KERNELS, KERNEL_PROBS, size, sigma, sigma, [-math.pi, math.pi],
                [0.5, 4], [1, 2], noise_range=None,
            )  # fmt: skip
        pad = (21 - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad)))

    def kernels(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each sample's first, second and final-sinc kernel, drawn as the dataset does."""
        first, second, sinc = [], [], []
        pulse = np.zeros((21, 21))
        pulse[10, 10] = 1
        for _ in range(n):
            first.append(self._kernel(STAGES[0]))
            second.append(self._kernel(STAGES[1]))
            if np.random.uniform() < FINAL_SINC_PROB:
                cutoff = np.random.uniform(np.pi / 3, np.pi)
                size = random.choice(KERNEL_SIZES)
                sinc.append(self.basicsr.circular_lowpass_kernel(cutoff, size, pad_to=21))
            else:
                sinc.append(pulse)
        return tuple(
            torch.from_numpy(np.stack(k)).float().to(self.device) for k in (first, second, sinc)
        )

    def _resize_noise(self, out: torch.Tensor, stage: dict, size: tuple[int, int] | None):
        kind = random.choices(["up", "down", "keep"], stage["resize_prob"])[0]
        low, high = stage["resize_range"]
        scale = {"up": np.random.uniform(1, high), "down": np.random.uniform(low, 1)}.get(kind, 1)
        mode = random.choice(["area", "bilinear", "bicubic"])
        if size is None:
            out = F.interpolate(out, scale_factor=scale, mode=mode)
        else:
            out = F.interpolate(out, size=(int(size[0] * scale), int(size[1] * scale)), mode=mode)
        if np.random.uniform() < GAUSSIAN_PROB:
            return self.basicsr.gaussian_noise(
                out, sigma_range=stage["noise_range"], clip=True, rounds=False, gray_prob=GRAY_PROB
            )
        return self.basicsr.poisson_noise(
            out, scale_range=stage["poisson_range"], gray_prob=GRAY_PROB, clip=True, rounds=False
        )

    def _jpeg(self, out: torch.Tensor) -> torch.Tensor:
        quality = out.new_zeros(out.size(0)).uniform_(*JPEG_RANGE)
        # .contiguous(): filter2D views its input, and DiffJPEG's output on the CPU is strided
        return self.jpeger(torch.clamp(out, 0, 1), quality=quality).contiguous()

    def __call__(self, gt: torch.Tensor, kernels: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The LR batch of ``gt`` (``N x 3 x H x W`` in [0, 1]), rounded to 8 bits."""
        first, second, sinc = kernels
        height, width = gt.shape[-2:]
        target = (height // SCALE, width // SCALE)
        out = self.basicsr.filter2D(self.usm(gt), first)
        out = self._jpeg(self._resize_noise(out, STAGES[0], None))
        if np.random.uniform() < SECOND_BLUR_PROB:
            out = self.basicsr.filter2D(out, second)
        out = self._resize_noise(out, STAGES[1], target)
        mode = random.choice(["area", "bilinear", "bicubic"])
        if np.random.uniform() < 0.5:
            out = F.interpolate(out, size=target, mode=mode)
            out = self._jpeg(self.basicsr.filter2D(out, sinc))
        else:
            out = F.interpolate(self._jpeg(out), size=target, mode=mode)
            out = self.basicsr.filter2D(out, sinc)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.0

"""The metric table: every registered metric, its pyiqa counterpart and its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class RequiredFile:
    """A weights/parameter file a metric needs locally.

    ``folder`` is ``"pyiqa"`` ($TORCH_HOME/hub/pyiqa), ``"checkpoints"``
    ($TORCH_HOME/hub/checkpoints, torchvision backbones), ``"clip"``
    ($TORCH_HOME/hub/clip) or ``"hf:<repo id>"`` (the Hugging Face hub cache).
    """

    name: str
    folder: str
    what: str


@dataclass(frozen=True)
class MetricSpec:
    """Defaults of one metric.

    ``implementation`` is ``"degkit"`` (batched float64 torch code in
    :mod:`degkit.metrics.pixel`, validated against pyiqa) or ``"pyiqa"``.
    ``crop_is_scale`` makes the border crop default to the SR scale (the SR
    protocol); otherwise it defaults to 0 (pyiqa's whole-image default).
    """

    name: str
    pyiqa_name: str
    implementation: str
    reference: str  # "full" | "none"
    direction: str  # "higher" | "lower"
    colour_space: str  # "y" | "rgb"
    y_transform: str | None  # "bt601_ycbcr" | "yiq" | None
    data_range: str
    crop_is_scale: bool
    pyiqa_kwargs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    required_files: tuple[RequiredFile, ...] = ()
    required_modules: tuple[str, ...] = ()
    min_size: int = 1


def _spec(**kwargs: Any) -> MetricSpec:
    kwargs["pyiqa_kwargs"] = MappingProxyType(dict(kwargs.get("pyiqa_kwargs", {})))
    return MetricSpec(**kwargs)


_PIXEL = dict(implementation="degkit", reference="full", direction="higher", crop_is_scale=True)
_PYIQA_FR = dict(implementation="pyiqa", reference="full", crop_is_scale=False)
_PYIQA_NR = dict(implementation="pyiqa", reference="none", crop_is_scale=False)

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            name="psnr_y",
            pyiqa_name="psnr",
            colour_space="y",
            y_transform="bt601_ycbcr",
            data_range="0-255",
            pyiqa_kwargs={"test_y_channel": True, "color_space": "ycbcr", "data_range": 255},
            **_PIXEL,
        ),
        _spec(
            name="ssim_y",
            pyiqa_name="ssim",
            colour_space="y",
            y_transform="bt601_ycbcr",
            data_range="0-255",
            pyiqa_kwargs={"test_y_channel": True, "color_space": "ycbcr"},
            min_size=11,
            **_PIXEL,
        ),
        _spec(
            name="psnr",
            pyiqa_name="psnr",
            colour_space="rgb",
            y_transform=None,
            data_range="0-255",
            pyiqa_kwargs={"test_y_channel": False},
            **_PIXEL,
        ),
        _spec(
            name="ms_ssim",
            pyiqa_name="ms_ssim",
            direction="higher",
            colour_space="y",
            y_transform="yiq",
            data_range="0-255",
            min_size=161,
            **_PYIQA_FR,
        ),
        _spec(
            name="fsim",
            pyiqa_name="fsim",
            direction="higher",
            colour_space="rgb",
            y_transform=None,
            data_range="0-255",
            **_PYIQA_FR,
        ),
        _spec(
            name="vif",
            pyiqa_name="vif",
            direction="higher",
            colour_space="y",
            y_transform="yiq",
            data_range="0-255",
            min_size=33,
            **_PYIQA_FR,
        ),
        _spec(
            name="gmsd",
            pyiqa_name="gmsd",
            direction="lower",
            colour_space="y",
            y_transform="yiq",
            data_range="0-255",
            **_PYIQA_FR,
        ),
        _spec(
            name="nlpd",
            pyiqa_name="nlpd",
            direction="lower",
            colour_space="y",
            y_transform="yiq",
            data_range="0-1",
            **_PYIQA_FR,
        ),
        _spec(
            name="lpips",
            pyiqa_name="lpips",
            direction="lower",
            colour_space="rgb",
            y_transform=None,
            data_range="0-1",
            required_files=(
                RequiredFile("LPIPS_v0.1_alex-df73285e.pth", "pyiqa", "LPIPS v0.1 linear layers"),
                RequiredFile("alexnet-owt-7be5be79.pth", "checkpoints", "torchvision AlexNet"),
            ),
            **_PYIQA_FR,
        ),
        _spec(
            name="dists",
            pyiqa_name="dists",
            direction="lower",
            colour_space="rgb",
            y_transform=None,
            data_range="0-1",
            required_files=(
                RequiredFile("DISTS_weights-f5e65c96.pth", "pyiqa", "DISTS alpha/beta weights"),
                RequiredFile("vgg16-397923af.pth", "checkpoints", "torchvision VGG16"),
            ),
            **_PYIQA_FR,
        ),
        _spec(
            name="niqe",
            pyiqa_name="niqe",
            implementation="pyiqa",
            reference="none",
            direction="lower",
            colour_space="y",
            y_transform="bt601_ycbcr",
            data_range="0-255",
            crop_is_scale=True,
            pyiqa_kwargs={"test_y_channel": True, "color_space": "ycbcr"},
            min_size=96,
        ),
        _spec(
            name="piqe",
            pyiqa_name="piqe",
            direction="lower",
            colour_space="y",
            y_transform="yiq",
            data_range="0-1",
            **_PYIQA_NR,
        ),
        _spec(
            name="musiq",
            pyiqa_name="musiq",
            direction="higher",
            colour_space="rgb",
            y_transform=None,
            data_range="0-1",
            required_files=(
                RequiredFile("musiq_koniq_ckpt-e95806b9.pth", "pyiqa", "MUSIQ (KonIQ-10k)"),
            ),
            **_PYIQA_NR,
        ),
        _spec(
            name="maniqa",
            pyiqa_name="maniqa",
            direction="higher",
            colour_space="rgb",
            y_transform=None,
            data_range="0-1",
            required_files=(
                RequiredFile("ckpt_koniq10k.pt", "pyiqa", "MANIQA (KonIQ-10k)"),
                RequiredFile(
                    "model.safetensors",
                    "hf:timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
                    "timm ViT-B/8 backbone",
                ),
            ),
            min_size=224,
            **_PYIQA_NR,
        ),
        _spec(
            name="clipiqa",
            pyiqa_name="clipiqa",
            direction="higher",
            colour_space="rgb",
            y_transform=None,
            data_range="0-1",
            required_files=(RequiredFile("RN50.pt", "clip", "OpenAI CLIP RN50"),),
            required_modules=("clip",),
            **_PYIQA_NR,
        ),
    )
}

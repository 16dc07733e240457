"""The metric table: every registered metric, its pyiqa counterpart and its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType


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
    y_transform: str | None  # "bt601_ycbcr" | "yiq" | None (RGB)
    data_range: str
    crop_is_scale: bool
    min_size: int
    pyiqa_kwargs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    required_files: tuple[RequiredFile, ...] = ()
    required_modules: tuple[str, ...] = ()

    @property
    def colour_space(self) -> str:
        """``"y"`` (a luma channel) or ``"rgb"``."""
        return "rgb" if self.y_transform is None else "y"


_Y601 = "bt601_ycbcr"
_PSNR_Y = {"test_y_channel": True, "color_space": "ycbcr", "data_range": 255, "eps": 0.0}

# name, pyiqa name, implementation, reference, better, Y transform, range, crop=scale, min size
_ROWS = (
    ("psnr_y", "psnr", "degkit", "full", "higher", _Y601, "0-255", True, 1),
    ("ssim_y", "ssim", "degkit", "full", "higher", _Y601, "0-255", True, 11),
    ("psnr", "psnr", "degkit", "full", "higher", None, "0-255", True, 1),
    ("ms_ssim", "ms_ssim", "pyiqa", "full", "higher", "yiq", "0-255", False, 161),
    ("fsim", "fsim", "pyiqa", "full", "higher", None, "0-255", False, 1),
    ("vif", "vif", "pyiqa", "full", "higher", "yiq", "0-255", False, 33),
    ("gmsd", "gmsd", "pyiqa", "full", "lower", "yiq", "0-255", False, 1),
    ("nlpd", "nlpd", "pyiqa", "full", "lower", "yiq", "0-1", False, 1),
    ("lpips", "lpips", "pyiqa", "full", "lower", None, "0-1", False, 1),
    ("dists", "dists", "pyiqa", "full", "lower", None, "0-1", False, 1),
    ("niqe", "niqe", "pyiqa", "none", "lower", _Y601, "0-255", True, 96),
    ("piqe", "piqe", "pyiqa", "none", "lower", "yiq", "0-1", False, 1),
    ("musiq", "musiq", "pyiqa", "none", "higher", None, "0-1", False, 1),
    ("maniqa", "maniqa", "pyiqa", "none", "higher", None, "0-1", False, 1),
    ("clipiqa", "clipiqa", "pyiqa", "none", "higher", None, "0-1", False, 1),
)

# settings passed to pyiqa (for degkit's own metrics: the equivalent pyiqa settings)
_PYIQA_KWARGS = {
    "psnr_y": _PSNR_Y,
    "ssim_y": {"test_y_channel": True, "color_space": "ycbcr"},
    "psnr": {"test_y_channel": False, "eps": 0.0},
    "niqe": {"test_y_channel": True, "color_space": "ycbcr"},
}

_REQUIRED_FILES = {
    "lpips": (
        RequiredFile("LPIPS_v0.1_alex-df73285e.pth", "pyiqa", "LPIPS v0.1 linear layers"),
        RequiredFile("alexnet-owt-7be5be79.pth", "checkpoints", "torchvision AlexNet"),
    ),
    "dists": (
        RequiredFile("DISTS_weights-f5e65c96.pth", "pyiqa", "DISTS alpha/beta weights"),
        RequiredFile("vgg16-397923af.pth", "checkpoints", "torchvision VGG16"),
    ),
    "musiq": (RequiredFile("musiq_koniq_ckpt-e95806b9.pth", "pyiqa", "MUSIQ (KonIQ-10k)"),),
    "maniqa": (
        RequiredFile("ckpt_koniq10k.pt", "pyiqa", "MANIQA (KonIQ-10k)"),
        RequiredFile(
            "model.safetensors",
            "hf:timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
            "timm ViT-B/8 backbone",
        ),
    ),
    "clipiqa": (RequiredFile("RN50.pt", "clip", "OpenAI CLIP RN50"),),
}

_REQUIRED_MODULES = {"clipiqa": ("clip",)}

METRICS: dict[str, MetricSpec] = {
    row[0]: MetricSpec(
        *row,
        pyiqa_kwargs=MappingProxyType(dict(_PYIQA_KWARGS.get(row[0], {}))),
        required_files=_REQUIRED_FILES.get(row[0], ()),
        required_modules=_REQUIRED_MODULES.get(row[0], ()),
    )
    for row in _ROWS
}

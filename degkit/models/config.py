"""Typed configurations of the degradation adaptor and their registry.

A config names the CLIP architecture (the same fields as an open_clip model
config JSON: ``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``) plus the
number of per-type embeddings ``num_types``, and ``evidence`` (off in the
shipped configs): per-type embeddings that also read fixed image statistics
(:class:`~degkit.models.adaptor.EvidenceHead`). ``quick_gelu`` selects the
``x * sigmoid(1.702 x)`` activation that OpenAI's CLIP weights were trained
with (open_clip's ``-quickgelu`` models); LAION / open_clip weights use GELU
(the default). Shipped configs:

- ``vit_b32``: open_clip's ViT-B-32 (embed 512; vision width 768, 12 layers,
  patch 32, image 224; text width 512, 12 layers, context 77).
- ``small``: a CLIP that trains on a laptop CPU (embed 128; vision width 128,
  4 layers, patch 8, image 64; text width 128, 4 layers, context 77).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["AdaptorConfig", "CONFIGS", "available_configs", "get_config"]

VOCAB_SIZE = 49408  # the CLIP BPE vocabulary open_clip ships


@dataclasses.dataclass(frozen=True)
class AdaptorConfig:
    """Architecture of a :class:`~degkit.models.adaptor.DegradationAdaptor`."""

    name: str
    embed_dim: int
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    text_width: int
    text_layers: int
    text_heads: int
    context_length: int = 77
    num_types: int = 5
    quick_gelu: bool = False
    evidence: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"adaptor config {self.name!r}: {field.name} must be an int >= 1")
        for name in ("quick_gelu", "evidence"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"adaptor config {self.name!r}: {name} must be true or false")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"adaptor config {self.name!r}: image_size {self.image_size} is not a multiple "
                f"of patch_size {self.patch_size}"
            )

    def open_clip_config(self) -> dict[str, Any]:
        """The CLIP part as an open_clip model config dict."""
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {
                "image_size": self.image_size,
                "layers": self.vision_layers,
                "width": self.vision_width,
                "patch_size": self.patch_size,
            },
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": VOCAB_SIZE,
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
            "quick_gelu": self.quick_gelu,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptorConfig:
        """The config of :meth:`to_dict`; unknown fields are an error."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"adaptor config: unknown field(s) {unknown}")
        return cls(**data)


CONFIGS: dict[str, AdaptorConfig] = {
    "vit_b32": AdaptorConfig(
        name="vit_b32",
        embed_dim=512,
        image_size=224,
        patch_size=32,
        vision_width=768,
        vision_layers=12,
        text_width=512,
        text_layers=12,
        text_heads=8,
    ),
    "small": AdaptorConfig(
        name="small",
        embed_dim=128,
        image_size=64,
        patch_size=8,
        vision_width=128,
        vision_layers=4,
        text_width=128,
        text_layers=4,
        text_heads=2,
    ),
}


def available_configs() -> list[str]:
    """Registered config names, sorted."""
    return sorted(CONFIGS)


def get_config(name: str, **overrides: Any) -> AdaptorConfig:
    """A registered config, with fields replaced by ``overrides`` (e.g. ``num_types=10``)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown adaptor config {name!r}; available: {available_configs()}")
    return dataclasses.replace(CONFIGS[name], **overrides)

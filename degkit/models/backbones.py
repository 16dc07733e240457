"""SR backbones ("trunks") from spandrel, by name, and their weights in spandrel's format.

Each named setting builds spandrel's own class, so a trunk's state dict is the
one the architecture's public checkpoints use: ``load_trunk_weights`` starts a
trunk from such a checkpoint (``--init``), and :func:`save_trunk` writes a file
that spandrel-based tools load and identify (architecture and scale).

- ``dat`` (DAT): embed 180, 6 groups of depth 6, 6 heads, split [8, 32],
  expansion 4 (14.80 M parameters at x4);
- ``dat_s`` (DAT): as ``dat`` with expansion 2, split [8, 16] (11.21 M at x4);
- ``dat_light`` (DAT): embed 60, one group of depth 18, 6 heads, split [8, 32],
  expansion 2, ``3conv`` residual, pixel-shuffle-direct upsampler (0.57 M at x4);
- ``dat_tiny`` (DAT): embed 32, 2 groups of depth 2, 2 heads, split [2, 4],
  expansion 2: for tests and CPU runs;
- ``compact`` (Compact): Real-ESRGAN's SRVGGNetCompact, 64 features, 32
  convs, PReLU;
- ``compact_tiny`` (Compact): 16 features, 4 convs, PReLU: for tests and CPU runs.

Every setting builds at scales 2, 3 and 4. DAT settings keep DAT's ``img_size``
of 64 (the resolution its stored attention masks are made for; any input size
runs), which is also what spandrel assumes when it cannot read it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "BACKBONES",
    "SCALES",
    "BackboneSpec",
    "available_backbones",
    "build_backbone",
    "family_of",
    "load_trunk_weights",
    "save_trunk",
]

SCALES = (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A named setting: the spandrel class (``family``) and its keyword arguments but the scale."""

    name: str
    family: str  # "DAT" | "Compact"
    kwargs: Mapping[str, Any]

    def build(self, scale: int) -> nn.Module:
        """A freshly initialised trunk of this setting at ``scale``."""
        if scale not in SCALES:
            raise ValueError(f"backbone {self.name!r}: scale must be one of {SCALES}, got {scale}")
        if self.family == "DAT":
            from spandrel.architectures.DAT import DAT

            return DAT(upscale=scale, **self.kwargs)
        from spandrel.architectures.Compact import Compact

        return Compact(upscale=scale, **self.kwargs)


def _dat(**kwargs: Any) -> dict[str, Any]:
    return {"img_size": 64, "img_range": 1.0, **kwargs}


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "dat",
            "DAT",
            _dat(
                embed_dim=180,
                depth=[6] * 6,
                num_heads=[6] * 6,
                split_size=[8, 32],
                expansion_factor=4.0,
                resi_connection="1conv",
            ),
        ),
        BackboneSpec(
            "dat_s",
            "DAT",
            _dat(
                embed_dim=180,
                depth=[6] * 6,
                num_heads=[6] * 6,
                split_size=[8, 16],
                expansion_factor=2.0,
                resi_connection="1conv",
            ),
        ),
        BackboneSpec(
            "dat_light",
            "DAT",
            _dat(
                embed_dim=60,
                depth=[18],
                num_heads=[6],
                split_size=[8, 32],
                expansion_factor=2.0,
                resi_connection="3conv",
                upsampler="pixelshuffledirect",
            ),
        ),
        BackboneSpec(
            "dat_tiny",
            "DAT",
            _dat(
                embed_dim=32,
                depth=[2, 2],
                num_heads=[2, 2],
                split_size=[2, 4],
                expansion_factor=2.0,
                resi_connection="1conv",
            ),
        ),
        BackboneSpec("compact", "Compact", {"num_feat": 64, "num_conv": 32, "act_type": "prelu"}),
        BackboneSpec(
            "compact_tiny", "Compact", {"num_feat": 16, "num_conv": 4, "act_type": "prelu"}
        ),
    )
}


def available_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(BACKBONES)


def build_backbone(name: str, scale: int) -> nn.Module:
    """A freshly initialised spandrel trunk of the named setting (seed torch first)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {available_backbones()}")
    return BACKBONES[name].build(scale)


def family_of(trunk: nn.Module) -> str:
    """The spandrel architecture id of a trunk this module builds: ``"DAT"`` or ``"Compact"``."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DAT import DAT

    if isinstance(trunk, DAT):
        return "DAT"
    if isinstance(trunk, Compact):
        return "Compact"
    raise TypeError(f"unsupported trunk {type(trunk).__name__}; supported: DAT, Compact")


def save_trunk(trunk: nn.Module, path: str | Path) -> None:
    """Write the trunk's bare state dict (spandrel's format) as ``.safetensors`` or ``.pth``."""
    from degkit.models.adaptor import write_safetensors

    path = Path(path)
    state = trunk.state_dict()
    if path.suffix == ".safetensors":
        write_safetensors(state, path)
    elif path.suffix == ".pth":
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in state.items()}, path)
    else:
        raise ValueError(f"{path}: a trunk is written as .safetensors or .pth")


def load_trunk_weights(trunk: nn.Module, path: str | Path, strict: bool = True) -> list[str]:
    """Load a spandrel-format checkpoint (``--init``) into ``trunk``; return keys left as they were.

    The file is read as spandrel reads it (``.pth`` / ``.pt`` / ``.ckpt`` /
    ``.safetensors``; ``params_ema`` / ``params`` / ``state_dict`` wrappers and a
    ``module.`` prefix are unwrapped), and must be of the trunk's architecture.
    ``strict``: every tensor must match in name and shape. Otherwise only the
    tensors that match are loaded (e.g. an x4 trunk from an x2 checkpoint: all
    but the upsampler), and the names of the trunk's tensors not loaded are returned.
    """
    import spandrel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init {path}: no such file")
    state = spandrel.ModelLoader().load_state_dict_from_file(path)
    family = family_of(trunk)
    if not spandrel.MAIN_REGISTRY[family].architecture.detect(state):
        raise ValueError(f"--init {path}: not a {family} checkpoint")
    own = trunk.state_dict()
    mismatched = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if strict and (mismatched or missing or unexpected):
        problems = [
            f"{label}: {keys[:3]}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("shape differs", mismatched),
                ("missing", missing),
                ("unexpected", unexpected),
            )
            if keys
        ]
        raise ValueError(f"--init {path}: not this {family} setting ({'; '.join(problems)})")
    loadable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    trunk.load_state_dict(loadable, strict=False)
    return sorted(own.keys() - loadable.keys())

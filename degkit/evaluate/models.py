"""SR models to evaluate: built-ins, spandrel checkpoints, degkit SR checkpoints, callables.

Every model maps a float32 ``N x 3 x h x w`` LR batch in ``[0, 1]`` to the
``N x 3 x (h*scale) x (w*scale)`` SR batch. The built-ins are defined as:

* ``bicubic``: ``torch.nn.functional.interpolate(mode="bicubic",
  align_corners=False, antialias=False)`` (Keys cubic, a = -0.75, as OpenCV's
  ``INTER_CUBIC``), clamped to ``[0, 1]``;
* ``lanczos``: Pillow's ``Image.resize(..., Image.LANCZOS)`` (Lanczos-3) on
  the 8-bit image, per image;
* ``nearest``: ``interpolate(mode="nearest")``, i.e. each LR pixel repeated
  ``scale x scale`` times.

:func:`super_resolve` runs a model on a batch, optionally in overlapping tiles
blended with weights that vanish near interior tile edges, under autocast
(fp16 / bf16) on CUDA, and checks the shape of what comes back. A model with
a ``condition`` step (a degkit SR checkpoint: its prior) is conditioned once
per batch on the whole LR images, and every tile reuses that conditioning;
``prior_per_tile`` conditions each tile on itself instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "INTERPOLATIONS",
    "PRECISIONS",
    "SRModel",
    "load_model",
    "interpolation_model",
    "spandrel_model",
    "callable_model",
    "super_resolve",
    "file_sha256",
]

INTERPOLATIONS = {
    "bicubic": 'torch F.interpolate(mode="bicubic", align_corners=False, antialias=False), '
    "clamped to [0, 1]",
    "lanczos": "Pillow Image.resize(Image.LANCZOS) on the 8-bit image",
    "nearest": 'torch F.interpolate(mode="nearest"): pixel replication',
}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Upscaler = Callable[[torch.Tensor], torch.Tensor]
Conditioner = Callable[[torch.Tensor, Sequence[Any] | None], Upscaler]
"""``condition(lr, pairs)``: the upscaler for ``lr`` (and its tiles), given the whole LR
batch and its test pairs (None outside an evaluation)."""


@dataclasses.dataclass
class SRModel:
    """A model that upscales LR batches by ``scale``, with its provenance."""

    name: str
    kind: str  # "interpolation" | "spandrel" | "degkit" | "callable"
    scale: int
    upscale: Upscaler
    module: torch.nn.Module | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    architecture: str | None = None
    definition: str | None = None
    condition: Conditioner | None = None
    needs_truth: str | None = None  # what ground truth ``condition`` reads from the pairs
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def parameters(self) -> int:
        """Number of parameters (0 for parameter-free interpolation)."""
        if self.module is None:
            return 0
        return sum(p.numel() for p in self.module.parameters())

    def to(self, device: str | torch.device) -> SRModel:
        """Move the model's weights (if any) to ``device``; returns self."""
        if self.module is not None:
            self.module.to(device)
        return self

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: name, kind, scale, checkpoint and its sha256, parameters,
        and the kind's details (a degkit checkpoint: backbone, prior, ...)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "scale": self.scale,
            "architecture": self.architecture,
            "definition": self.definition,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "parameters": self.parameters,
            **self.details,
        }


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(
    spec: str,
    scale: int | None,
    name: str | None = None,
    *,
    adaptor: str | Path | None = None,
    regressor: str | Path | None = None,
) -> SRModel:
    """A built-in name, a ``degkit train-sr`` checkpoint, a checkpoint spandrel can load,
    or ``package.module:function``.

    ``scale`` None: the checkpoint's own (a built-in or callable needs one).
    ``adaptor`` / ``regressor`` replace the frozen estimator files a degkit
    checkpoint's prior was trained with.
    """
    from degkit.models.sr_checkpoint import read_sr_meta

    is_degkit = Path(spec).is_file() and read_sr_meta(spec) is not None
    for flag, value in (("adaptor", adaptor), ("regressor", regressor)):
        if value is not None and not is_degkit:
            raise ValueError(f"--{flag}: model {spec!r} is not a degkit SR checkpoint")
    if scale is None and not Path(spec).is_file():
        raise ValueError(f"model {spec!r}: give the scale (--scale)")
    if spec in INTERPOLATIONS:
        model = interpolation_model(spec, scale)
    elif is_degkit:
        from degkit.evaluate.trained import degkit_model

        model = degkit_model(spec, scale, adaptor=adaptor, regressor=regressor)
    elif Path(spec).is_file():
        model = spandrel_model(spec, scale)
    elif ":" in spec:
        model = callable_model(spec, scale)
    else:
        raise FileNotFoundError(
            f"model {spec!r}: not a built-in ({', '.join(INTERPOLATIONS)}), "
            "an existing checkpoint file, or package.module:function"
        )
    if name:
        model.name = name
    return model


def interpolation_model(method: str, scale: int) -> SRModel:
    """``bicubic``, ``lanczos`` or ``nearest`` upscaling by ``scale`` (see module docstring)."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation {method!r}: expected one of {', '.join(INTERPOLATIONS)}")
    upscale = _pillow_lanczos(scale) if method == "lanczos" else _torch_interpolate(method, scale)
    return SRModel(
        name=method,
        kind="interpolation",
        scale=scale,
        upscale=upscale,
        definition=INTERPOLATIONS[method],
    )


def _torch_interpolate(method: str, scale: int) -> Upscaler:
    def upscale(lr: torch.Tensor) -> torch.Tensor:
        size = (lr.shape[-2] * scale, lr.shape[-1] * scale)
        if method == "nearest":
            return F.interpolate(lr, size=size, mode="nearest")
        sr = F.interpolate(lr, size=size, mode="bicubic", align_corners=False, antialias=False)
        return sr.clamp(0.0, 1.0)

    return upscale


def _pillow_lanczos(scale: int) -> Upscaler:
    """Pillow Lanczos-3 upscaling of each 8-bit image of a batch."""
    from PIL import Image

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        rgb8 = (lr.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        rgb8 = rgb8.permute(0, 2, 3, 1).cpu().numpy()
        size = (lr.shape[-1] * scale, lr.shape[-2] * scale)
        up = np.stack([np.asarray(Image.fromarray(im).resize(size, Image.LANCZOS)) for im in rgb8])
        sr = torch.from_numpy(up).permute(0, 3, 1, 2).float().div_(255)
        return sr.to(lr.device)

    return upscale


def spandrel_model(path: str | Path, scale: int | None) -> SRModel:
    """An SR checkpoint whose architecture spandrel detects from the state dict
    (``scale`` None: its own)."""
    import spandrel

    path = Path(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_file(path)
    except spandrel.UnsupportedModelError:
        raise ValueError(
            f"checkpoint {path}: spandrel cannot identify the architecture from its state dict"
        ) from None
    except Exception as exc:  # unreadable pickles / safetensors raise many types
        raise ValueError(
            f"checkpoint {path}: cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise ValueError(
            f"checkpoint {path}: a {descriptor.architecture.name} {descriptor.purpose} model, "
            "not a super-resolution one"
        )
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ValueError(
            f"checkpoint {path}: {descriptor.input_channels} -> "
            f"{descriptor.output_channels} channels, expected RGB (3 -> 3)"
        )
    if scale is not None and descriptor.scale != scale:
        raise ValueError(
            f"checkpoint {path}: a x{descriptor.scale} {descriptor.architecture.name} model, "
            f"but the test set is x{scale}"
        )
    descriptor.eval()
    return SRModel(
        name=path.stem,
        kind="spandrel",
        scale=descriptor.scale,
        upscale=descriptor,
        module=descriptor.model,
        checkpoint=str(path),
        checkpoint_sha256=file_sha256(path),
        architecture=descriptor.architecture.name,
    )


def callable_model(spec: str, scale: int) -> SRModel:
    """``package.module:function``: a function from LR batch to SR batch."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model {spec!r}: cannot import {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"model {spec!r}: module {module_name!r} has no callable {attr!r}")
    return SRModel(
        name=spec,
        kind="callable",
        scale=scale,
        upscale=fn,
        module=fn if isinstance(fn, torch.nn.Module) else None,
    )


def super_resolve(
    model: SRModel,
    lr: torch.Tensor,
    tile: int | None = None,
    overlap: int = 16,
    precision: str = "fp32",
    pairs: Sequence[Any] | None = None,
    prior_per_tile: bool = False,
) -> torch.Tensor:
    """The SR batch of ``lr``: float32 in ``[0, 1]``, shape checked; tiled if ``tile``.

    fp16 / bf16 apply only on CUDA (autocast); on the CPU the model runs in fp32.
    A model's ``condition`` step sees the whole batch (and ``pairs``, its test
    pairs) once, or each tile on its own with ``prior_per_tile``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    autocast = lr.device.type == "cuda" and precision != "fp32"
    with (
        torch.no_grad(),
        torch.autocast("cuda", dtype=PRECISIONS[precision], enabled=autocast),
    ):
        if model.condition is None:
            upscale = model.upscale
        elif prior_per_tile:

            def upscale(part: torch.Tensor) -> torch.Tensor:
                return model.condition(part, pairs)(part)

        else:
            upscale = model.condition(lr, pairs)
        if tile is None or (lr.shape[-2] <= tile and lr.shape[-1] <= tile):
            sr = _checked_call(model, upscale, lr)
        else:
            sr = _tiled(model, upscale, lr, tile, overlap)
    return sr.float().clamp(0.0, 1.0)  # out of place: spandrel returns inference tensors


def _checked_call(model: SRModel, upscale: Upscaler, lr: torch.Tensor) -> torch.Tensor:
    sr = upscale(lr)
    n, c, h, w = lr.shape
    expected = (n, c, h * model.scale, w * model.scale)
    if not isinstance(sr, torch.Tensor) or tuple(sr.shape) != expected:
        got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
        raise ValueError(
            f"model {model.name}: returned {got} for an LR batch of shape {tuple(lr.shape)}; "
            f"expected a tensor of shape {expected}"
        )
    return sr


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile - overlap), length - tile]


def _edge_weights(size: int, lead: bool, trail: bool, overlap: int) -> torch.Tensor:
    """1-D blend weights: 0 within overlap/4 of an interior edge, then a linear ramp to 1."""
    margin = overlap // 4
    ramp = overlap - 2 * margin + 1
    d = torch.arange(size, dtype=torch.float32)
    w = torch.ones(size)
    if lead:
        w = torch.minimum(w, ((d - margin + 1) / ramp).clamp(0, 1))
    if trail:
        w = torch.minimum(w, ((size - d - margin) / ramp).clamp(0, 1))
    return w


def _tiled(
    model: SRModel, upscale: Upscaler, lr: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """Upscale ``tile x tile`` LR tiles overlapping by at least ``overlap`` and blend them.

    Pixels within ``overlap // 4`` LR pixels of an interior tile edge get zero
    weight, so a model whose receptive field reaches at most that far gives the
    untiled result.
    """
    if tile <= 2 * overlap:
        raise ValueError(f"tile {tile}: must exceed twice the tile overlap ({overlap})")
    s = model.scale
    n, c, h, w = lr.shape
    out = torch.zeros(n, c, h * s, w * s, device=lr.device)
    total = torch.zeros(h * s, w * s, device=lr.device)
    for y in _tile_starts(h, tile, overlap):
        th = min(tile, h)
        wy = _edge_weights(th, y > 0, y + th < h, overlap)
        for x in _tile_starts(w, tile, overlap):
            tw = min(tile, w)
            wx = _edge_weights(tw, x > 0, x + tw < w, overlap)
            weight = torch.outer(wy, wx).repeat_interleave(s, 0).repeat_interleave(s, 1)
            weight = weight.to(lr.device)
            sr = _checked_call(model, upscale, lr[..., y : y + th, x : x + tw]).float()
            out[..., y * s : (y + th) * s, x * s : (x + tw) * s] += sr * weight
            total[y * s : (y + th) * s, x * s : (x + tw) * s] += weight
    return out / total

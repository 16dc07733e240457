"""Cross-modal fusion of prior tokens into a spandrel SR trunk.

A *prior* is ``N x (1 + K) x D`` tokens: one content token, then one token per
degradation type (:mod:`degkit.models.priors` makes them). :class:`FusedSR`
projects them to the trunk's width ``C`` once (:class:`FeatureProjector`,
shared by content and degradation tokens) and runs one :class:`FusionBlock`
before each residual group of the trunk; every block passes its updated
content / degradation tokens on to the next.

Insertion points (the trunk's own modules are called unchanged, in its order):

- **DAT**: before each residual group of ``forward_features``' loop
  ``for layer in layers: x = layer(x, x_size)``, on its ``N x HW x C`` tokens.
- **Compact** (SRVGGNetCompact, no residual groups): the body is a plain chain
  of conv + activation pairs, so a block runs on the feature map, flattened
  to ``N x HW x C`` tokens, after the first conv + activation and then before
  every ``group`` body convs (``ceil(num_conv / group)`` blocks; default 8,
  so 4 blocks for Real-ESRGAN's 32-conv model).

The layers writing into the image tokens (the image attention's output
projection and the MLP's last layer) start at zero, so a freshly wrapped
trunk computes exactly what the trunk computes, whatever the prior: a
fine-tune starts from the trunk's own output. With ``prior=None`` no fusion
block runs at all and the output equals the bare trunk's bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from degkit.models.backbones import family_of

__all__ = ["FeatureProjector", "FusionBlock", "FusedSR", "default_heads"]

Fuse = Callable[[int, torch.Tensor], torch.Tensor]
"""``fuse(i, tokens)``: fusion block ``i`` applied to image tokens ``N x HW x C``."""


def default_heads(width: int) -> int:
    """Attention heads of a fusion block: the largest of 8, 6, 4, 2, 1 dividing ``width``."""
    return next(h for h in (8, 6, 4, 2, 1) if width % h == 0)


class FeatureProjector(nn.Module):
    """Prior tokens ``D`` -> trunk width ``C``: ``Linear(D, C)``, ReLU, ``Linear(C, C)``."""

    def __init__(self, prior_dim: int, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(prior_dim, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens)


class FusionBlock(nn.Module):
    """Image tokens attend to (content, degradation) token pairs.

    In order: the content token and the degradation tokens each cross-attend
    to the (normalised) image tokens, residual to their inputs; each of the
    ``K`` degradation tokens is concatenated with the content token (``K`` pairs
    of ``2C``); the normalised image tokens attend to the pairs (keys and
    values ``Linear(2C, C)``), residual to the block's input; then a residual
    MLP (hidden ``C``, GELU). The image attention's output projection and the
    MLP's last layer are zero-initialised (see the module doc). With ``C = 180``
    and 512-wide priors, a DAT x4 with fusion has 18.06 M parameters, as
    published for DePLSR.
    """

    def __init__(self, width: int, heads: int | None = None) -> None:
        super().__init__()
        heads = heads or default_heads(width)
        self.norm_image = nn.LayerNorm(width)
        self.norm_content = nn.LayerNorm(width)
        self.norm_degradation = nn.LayerNorm(width)
        self.content_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.degradation_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.image_attn = nn.MultiheadAttention(
            width, heads, kdim=2 * width, vdim=2 * width, batch_first=True
        )
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        for layer in (self.image_attn.out_proj, self.mlp[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, image: torch.Tensor, content: torch.Tensor, degradation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``image`` ``N x L x C``, ``content`` ``N x 1 x C``, ``degradation`` ``N x K x C``
        -> the three updated."""
        x = self.norm_image(image)
        c = self.norm_content(content)
        d = self.norm_degradation(degradation)
        content = content + self.content_attn(c, x, x, need_weights=False)[0]
        degradation = degradation + self.degradation_attn(d, x, x, need_weights=False)[0]
        pairs = torch.cat([content.expand_as(degradation), degradation], dim=-1)
        image = image + self.image_attn(x, pairs, pairs, need_weights=False)[0]
        image = image + self.mlp(self.norm_mlp(image))
        return image, content, degradation


def _run_dat(trunk: nn.Module, x: torch.Tensor, fuse: Fuse | None) -> torch.Tensor:
    """spandrel's ``DAT.forward``, with ``fuse`` before each residual group."""
    mean = trunk.mean.type_as(x)
    x = (x - mean) * trunk.img_range
    x = trunk.conv_first(x)
    height, width = x.shape[-2:]
    features = trunk.before_RG(x)
    for i, layer in enumerate(trunk.layers):
        if fuse is not None:
            features = fuse(i, features)
        features = layer(features, [height, width])
    features = trunk.norm(features)
    # spandrel's rearrange "b (h w) c -> b c h w": the same view, so the same numbers after
    features = features.reshape(len(x), height, width, -1).permute(0, 3, 1, 2)
    x = trunk.conv_after_body(features) + x
    if trunk.upsampler == "pixelshuffle":
        x = trunk.conv_before_upsample(x)
        x = trunk.conv_last(trunk.upsample(x))
    else:
        x = trunk.upsample(x)
    return x / trunk.img_range + mean


def _run_compact(trunk: nn.Module, x: torch.Tensor, fuse: Fuse | None, group: int) -> torch.Tensor:
    """spandrel's ``Compact.forward``, with ``fuse`` before every ``group`` body convs."""
    body = trunk.body
    out = body[1](body[0](x))
    for j in range(trunk.num_conv):
        if fuse is not None and j % group == 0:
            tokens = fuse(j // group, out.flatten(2).transpose(1, 2))
            out = tokens.transpose(1, 2).reshape(out.shape)
        out = body[2 * j + 3](body[2 * j + 2](out))
    out = body[-1](out)
    out = trunk.upsampler(out)
    out += F.interpolate(x, scale_factor=trunk.upscale, mode="nearest")
    return out


class FusedSR(nn.Module):
    """A spandrel trunk with a fusion block before each of its residual groups.

    Args:
        trunk: a DAT or Compact model (e.g. from
            :func:`~degkit.models.backbones.build_backbone`); kept as ``self.trunk``
            with its own state dict keys, so ``self.trunk`` saves and loads as
            spandrel's architecture.
        prior_dim: ``D``, the width of the prior tokens.
        heads: attention heads of the fusion blocks (default :func:`default_heads`).
        group: Compact only, body convs per fusion block.
    """

    def __init__(
        self, trunk: nn.Module, prior_dim: int, heads: int | None = None, group: int = 8
    ) -> None:
        super().__init__()
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.trunk = trunk
        self.family = family_of(trunk)
        self.group = group
        if self.family == "DAT":
            width, sites = trunk.embed_dim, len(trunk.layers)
        else:
            width, sites = trunk.num_feat, math.ceil(trunk.num_conv / group)
        self.projector = FeatureProjector(prior_dim, width)
        self.blocks = nn.ModuleList(FusionBlock(width, heads) for _ in range(sites))

    @property
    def scale(self) -> int:
        """The trunk's upscaling factor."""
        return int(self.trunk.upscale)

    def fusion_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of everything but the trunk: the projector and the fusion blocks."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("trunk.")]

    def forward(self, lr: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """SR of ``lr`` (``N x 3 x H x W``) guided by ``prior`` tokens ``N x (1 + K) x D``.

        ``prior=None`` runs the bare trunk (no fusion block).
        """
        fuse = None
        if prior is not None:
            if prior.ndim != 3 or prior.shape[0] != lr.shape[0] or prior.shape[1] < 2:
                raise ValueError(
                    f"prior must be N x (1 + K) x D with N = {lr.shape[0]} images and K >= 1, "
                    f"got shape {tuple(prior.shape)}"
                )
            tokens = self.projector(prior)
            state = [tokens[:, :1], tokens[:, 1:]]

            def fuse(i: int, image: torch.Tensor) -> torch.Tensor:
                image, state[0], state[1] = self.blocks[i](image, state[0], state[1])
                return image

        if self.family == "DAT":
            return _run_dat(self.trunk, lr, fuse)
        return _run_compact(self.trunk, lr, fuse, self.group)

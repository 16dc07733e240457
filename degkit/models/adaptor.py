"""The DePLSR degradation adaptor: a frozen CLIP steered by a trainable controller.

The CLIP (open_clip; both towers and its logit scale) is frozen. The
*controller* is a trainable copy of the CLIP vision tower, taken when the
adaptor is built (so it starts from the CLIP's own weights). Both towers see
the same image; after block ``i`` of the controller a zero-initialised
``Linear(width, width)`` maps its hidden state to a control signal added to the
output of block ``i`` of the frozen tower. At the start every zero layer is
exactly zero, so the content embedding is the plain CLIP image embedding.

Outputs (:class:`AdaptorOutput`, all L2-normalised):

- ``content``: the frozen tower's pooled, projected output with control injected;
- ``degradation``: the controller's own pooled, projected output;
- ``per_type``: ``N x K x embed`` from ``Linear(embed, K * embed)`` of the
  (unnormalised) degradation embedding, one vector per caption type. With
  ``config.evidence`` an :class:`EvidenceHead` reads fixed statistics of the
  image as given (:func:`~degkit.models.evidence.degradation_evidence`: JPEG
  grid scores, noise and sharpness statistics, which a small ViT trained from
  scratch does not learn to see) and adds its output to each unit per-type
  vector before a second normalisation; its last layer starts at zero, so an
  untrained head changes nothing. An extension: the paper's adaptor reads the image only
  through the controller.

Images are float ``N x 3 x H x W`` RGB in ``[0, 1]``. The model resizes them to
its input size with an antialiased bicubic resize of the whole image (no crop,
no randomness; skipped when the size already matches) and applies the CLIP
mean / std normalisation itself.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

from degkit.models.config import AdaptorConfig, get_config
from degkit.models.evidence import EVIDENCE_FEATURES, degradation_evidence

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "AdaptorOutput",
    "DegradationAdaptor",
    "EvidenceHead",
    "build_clip",
    "create_adaptor",
    "load_adaptor",
    "load_clip_weights",
    "preprocess",
    "save_adaptor",
    "save_clip_weights",
    "write_safetensors",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass
class AdaptorOutput:
    """L2-normalised embeddings: content and degradation ``N x D``, per_type ``N x K x D``."""

    content: torch.Tensor
    degradation: torch.Tensor
    per_type: torch.Tensor


def build_clip(config: AdaptorConfig) -> open_clip.CLIP:
    """A randomly initialised open_clip CLIP of ``config``'s architecture."""
    spec = config.open_clip_config()
    return open_clip.CLIP(
        spec["embed_dim"], spec["vision_cfg"], spec["text_cfg"], quick_gelu=spec["quick_gelu"]
    )


def load_clip_weights(clip: open_clip.CLIP, path: str | Path) -> None:
    """Load an open_clip checkpoint (``.pt`` / ``.bin`` / ``.safetensors``) into ``clip``.

    Accepts what open_clip's own loader accepts (a bare state dict, one under
    ``"state_dict"``, a ``module.`` prefix); every key must match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init {path}: no such file")
    try:
        open_clip.load_checkpoint(clip, str(path), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:2]
        raise ValueError(
            f"--init {path}: not weights of this CLIP architecture: {' '.join(first)}"
        ) from exc


def encode_tokens(clip: open_clip.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """``clip.encode_text(tokens, normalize=True)``, run only up to the longest text's end.

    Under causal attention with end-of-text pooling the padding after a text's
    last token never reaches its embedding, so dropping the columns that are
    padding in every row (a caption is about 20 of CLIP's 77 tokens) gives the
    same embeddings for a fraction of the work.
    """
    length = max(int((tokens != 0).sum(dim=1).max()), 1)
    tokens = tokens[:, :length]
    dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(dtype) + clip.positional_embedding[:length].to(dtype)
    mask = None if clip.attn_mask is None else clip.attn_mask[:length, :length]
    x = clip.ln_final(clip.transformer(x, attn_mask=mask))
    x = text_global_pool(x, tokens, clip.text_pool_type, getattr(clip, "text_eos_id", None))
    projection = clip.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return F.normalize(x, dim=-1)


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """[0, 1] RGB ``N x 3 x H x W`` -> ``size x size`` (antialiased bicubic), CLIP-normalised.

    The whole image is resized (no crop, no randomness); an image already of
    that size is left untouched before the normalisation.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got shape {tuple(images.shape)}")
    if images.shape[-2:] != (size, size):
        images = F.interpolate(
            images, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def write_safetensors(
    tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to a temporary file, then rename it to ``path`` (never half-written)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    try:
        save_file(contiguous, str(tmp), metadata=metadata)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_clip_weights(clip: open_clip.CLIP, path: str | Path) -> None:
    """Write a CLIP's state dict as a safetensors file that :func:`load_clip_weights` reads."""
    write_safetensors(clip.state_dict(), path)


def _embed_tokens(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """open_clip's VisionTransformer up to the transformer blocks, batch first (N, L, D).

    Its ``_embeds`` (open_clip 3.3): patch conv, class token, positional
    embedding, patch dropout, ``ln_pre``.
    """
    return tower._embeds(x)


def _pool_project(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """open_clip's VisionTransformer after the blocks: its ``_pool`` (pooling and
    ``ln_post`` in the tower's order), then the projection."""
    pooled, _ = tower._pool(x)
    return pooled @ tower.proj if tower.proj is not None else pooled


EVIDENCE_EPS = 0.01
"""The evidence head's batch-norm ``eps`` (variance units)."""


class EvidenceHead(nn.Module):
    """Evidence ``N x F`` -> ``N x K x embed``: BatchNorm, ``Linear(F, hidden)``, GELU,
    ``Linear(hidden, K * embed)`` (zero-initialised: the head starts at exactly 0).

    The batch norm standardises each statistic over the training images (the
    families differ in scale: a per-image norm would let the largest one set
    every feature's scale); its ``eps`` of 0.01 keeps nearly constant statistics
    (standard deviation under 0.1) from being blown up.
    """

    def __init__(self, num_types: int, embed_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.num_types, self.embed_dim = num_types, embed_dim
        self.mlp = nn.Sequential(
            nn.BatchNorm1d(EVIDENCE_FEATURES, eps=EVIDENCE_EPS),
            nn.Linear(EVIDENCE_FEATURES, hidden),
            nn.GELU(),
            nn.Linear(hidden, num_types * embed_dim),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, evidence: torch.Tensor) -> torch.Tensor:
        return self.mlp(evidence).view(len(evidence), self.num_types, self.embed_dim)


class DegradationAdaptor(nn.Module):
    """Frozen CLIP + trainable controller (see the module doc).

    Args:
        config: the architecture.
        clip: the CLIP to freeze (default: a new random one of ``config``); the
            controller is a deep copy of its vision tower as it is now.
    """

    def __init__(self, config: AdaptorConfig, clip: open_clip.CLIP | None = None) -> None:
        super().__init__()
        self.config = config
        self.clip = clip if clip is not None else build_clip(config)
        self.clip.requires_grad_(False)
        self.clip.eval()
        self.controller = copy.deepcopy(self.clip.visual).requires_grad_(True).train()
        width = config.vision_width
        self.zero_layers = nn.ModuleList(
            nn.Linear(width, width) for _ in self.controller.transformer.resblocks
        )
        for layer in self.zero_layers:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.type_head = nn.Linear(config.embed_dim, config.num_types * config.embed_dim)
        with torch.no_grad():  # every type starts at the degradation embedding itself
            self.type_head.weight.copy_(torch.eye(config.embed_dim).repeat(config.num_types, 1))
            self.type_head.bias.zero_()
        self.evidence_head = (
            EvidenceHead(config.num_types, config.embed_dim) if config.evidence else None
        )
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length)

    def train(self, mode: bool = True) -> DegradationAdaptor:
        """Set training mode; the frozen CLIP always stays in eval mode."""
        super().train(mode)
        self.clip.eval()
        return self

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of everything trained: controller, zero layers, type head
        (and evidence head)."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("clip.")]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the CLIP's input (see :func:`preprocess`)."""
        return preprocess(images, self.config.image_size)

    def clip_image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """The plain frozen CLIP image embedding (L2-normalised) of [0, 1] images."""
        return self.clip.encode_image(self.preprocess(images), normalize=True)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Frozen CLIP text embeddings (L2-normalised) of ``texts``."""
        tokens = self.tokenizer(list(texts)).to(self.type_head.weight.device)
        return encode_tokens(self.clip, tokens)

    def forward(self, images: torch.Tensor) -> AdaptorOutput:
        x = self.preprocess(images)
        frozen, controller = self.clip.visual, self.controller
        h = _embed_tokens(frozen, x)
        c = _embed_tokens(controller, x)
        if not frozen.transformer.batch_first:  # open_clip's blocks then take L, N, D
            h, c = h.transpose(0, 1), c.transpose(0, 1)
        blocks = zip(
            frozen.transformer.resblocks,
            controller.transformer.resblocks,
            self.zero_layers,
            strict=True,
        )
        for frozen_block, control_block, zero in blocks:
            c = control_block(c)
            h = frozen_block(h) + zero(c)
        if not frozen.transformer.batch_first:
            h, c = h.transpose(0, 1), c.transpose(0, 1)
        content = _pool_project(frozen, h)
        degradation = _pool_project(controller, c)
        per_type = self.type_head(degradation).view(
            len(images), self.config.num_types, self.config.embed_dim
        )
        per_type = F.normalize(per_type, dim=-1)
        if self.evidence_head is not None:
            evidence = self.evidence_head(degradation_evidence(images))
            per_type = F.normalize(per_type + evidence, dim=-1)
        return AdaptorOutput(
            content=F.normalize(content, dim=-1),
            degradation=F.normalize(degradation, dim=-1),
            per_type=per_type,
        )


def create_adaptor(
    name: str = "small", init: str | Path | None = None, **overrides
) -> DegradationAdaptor:
    """An adaptor of a registered config; ``init`` is an open_clip weights file for the CLIP.

    Without ``init`` the CLIP is randomly initialised (seed torch first for a
    reproducible model). ``overrides`` replace config fields (e.g. ``num_types``).
    """
    config = get_config(name, **overrides)
    clip = build_clip(config)
    if init is not None:
        load_clip_weights(clip, init)
    return DegradationAdaptor(config, clip)


def save_adaptor(
    model: DegradationAdaptor,
    path: str | Path,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    metadata: dict | None = None,
) -> None:
    """Write the model (and ``extra_tensors``) to a safetensors file carrying the config.

    Model tensors are stored under ``model.``; ``metadata`` (JSON-able) is kept
    under the ``degkit`` key next to ``config``. The file is written to a
    temporary name and renamed, so an existing checkpoint is never half-replaced.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra_tensors or {})
    header = {
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "degkit": json.dumps(metadata or {}, sort_keys=True),
    }
    write_safetensors(tensors, path, header)


def load_adaptor(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[DegradationAdaptor, dict, dict[str, torch.Tensor]]:
    """A checkpoint of :func:`save_adaptor`: (model, metadata, the other tensors)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if "config" not in header:
        raise ValueError(f"{path}: not a degkit adaptor checkpoint (no config in its metadata)")
    config = AdaptorConfig.from_dict(json.loads(header["config"]))
    tensors = load_file(str(path), device=str(device))
    model = DegradationAdaptor(config).to(device)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    read = state.get("evidence_head.mlp.0.weight")
    if read is not None and len(read) != EVIDENCE_FEATURES:
        raise ValueError(
            f"{path}: its evidence head reads {len(read)} statistics, this degkit computes "
            f"{EVIDENCE_FEATURES} (degkit.models.evidence); train it again with --evidence"
        )
    model.load_state_dict(state, strict=True)
    others = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return model, json.loads(header.get("degkit", "{}")), others

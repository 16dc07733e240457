"""Contrastive losses of the degradation adaptor, with equal captions as positives.

Within a batch, image ``i`` and caption ``j`` are a positive pair when caption
``j`` equals caption ``i`` (:func:`positive_mask`): many samples share e.g.
``"no ringing and overshoot artifacts"``, and treating those as negatives would
push apart what should match.

- :class:`InfoNCELoss`: symmetric InfoNCE with a learnable temperature
  (``logit_scale``, the log of the inverse temperature, initialised to
  ``log(1 / 0.07)`` and clamped at ``log(100)``). With several positives the
  target of each row is uniform over its positives (cross-entropy against
  soft targets); with one it is CLIP's loss. Equal captions have equal
  (frozen) text embeddings, so this gives the same values and gradients as
  one-hot targets, whose best value is then the log of the group size rather
  than 0: the mask changes nothing that InfoNCE learns.
- :class:`SigLIPLoss`: the sigmoid loss, ``-sum log sigmoid(y_ij (t x_i.y_j + b)) / N``
  with ``y_ij = +1`` for positives and ``-1`` otherwise; learnable ``t = exp(logit_scale)``
  (initialised to 10) and bias ``b`` (initialised to -10). Here each pair is
  its own binary term, so an equal-caption pair counted as a negative would be
  pushed apart: the mask is what makes such batches learnable.
- :class:`PromptLevelLoss`: each type's embedding scored against that type's
  captions at a few fixed levels (the degradation-estimation protocol's
  prompts), cross-entropy towards the level nearest the truth, learnable
  temperature. The batch-caption terms above compare a sample's caption with
  the other captions of its batch, which differ in every printed digit;
  this term asks the question the protocol asks: which of these levels?
- :class:`AdaptorLoss`: ``w_content * content + w_degradation * degradation +
  w_types * mean over types + w_levels * prompt levels`` (defaults 0.2 / 0.3 /
  0.5 / 1.0). Rows whose content caption is empty take no part in the content
  term; when no row has one, the term is dropped (``terms["content"]`` is
  absent); the prompt-level term needs the prompts and targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from degkit.models.adaptor import AdaptorOutput

__all__ = [
    "AdaptorLoss",
    "InfoNCELoss",
    "PromptLevelLoss",
    "SigLIPLoss",
    "create_contrastive",
    "positive_mask",
]

MAX_LOGIT_SCALE = math.log(100.0)


def positive_mask(captions: Sequence[str]) -> torch.Tensor:
    """``N x N`` bool: ``[i, j]`` is True when caption ``i`` equals caption ``j``."""
    ids: dict[str, int] = {}
    codes = torch.tensor([ids.setdefault(c, len(ids)) for c in captions])
    return codes[:, None] == codes[None, :]


class InfoNCELoss(nn.Module):
    """Symmetric multi-positive InfoNCE with a learnable temperature (see the module doc)."""

    def __init__(self, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, positives: torch.Tensor
    ) -> torch.Tensor:
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        logits = scale * image @ text.T
        targets = positives.to(logits.dtype)
        targets = targets / targets.sum(dim=1, keepdim=True)
        image_to_text = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
        text_to_image = -(targets.T * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
        return (image_to_text + text_to_image) / 2


class SigLIPLoss(nn.Module):
    """The SigLIP sigmoid loss with learnable scale and bias (see the module doc)."""

    def __init__(self, init_scale: float = 10.0, init_bias: float = -10.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(init_bias))

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, positives: torch.Tensor
    ) -> torch.Tensor:
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        logits = scale * image @ text.T + self.logit_bias
        signs = positives.to(logits.dtype) * 2 - 1
        return -F.logsigmoid(signs * logits).sum() / len(image)


LOSSES: dict[str, Callable[[], nn.Module]] = {"infonce": InfoNCELoss, "siglip": SigLIPLoss}


def create_contrastive(kind: str) -> nn.Module:
    """A fresh :class:`InfoNCELoss` (``"infonce"``) or :class:`SigLIPLoss` (``"siglip"``)."""
    if kind not in LOSSES:
        raise ValueError(f"unknown contrastive loss {kind!r}; choose from {sorted(LOSSES)}")
    return LOSSES[kind]()


class PromptLevelLoss(nn.Module):
    """Per type, cross-entropy of the embedding's similarities to that type's prompt-level
    captions, towards the prompt level nearest the truth (learnable temperature)."""

    def __init__(self, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(
        self,
        per_type: torch.Tensor,
        prompt_text: Sequence[torch.Tensor],
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean over types of the cross-entropy, ``K`` accuracies of the top pick, detached).

        ``per_type``: ``N x K x D`` L2-normalised; ``prompt_text[t]``: ``L_t x D``
        L2-normalised embeddings of type ``t``'s prompts; ``targets``: ``N x K``
        index of the right prompt level per sample and type.
        """
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        losses, accuracy = [], []
        for t, text in enumerate(prompt_text):
            logits = scale * per_type[:, t] @ text.to(per_type.dtype).T
            target = targets[:, t].to(logits.device)
            losses.append(F.cross_entropy(logits, target))
            accuracy.append((logits.detach().argmax(dim=1) == target).float().mean())
        return torch.stack(losses).mean(), torch.stack(accuracy)


class AdaptorLoss(nn.Module):
    """Weighted content / degradation / per-type contrastive loss (see the module doc).

    Each term has its own learnable temperature. ``encode_text`` maps a list of
    strings to L2-normalised embeddings (the adaptor's frozen text tower); each
    distinct caption of a batch is encoded once.
    """

    def __init__(
        self,
        kind: str = "siglip",
        content_weight: float = 0.2,
        degradation_weight: float = 0.3,
        types_weight: float = 0.5,
        levels_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.weights = {
            "content": content_weight,
            "degradation": degradation_weight,
            "types": types_weight,
            "levels": levels_weight,
        }
        for name, weight in self.weights.items():
            if not weight >= 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {weight}")
        self.terms = nn.ModuleDict(
            {name: create_contrastive(kind) for name in ("content", "degradation", "types")}
        )
        self.levels = PromptLevelLoss()

    def forward(
        self,
        output: AdaptorOutput,
        encode_text: Callable[[list[str]], torch.Tensor],
        degradation_captions: Sequence[str],
        type_captions: Sequence[Sequence[str]],
        content_captions: Sequence[str] | None = None,
        level_prompts: Sequence[Sequence[str]] | None = None,
        level_targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss, {term name: value, ``acc<t>``: type t's accuracy}) for one batch.

        ``type_captions[i]`` holds sample ``i``'s K per-type captions. ``acc<t>`` is
        the fraction of samples whose per-type embedding is closest to their own
        caption among the batch's distinct captions of type t. With
        ``level_prompts`` (per type, its prompt-level captions) and
        ``level_targets`` (``N x K`` index of the right one) the prompt-level term
        is added and ``lvl<t>`` is the share of samples whose top prompt is right.
        """
        n = len(degradation_captions)
        num_types = output.per_type.shape[1]
        if any(len(row) != num_types for row in type_captions):
            raise ValueError(f"every sample needs {num_types} per-type captions")
        content_rows = [i for i, c in enumerate(content_captions or []) if c]
        texts = list(degradation_captions) + [c for row in type_captions for c in row]
        texts += [content_captions[i] for i in content_rows]
        texts += [c for row in level_prompts or [] for c in row]
        unique = list(dict.fromkeys(texts))
        embedded = encode_text(unique)
        lookup = {t: i for i, t in enumerate(unique)}

        def text(captions: Sequence[str]) -> torch.Tensor:
            return embedded[[lookup[c] for c in captions]].to(output.degradation.dtype)

        def term(name: str, image: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
            mask = positive_mask(captions).to(image.device)
            return self.terms[name](image, text(captions), mask)

        values = {"degradation": term("degradation", output.degradation, degradation_captions)}
        per_type = [
            term("types", output.per_type[:, t], [type_captions[i][t] for i in range(n)])
            for t in range(num_types)
        ]
        values["types"] = torch.stack(per_type).mean()
        accuracy = {
            f"acc{t}": _match_accuracy(
                output.per_type[:, t], [type_captions[i][t] for i in range(n)], text
            )
            for t in range(num_types)
        }
        if content_rows:
            values["content"] = term(
                "content", output.content[content_rows], [content_captions[i] for i in content_rows]
            )
        if level_prompts is not None and level_targets is not None:
            prompt_text = [text(row) for row in level_prompts]
            values["levels"], picks = self.levels(output.per_type, prompt_text, level_targets)
            accuracy.update({f"lvl{t}": a for t, a in enumerate(picks.tolist())})
        total = sum(self.weights[name] * value for name, value in values.items())
        numbers = {name: float(value.detach()) for name, value in values.items()}
        return total, {**numbers, **accuracy}


@torch.no_grad()
def _match_accuracy(
    image: torch.Tensor, captions: Sequence[str], text: Callable[[Sequence[str]], torch.Tensor]
) -> float:
    """Fraction of rows whose most similar caption, among the batch's distinct ones, is theirs."""
    choices = list(dict.fromkeys(captions))
    best = (image @ text(choices).T).argmax(dim=1).tolist()
    return sum(choices[b] == c for b, c in zip(best, captions, strict=True)) / len(captions)

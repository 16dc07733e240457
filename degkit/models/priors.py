"""Priors for :class:`~degkit.models.fusion.FusedSR`, chosen by name, all giving the same tokens.

Every prior maps LR images (and, for the oracles, their dataset rows) to
``N x (1 + K) x D`` tokens: a content token, then one per degradation type.
It runs in two steps:

- :meth:`Prior.estimate` (frozen, no gradient): what the prior reads off
  one LR image (as stored: the estimators resize it themselves) or its row,
  never from the HR. It does not change during SR training, so compute it
  once per image (on the whole LR, not on a training patch) and cache it.
- :meth:`Prior.embed` (trained with the SR model): the estimate as tokens.

Priors (estimate -> embed):

- ``none``: zeros ``N x (1 + K) x D`` -> identity (the fusion's projector then
  feeds the blocks learnt constants: the same capacity, no information);
- ``deplsr``: a frozen trained adaptor's content embedding and ``K``
  per-type embeddings -> identity;
- ``regressor``: a frozen trained level regressor's per-type level /
  :data:`~degkit.models.estimator.LEVEL_SCALES` and presence probability ->
  :class:`LevelEmbedding`;
- ``oracle-text``: the adaptor's content embedding (as ``deplsr``) and the row's
  fine captions through the adaptor's frozen CLIP text tower -> identity;
- ``oracle-params``: the row's true per-type level / ``LEVEL_SCALES`` and
  presence, read from the batch's ``levels`` and ``present`` tensors
  (``N x K``, as :func:`~degkit.models.estimator.levels_from_batch` and the SR
  training batches of :mod:`degkit.train.sr_data` give them) -> the same
  :class:`LevelEmbedding`.

The level priors carry no content information: their content token is zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from degkit.captions import PAPER_TYPES
from degkit.models.adaptor import DegradationAdaptor
from degkit.models.estimator import LEVEL_SCALES, LevelRegressor

__all__ = [
    "ESTIMATOR_OF",
    "PRIORS",
    "AdaptorPrior",
    "LevelEmbedding",
    "NoPrior",
    "ParamsOraclePrior",
    "Prior",
    "RegressorPrior",
    "TextOraclePrior",
    "build_prior",
]

PRIORS = ("none", "deplsr", "regressor", "oracle-text", "oracle-params")

ESTIMATOR_OF = {"deplsr": "adaptor", "oracle-text": "adaptor", "regressor": "regressor"}
"""The trained estimator each prior reads (the others need none)."""


class Prior(nn.Module):
    """Base class: ``forward(lr, batch) = embed(estimate(lr, batch))`` (see the module doc).

    Attributes:
        name: the prior's name in :data:`PRIORS`.
        columns: the batch keys :meth:`estimate` reads (besides ``lr``).
        dim: ``D``, the width of the tokens.
        num_types: ``K``.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dim: int, num_types: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_types = num_types

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        """The frozen part, from [0, 1] LR images ``N x 3 x H x W`` and their rows."""
        raise NotImplementedError

    def embed(self, estimate: torch.Tensor) -> torch.Tensor:
        """The trained part: an estimate -> tokens ``N x (1 + K) x D``."""
        return estimate

    def trainable(self) -> nn.ModuleDict:
        """The modules :meth:`embed` trains (a frozen estimator left out; empty when none)."""
        frozen = getattr(self, "model", None)
        return nn.ModuleDict({n: m for n, m in self.named_children() if m is not frozen})

    def forward(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        with torch.no_grad():
            estimate = self.estimate(lr, batch)
        return self.embed(estimate)

    def _column(self, batch: Mapping[str, Any] | None, name: str, n: int) -> Sequence[Any]:
        if batch is None or name not in batch:
            raise ValueError(f"prior {self.name!r} needs the dataset column {name!r} in the batch")
        values = batch[name]
        if len(values) != n:
            raise ValueError(f"prior {self.name!r}: column {name!r} has {len(values)} rows for {n}")
        return values


class _Frozen(Prior):
    """A prior around a frozen model: no gradient, always in eval mode."""

    def __init__(self, model: nn.Module, dim: int, num_types: int) -> None:
        super().__init__(dim, num_types)
        self.model = model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> _Frozen:
        super().train(mode)
        self.model.eval()
        return self


class NoPrior(Prior):
    """``none``: zero tokens (no information about the image)."""

    name = "none"

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        return lr.new_zeros(len(lr), 1 + self.num_types, self.dim)


class AdaptorPrior(_Frozen):
    """``deplsr``: a frozen adaptor's content and per-type embeddings."""

    name = "deplsr"

    def __init__(self, adaptor: DegradationAdaptor) -> None:
        super().__init__(adaptor, adaptor.config.embed_dim, adaptor.config.num_types)

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        out = self.model(lr)
        return torch.cat([out.content[:, None], out.per_type], dim=1)


class TextOraclePrior(_Frozen):
    """``oracle-text``: ``deplsr`` with the true fine captions in place of the estimated
    per-type embeddings.

    The content token is the adaptor's image content embedding, as in ``deplsr``;
    each type token is the row's fine caption through the adaptor's frozen CLIP
    text tower (the space its per-type embeddings are trained to match). So the
    two priors differ only in whether the degradation is estimated or known.
    """

    name = "oracle-text"
    columns = ("fine_captions",)

    def __init__(self, adaptor: DegradationAdaptor) -> None:
        super().__init__(adaptor, adaptor.config.embed_dim, len(PAPER_TYPES))

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        n = len(lr)
        fine = self._column(batch, "fine_captions", n)
        if any(len(captions) != self.num_types for captions in fine):
            raise ValueError(f"prior {self.name!r}: fine_captions must hold {self.num_types} each")
        content = self.model(lr).content
        types = self.model.encode_text([text for captions in fine for text in captions])
        types = types.view(n, self.num_types, -1).to(device=lr.device, dtype=content.dtype)
        return torch.cat([content[:, None], types], dim=1)


class LevelEmbedding(nn.Module):
    """Per type ``(level / scale, presence)`` -> a ``D`` token; a zero content token first.

    Each type's pair goes through ``Linear(2, D)`` plus a learnt type embedding,
    GELU, ``Linear(D, D)`` (weights shared by the types).
    """

    def __init__(self, dim: int, num_types: int) -> None:
        super().__init__()
        self.inp = nn.Linear(2, dim)
        self.type_embedding = nn.Parameter(torch.randn(num_types, dim) * 0.02)
        self.out = nn.Linear(dim, dim)

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        """``levels`` ``N x K x 2`` -> tokens ``N x (1 + K) x D``."""
        tokens = self.out(nn.functional.gelu(self.inp(levels) + self.type_embedding))
        return torch.cat([tokens.new_zeros(len(tokens), 1, tokens.shape[-1]), tokens], dim=1)


class RegressorPrior(_Frozen):
    """``regressor``: a frozen level regressor's levels and presences, embedded."""

    name = "regressor"

    def __init__(self, regressor: LevelRegressor, dim: int) -> None:
        super().__init__(regressor, dim, len(regressor.types))
        self.levels = LevelEmbedding(dim, self.num_types)

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        out = self.model(lr)
        scaled = out.levels / self.model.scales
        return torch.stack([scaled, torch.sigmoid(out.presence_logits)], dim=-1)

    def embed(self, estimate: torch.Tensor) -> torch.Tensor:
        return self.levels(estimate)


class ParamsOraclePrior(Prior):
    """``oracle-params``: the row's true per-type levels and presences, embedded."""

    name = "oracle-params"
    columns = ("levels", "present")

    def __init__(self, dim: int) -> None:
        super().__init__(dim, len(PAPER_TYPES))
        self.levels = LevelEmbedding(dim, self.num_types)

    def estimate(self, lr: torch.Tensor, batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        levels, present = (torch.as_tensor(self._column(batch, c, len(lr))) for c in self.columns)
        scales = torch.tensor([LEVEL_SCALES[t] for t in PAPER_TYPES], device=levels.device)
        return torch.stack([levels.float() / scales, present.float()], dim=-1).to(lr.device)

    def embed(self, estimate: torch.Tensor) -> torch.Tensor:
        return self.levels(estimate)


def build_prior(
    name: str,
    dim: int | None = None,
    adaptor: DegradationAdaptor | None = None,
    regressor: LevelRegressor | None = None,
) -> Prior:
    """The prior ``name`` of :data:`PRIORS`.

    ``deplsr`` and ``oracle-text`` need ``adaptor`` (their ``D`` is its embed
    dim); ``regressor`` needs ``regressor``. ``D`` of the others is ``dim``,
    default the adaptor's embed dim when one is given (so every prior of a
    comparison feeds the same projector).
    """
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; available: {list(PRIORS)}")
    if ESTIMATOR_OF.get(name) == "adaptor":
        if adaptor is None:
            raise ValueError(f"prior {name!r} needs an adaptor checkpoint (--adaptor)")
        return AdaptorPrior(adaptor) if name == "deplsr" else TextOraclePrior(adaptor)
    if dim is None:
        if adaptor is None:
            raise ValueError(f"prior {name!r} needs a token width (dim) or an adaptor")
        dim = adaptor.config.embed_dim
    if name == "regressor":
        if regressor is None:
            raise ValueError("prior 'regressor' needs a regressor checkpoint (--regressor)")
        return RegressorPrior(regressor, dim)
    if name == "oracle-params":
        return ParamsOraclePrior(dim)
    return NoPrior(dim, len(PAPER_TYPES))

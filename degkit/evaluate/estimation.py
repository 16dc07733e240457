"""The degradation-estimation protocol: prompt levels, tolerances and scores per type.

For each of the paper's five types a model picks one *prompt level*; the
guess is correct when ``|prompt level - true level| < tolerance``:

=============== ======================= =========
type            prompt levels           tolerance
=============== ======================= =========
blur            sigma 0, 1, 2, 3        0.5
gaussian noise  sigma 0, 15, 30 (0-255) 10
poisson noise   scale 0, 1, 2, 3        0.5
jpeg            quality 30, 50, 70, 90  10
ringing         absent (0), present (1) exact
=============== ======================= =========

The true level of an absent type is 0 (ringing: 0 absent, 1 present). The
adaptor scores its fine embedding of a type against the text prompts
``"A photo with {caption}"`` (:func:`prompts`; an adaptor trained with another
caption template is scored with its own), the caption being that type's
fine caption at each prompt level (level 0: the caption an absent type
gets), and picks the most similar. The level regressor's prediction (0 where
its presence probability is below 0.5) is snapped to the nearest prompt level
(:func:`snap`); both are then scored by :func:`accuracy`.

Baselines: *chance* is the expected accuracy of a uniformly random prompt
level (the mean over samples of the share of prompt levels that would be
correct); *majority* is the accuracy of the best constant prompt level.

Pure numpy: no torch, no model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from degkit.captions import caption_types

__all__ = [
    "PROMPT_TEMPLATE",
    "PROTOCOL",
    "TypeProtocol",
    "accuracy",
    "chance_accuracy",
    "confusion_matrix",
    "majority_accuracy",
    "pca_2d",
    "prompts",
    "snap",
    "true_levels",
]

PROMPT_TEMPLATE = "A photo with {}"
"""The protocol's prompt around a caption; ``degkit train-adaptor`` uses it by default."""


@dataclasses.dataclass(frozen=True)
class TypeProtocol:
    """One type's prompt levels and tolerance (``presence_only``: levels 0 absent, 1 present)."""

    name: str
    levels: tuple[float, ...]
    tolerance: float
    unit: str
    presence_only: bool = False

    def correct(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        """Bool per sample: ``|predicted - true| < tolerance``."""
        return np.abs(np.asarray(predicted, float) - np.asarray(true, float)) < self.tolerance

    def captions(self) -> list[str]:
        """The type's fine caption at each prompt level (level 0: the absent caption)."""
        kind = caption_types()[self.name]
        return [kind.level_fragment(float(level) if level else None) for level in self.levels]


PROTOCOL: tuple[TypeProtocol, ...] = (
    TypeProtocol("blur", (0.0, 1.0, 2.0, 3.0), 0.5, "sigma"),
    TypeProtocol("gaussian noise", (0.0, 15.0, 30.0), 10.0, "sigma (0-255)"),
    TypeProtocol("poisson noise", (0.0, 1.0, 2.0, 3.0), 0.5, "scale"),
    TypeProtocol("jpeg", (30.0, 50.0, 70.0, 90.0), 10.0, "quality"),
    TypeProtocol("ringing", (0.0, 1.0), 0.5, "absent / present", presence_only=True),
)
"""The protocol of each of :data:`~degkit.captions.PAPER_TYPES`, in that order."""


def prompts(protocol: TypeProtocol, template: str = PROMPT_TEMPLATE) -> list[str]:
    """``template`` (default ``"A photo with {}"``) around each prompt level's caption."""
    return [template.format(c) for c in protocol.captions()]


def true_levels(protocol: TypeProtocol, levels: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The protocol's truth: the level where present, else 0 (presence-only types: 0 / 1)."""
    present = np.asarray(present, bool)
    if protocol.presence_only:
        return present.astype(float)
    return np.where(present, np.asarray(levels, float), 0.0)


def snap(protocol: TypeProtocol, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest prompt level to each value (ties: the lower level)."""
    grid = np.asarray(protocol.levels)
    return np.abs(np.asarray(levels, float)[:, None] - grid[None, :]).argmin(axis=1)


def accuracy(protocol: TypeProtocol, choices: np.ndarray, true: np.ndarray) -> float:
    """Share of samples whose chosen prompt level (an index) is within tolerance of the truth."""
    picked = np.asarray(protocol.levels)[np.asarray(choices, int)]
    return float(protocol.correct(picked, true).mean())


def _hits(protocol: TypeProtocol, true: np.ndarray) -> np.ndarray:
    """``N x L`` bool: prompt level ``l`` is correct for sample ``n``."""
    return protocol.correct(np.asarray(protocol.levels)[None, :], np.asarray(true, float)[:, None])


def chance_accuracy(protocol: TypeProtocol, true: np.ndarray) -> float:
    """Expected accuracy of a uniformly random prompt level."""
    return float(_hits(protocol, true).mean())


def majority_accuracy(protocol: TypeProtocol, true: np.ndarray) -> tuple[float, float]:
    """(accuracy, level) of the best constant prompt level (ties: the lower level)."""
    per_level = _hits(protocol, true).mean(axis=0)
    best = int(per_level.argmax())
    return float(per_level[best]), protocol.levels[best]


def confusion_matrix(protocol: TypeProtocol, choices: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``L x L`` counts: row = true level snapped to the nearest prompt level, column = choice."""
    size = len(protocol.levels)
    rows = snap(protocol, true)
    out = np.zeros((size, size), dtype=int)
    np.add.at(out, (rows, np.asarray(choices, int)), 1)
    return out


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """``N x 2``: the vectors (``N x D``) centred, projected on their two first principal axes."""
    x = np.asarray(vectors, float)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    if len(axes) < 2:
        axes = np.vstack([axes, np.zeros((2 - len(axes), x.shape[1]))])
    return x @ axes.T

"""A degkit recipe (or op) as a ``torch.nn.Module``, Kornia-augmentation style.

``Degrade(recipe)(hr)`` degrades a batch inside a model or a training step,
on the batch's device, with the same draws as
``recipe.pipeline(hr, seed, indices, scale)``. Pass each sample's index
(e.g. the dataset index) to tie its degradation to the sample; without
indices the module numbers samples itself, continuing from call to call
(``next_index``, saved in ``state_dict`` so a resumed run continues the
sequence). The records of the last call are kept in ``last_records``.

Under ``torch.compile`` the module runs eagerly (``torch.compiler.disable``):
its parameters are drawn by per-sample keyed-hash streams in host Python and
its records are Python data, which Dynamo cannot trace, so a compiled training
step breaks its graph once at the call instead of at every op inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from degkit.interop import Degrader
from degkit.ops.base import Images, Op, Record, batch_size
from degkit.pipeline import Pipeline
from degkit.recipes import Recipe

__all__ = ["Degrade"]


class Degrade(torch.nn.Module):
    """Degrade HR batches with a recipe or op; ``forward(hr, indices=None) -> lr``.

    Args:
        degradation: a recipe (loaded, or its name or path), a pipeline or an op.
        seed: the seed of every draw.
        scale: SR factor of a recipe (default: the recipe's); a bare pipeline needs one.
    """

    def __init__(
        self,
        degradation: str | Path | Recipe | Pipeline | Op,
        seed: int = 0,
        scale: int | None = None,
    ) -> None:
        super().__init__()
        self.degrader = Degrader(degradation, scale)
        self.seed = int(seed)
        self.next_index = 0
        self.last_records: list[list[Record]] = []

    @torch.compiler.disable
    def forward(self, hr: Images, indices: Sequence[int] | torch.Tensor | None = None) -> Images:
        """The LR batch of ``hr`` (``N x 3 x H x W`` in [0, 1]); records in ``last_records``."""
        n = batch_size(hr)
        if indices is None:
            indices = range(self.next_index, self.next_index + n)
            self.next_index += n
        elif isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        lr, self.last_records = self.degrader(hr, self.seed, list(indices))
        return lr

    def get_extra_state(self) -> dict[str, Any]:
        """Saved in ``state_dict``: the seed and the next automatic sample index."""
        return {"seed": self.seed, "next_index": self.next_index}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.seed, self.next_index = int(state["seed"]), int(state["next_index"])

    def extra_repr(self) -> str:
        return f"seed={self.seed}, scale={self.degrader.scale}, next_index={self.next_index}"

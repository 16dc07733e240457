"""A degkit recipe (or op) as a ``torch.nn.Module``, Kornia-augmentation style.

``Degrade(recipe)(hr)`` degrades a batch inside a model or a training step,
on the batch's device, with the same draws as
``recipe.pipeline(hr, seed, indices, scale)``. Pass each sample's index
(e.g. the dataset index) to tie its degradation to the sample; without
indices the module numbers samples itself, continuing from call to call
(``next_index``, saved in ``state_dict`` so a resumed run continues the
sequence). The records of the last call are kept in ``last_records``, and
``last_captions()`` turns them into each sample's per-type captions when asked
(host work only then; the forward pass never waits on the device).

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

from degkit.captions import fine_captions
from degkit.interop import Degrader
from degkit.ops.base import Images, Op, Record, batch_size, image_sizes
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
        self._last_sizes: list[tuple[int, int]] = []

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
        self._last_sizes = [(h, w) for h, w in image_sizes(hr).tolist()]
        return lr

    def last_captions(self) -> list[list[str]]:
        """Each sample's per-type captions (blur, gaussian noise, poisson noise, jpeg,
        ringing) for the last call, as a built dataset's ``fine_captions`` hold them."""
        return [
            fine_captions(records, size)
            for records, size in zip(self.last_records, self._last_sizes, strict=True)
        ]

    def get_extra_state(self) -> dict[str, Any]:
        """Saved in ``state_dict``: the seed and the next automatic sample index."""
        return {"seed": self.seed, "next_index": self.next_index}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.seed, self.next_index = int(state["seed"]), int(state["next_index"])

    def extra_repr(self) -> str:
        return f"seed={self.seed}, scale={self.degrader.scale}, next_index={self.next_index}"

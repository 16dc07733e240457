"""degkit ops and recipes as an albumentations transform (needs ``degkit[albumentations]``).

``DegkitTransform`` runs inside ``A.Compose`` on numpy images (``H x W x 3``,
uint8 0-255 or float 0-1; the output has the input's dtype, uint8 rounded to
nearest) and puts the sample's records in the data dict under
``records_key`` (default ``"degkit_records"``), so captions and flat columns
can be made from them (:func:`degkit.captions.captions_for`, with the input
image's ``(H, W)`` as ``hr_size``).

**Which sample index.** degkit's draws depend on ``(seed, sample index)``.
Pass the index with the data, ``compose(image=img, degkit_index=i)`` (key
``index_key``), e.g. the dataset index, and a sample gets the same
degradation in any order, worker or epoch: exactly what
``recipe.pipeline(x, seed, [i], scale)`` (or ``op(x, BatchStreams(seed, [i],
op.name))``) gives. Without it the transform counts its calls (0, 1, 2, ...
per transform object), which is reproducible in one process but repeats
across DataLoader workers, each holding a copy: pass an index there.

A recipe changes the image size (the LR is ``H / scale``), so use it on
images only, not with masks or boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from degkit.extras import require
from degkit.interop import Degrader, image_to_tensor, tensor_to_image
from degkit.ops.base import Op
from degkit.pipeline import Pipeline
from degkit.recipes import Recipe

A = require("albumentations", "albumentations", "degkit.interop.albumentations")

__all__ = ["DegkitTransform"]


class DegkitTransform(A.ImageOnlyTransform):
    """Apply a degkit op or recipe to ``image`` with seeded, replayable per-sample draws.

    Args:
        degradation: an op, a pipeline, or a recipe (loaded, or its name or path).
        seed: the dataset seed.
        scale: SR factor of a recipe (default: the recipe's); a bare pipeline needs one.
        index_key: data key holding the sample index; without it, the call count.
        records_key: data key the sample's records are written to.
        p: probability of applying (albumentations' rule; not applied gives no records).
    """

    def __init__(
        self,
        degradation: str | Path | Recipe | Pipeline | Op,
        seed: int = 0,
        scale: int | None = None,
        index_key: str = "degkit_index",
        records_key: str = "degkit_records",
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.degrader = Degrader(degradation, scale)
        self.degkit_seed = int(seed)  # albumentations' own ``seed`` drives its random state
        self.index_key, self.records_key = index_key, records_key
        self.next_index = 0

    @property
    def targets(self) -> dict[str, Any]:
        """Only ``image``: each image is its own sample with its own draws."""
        return {"image": self.apply}

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """The sample index (given, or the call count) and the degradation it draws."""
        if data.get(self.index_key) is not None:
            index = int(data[self.index_key])
        else:
            index, self.next_index = self.next_index, self.next_index + 1
        if data.get("image") is None:
            raise ValueError("DegkitTransform degrades the 'image' target (one sample a call)")
        image = data["image"]
        y, records = self.degrader(image_to_tensor(image), self.degkit_seed, [index])
        return {"index": index, "degraded": tensor_to_image(y[0], image), "records": records[0]}

    def apply(self, img: np.ndarray, degraded: np.ndarray, **params: Any) -> np.ndarray:
        """The degraded image (computed with its records, see above)."""
        return degraded

    def apply_with_params(
        self, params: dict[str, Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """albumentations' application, plus the records under ``records_key``."""
        out = super().apply_with_params(params, *args, **kwargs)
        out[self.records_key] = params["records"]
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """What ``repr`` shows (the degradation itself cannot be serialised by albumentations)."""
        return ("degkit_seed", "index_key", "records_key")

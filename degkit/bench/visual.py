"""A grid of visual comparison crops: LR, each entry's SR, HR, for a few fixed test images.

The images are spread evenly over the test set's pairs (sorted by id, so the
choice is fixed by the set's hash); each row shows the same ``crop x crop`` LR
region at the centre of the image (LR enlarged by pixel repetition), then each
model's SR of the whole LR cut to that region, then the HR.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from degkit.evaluate.models import load_model, super_resolve
from degkit.evaluate.sets import load_set

__all__ = ["comparison_grid", "pick_pairs"]


def pick_pairs(pairs: list, count: int) -> list:
    """``count`` pairs spread evenly over ``pairs`` sorted by id."""
    ordered = sorted(pairs, key=lambda p: p.id)
    if count >= len(ordered):
        return ordered
    return [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, count).round()]


def comparison_grid(
    set_name: str, models: Mapping[str, str], count: int, crop: int, path: str | Path
) -> Path:
    """Draw the grid of ``models`` (label -> model spec for ``degkit eval``) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test_set = load_set(set_name)
    scale = test_set.scale
    pairs = pick_pairs(test_set.pairs(), count)
    loaded = {label: load_model(spec, scale) for label, spec in models.items()}
    columns = ["LR", *loaded, "HR"]
    fig, axes = plt.subplots(
        len(pairs), len(columns), figsize=(1.6 * len(columns), 1.7 * len(pairs)), squeeze=False
    )
    for row, pair in enumerate(pairs):
        h, w = pair.lr.shape[:2]
        size = min(crop, h, w)
        top, left = (h - size) // 2, (w - size) // 2
        lr = torch.from_numpy(pair.lr.copy()).permute(2, 0, 1)[None].float().div(255)
        region = (
            slice(top * scale, (top + size) * scale),
            slice(left * scale, (left + size) * scale),
        )
        tiles = [
            np.repeat(np.repeat(pair.lr[top : top + size, left : left + size], scale, 0), scale, 1)
        ]
        for model in loaded.values():
            sr = super_resolve(model, lr, pairs=[pair])[0].permute(1, 2, 0).numpy()
            tiles.append((sr[region] * 255).round().astype(np.uint8))
        tiles.append(pair.hr[region])
        for col, (title, tile) in enumerate(zip(columns, tiles, strict=True)):
            ax = axes[row][col]
            ax.imshow(tile, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
        axes[row][0].set_ylabel(pair.id, fontsize=6)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

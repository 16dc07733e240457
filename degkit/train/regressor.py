"""Train the level regressor on a built degkit dataset (``degkit train-regressor``).

Targets per row come from :func:`degkit.models.estimator.levels_from_flat`
(the per-type level columns). AdamW with the adaptor's settings, warm-up + cosine
schedule. Augmentation changes no degradation: each LR image gets one of the
eight flips / 90-degree rotations (``augment``) and, with ``crop``, a square
patch at offsets on the 16-pixel grid of JPEG's 4:2:0 blocks (no resampling:
the blur, noise, JPEG and ringing the labels describe stay as they are).
Writes ``OUT/regressor.safetensors`` (weights, the types, the seed, the
dataset's recipe hashes and rows, the step, the training options and the
wall seconds of training) at the end.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from degkit.levels import LEVEL_COLUMNS
from degkit.models.adaptor import write_safetensors
from degkit.models.estimator import POOLS, LevelRegressor, level_loss, levels_from_batch
from degkit.train.data import dataset_summary, step_batches
from degkit.train.optim import adamw, lr_at, set_lr
from degkit.train.sr_data import dihedral
from degkit.train.steps import run_steps

__all__ = ["JPEG_GRID", "RegressorConfig", "augment_batch", "load_regressor", "train_regressor"]

CHECKPOINT = "regressor.safetensors"
JPEG_GRID = 16
"""Crop offsets are multiples of this: the MCU of 4:2:0 JPEG, so its block grid stays put."""


def augment_batch(
    images: torch.Tensor, generator: torch.Generator, dihedral_ops: bool, crop: int
) -> torch.Tensor:
    """Per image a flip / 90-degree rotation (``dihedral_ops``), then a ``crop`` patch (0: none).

    Non-square images turn by 0 or 180 degrees only (their shape stays).
    Patch offsets are multiples of :data:`JPEG_GRID`, drawn per batch.

    Raises:
        ValueError: the images are smaller than ``crop``.
    """
    if dihedral_ops:
        codes = torch.randint(0, 8, (len(images),), generator=generator).tolist()
        square = images.shape[-1] == images.shape[-2]
        images = torch.stack(
            [
                dihedral(x, c >= 4, c % 4 if square else 2 * (c % 2))
                for x, c in zip(images, codes, strict=True)
            ]
        )
    if crop:
        height, width = images.shape[-2:]
        if height < crop or width < crop:
            raise ValueError(f"--crop {crop} is larger than the LR images ({height} x {width})")
        top, left = (
            JPEG_GRID
            * int(torch.randint(0, (size - crop) // JPEG_GRID + 1, (), generator=generator))
            for size in (height, width)
        )
        images = images[..., top : top + crop, left : left + crop]
    return images


@dataclasses.dataclass
class RegressorConfig:
    """Options of one ``degkit train-regressor`` run."""

    data: Path
    out: Path
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.2
    width: int = 32
    stem: int = 2
    pool: str = "mean_std"
    jpeg_grid: bool = True
    level_bins: int = 16
    augment: bool = True
    crop: int = 0
    seed: int = 0
    device: str = "cpu"
    split: str = "train"
    progress: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        for name in ("steps", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.crop < 0 or self.crop % JPEG_GRID:
            raise ValueError(f"--crop must be 0 (whole images) or a multiple of {JPEG_GRID}")
        if self.stem < 0:
            raise ValueError("--stem must be >= 0")
        if self.level_bins < 0 or self.level_bins == 1:
            raise ValueError(f"--level-bins must be 0 or >= 2, got {self.level_bins}")
        if self.pool not in POOLS:
            raise ValueError(f"--pool must be one of {POOLS}, got {self.pool!r}")


def train_regressor(cfg: RegressorConfig) -> Path:
    """Train and write ``OUT/regressor.safetensors``; return its path."""
    device = torch.device(cfg.device)
    checkpoint = cfg.out / CHECKPOINT
    if checkpoint.exists():
        raise ValueError(f"--out {cfg.out} already holds {CHECKPOINT}; pass a new --out")
    summary = dataset_summary(cfg.data, cfg.split)
    torch.manual_seed(cfg.seed)
    model = LevelRegressor(
        width=cfg.width,
        stem=cfg.stem,
        pool=cfg.pool,
        jpeg_grid=cfg.jpeg_grid,
        level_bins=cfg.level_bins,
    ).to(device)
    optimizer = adamw(model.named_parameters(), cfg.lr, cfg.weight_decay)
    columns = ("lr", *LEVEL_COLUMNS.values())
    batches = step_batches(cfg.data, columns, cfg.batch_size, cfg.seed, 0, cfg.split)
    generator = torch.Generator().manual_seed(cfg.seed)

    def step(s: int) -> dict[str, float]:
        batch = next(batches)
        levels, present = (t.to(device) for t in levels_from_batch(batch))
        images = augment_batch(batch["lr"], generator, cfg.augment, cfg.crop)
        loss = level_loss(model(images.to(device)), levels, present, model.scales)
        set_lr(optimizer, lr_at(s, cfg.steps, cfg.warmup, cfg.lr))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}

    began = time.perf_counter()
    run_steps("train regressor", 0, cfg.steps, step, cfg.progress)
    meta = {
        "types": list(model.types),
        "width": cfg.width,
        "stem": cfg.stem,
        "pool": cfg.pool,
        "jpeg_grid": cfg.jpeg_grid,
        "level_bins": cfg.level_bins,
        "seed": cfg.seed,
        "step": cfg.steps,
        "rows": summary["rows"],
        "recipe_hashes": summary["recipe_hashes"],
        "train": {
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("data", "out", "progress", "device")
        },
        "wall_seconds": {"train": time.perf_counter() - began},
        "targets": "levels_from_flat (per-type level columns)",
    }
    write_safetensors(model.state_dict(), checkpoint, {"degkit": json.dumps(meta, sort_keys=True)})
    return checkpoint


def load_regressor(path: str | Path) -> tuple[LevelRegressor, dict]:
    """A checkpoint of :func:`train_regressor`: (model, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("degkit", "{}"))
    if "types" not in meta:
        raise ValueError(f"{path}: not a degkit regressor checkpoint")
    # checkpoints from before the stem / the JPEG grid / the histogram head: the plain
    # four-block network with a scalar level head
    model = LevelRegressor(
        types=meta["types"],
        width=meta["width"],
        stem=meta.get("stem", 0),
        pool=meta.get("pool", "mean"),
        jpeg_grid=meta.get("jpeg_grid", False),
        level_bins=meta.get("level_bins", 0),
    )
    model.load_state_dict(load_file(str(path)))
    return model, meta

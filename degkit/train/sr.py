"""Train an SR model on a built degkit dataset (``degkit train-sr``).

The model is a spandrel trunk (:mod:`degkit.models.backbones`) wrapped with
fusion blocks (:class:`~degkit.models.fusion.FusedSR`) fed by a prior
(:mod:`degkit.models.priors`); ``--prior bare`` trains the bare trunk (no
fusion block runs). Each step takes, per row, a random LR patch and the HR
patch over the same area, with the same random flips and transpose; L1 loss;
Adam (betas 0.9 / 0.99) with the learning rate halved at each milestone
(fractions of ``--steps``). The trunk, the fusion blocks and the prior's
trainable part are trained; frozen estimators stay frozen. A prior's frozen
estimate is computed once per image, on the whole stored LR image (never the
HR, never a patch), and kept for the rest of the run.

``OUT/last.safetensors`` holds the model, the prior's trainable part, the
optimizer, the step, torch's random state and the full config (backbone,
scale, prior, widths, training options, dataset recipe hashes); ``--resume``
continues from it (on the CPU exactly as the uninterrupted run). Next to it
``OUT/trunk.safetensors`` is the trunk alone in spandrel's format.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from degkit.data.loaders import split_files
from degkit.models.adaptor import load_adaptor, write_safetensors
from degkit.models.backbones import (
    available_backbones,
    build_backbone,
    load_trunk_weights,
    save_trunk,
)
from degkit.models.fusion import FusedSR
from degkit.models.priors import PRIORS, Prior, build_prior
from degkit.models.sr_checkpoint import read_sr_checkpoint
from degkit.models.sr_checkpoint import section as _section
from degkit.train.data import dataset_summary, step_batches
from degkit.train.optim import (
    multistep_lr_at,
    optimizer_from_tensors,
    optimizer_to_tensors,
    set_lr,
)
from degkit.train.patches import paired_patches
from degkit.train.regressor import load_regressor
from degkit.train.steps import run_steps

__all__ = ["PRIOR_CHOICES", "SRTrainConfig", "SRTrainResult", "train_sr"]

CHECKPOINT = "last.safetensors"
TRUNK = "trunk.safetensors"
PRIOR_CHOICES = ("bare", *PRIORS)
BETAS = (0.9, 0.99)
DEFAULT_PRIOR_DIM = 512


@dataclasses.dataclass
class SRTrainConfig:
    """Options of one ``degkit train-sr`` run (see ``degkit train-sr --help``)."""

    data: Path
    out: Path
    backbone: str = "dat_light"
    prior: str = "none"
    adaptor: Path | None = None
    regressor: Path | None = None
    prior_dim: int | None = None
    init: Path | None = None
    init_partial: bool = False
    steps: int = 1000
    batch_size: int = 4
    patch: int = 64
    lr: float = 2e-4
    milestones: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: float = 0.5
    save_every: int = 100
    seed: int = 0
    device: str = "cpu"
    split: str = "train"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        for name in ("adaptor", "regressor", "init"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
                if not Path(value).is_file():
                    raise FileNotFoundError(f"--{name} {value}: no such file")
        for name in ("steps", "batch_size", "patch", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.prior not in PRIOR_CHOICES:
            raise ValueError(f"--prior {self.prior!r}: choose one of {list(PRIOR_CHOICES)}")
        if self.backbone not in available_backbones():
            raise ValueError(f"--backbone {self.backbone!r}: choose one of {available_backbones()}")
        self.milestones = tuple(float(m) for m in self.milestones)
        if any(not 0 < m <= 1 for m in self.milestones):
            raise ValueError(f"--milestones {self.milestones}: fractions of --steps in (0, 1]")


@dataclasses.dataclass
class SRTrainResult:
    """What a run leaves: its checkpoint, the trunk file, the model, the prior, the last step."""

    checkpoint: Path
    trunk: Path
    model: FusedSR
    prior: Prior | None
    step: int


def _say(message: str) -> None:
    print(f"degkit train-sr: {message}", file=sys.stderr)


def _dataset_scale(folder: Path, split: str) -> int:
    """The one ``scale`` of a dataset split (an error when its rows mix scales)."""
    scales: set[int] = set()
    for file in split_files(folder, split):
        scales.update(pq.read_table(file, columns=["scale"]).column("scale").to_pylist())
    if len(scales) != 1:
        raise ValueError(f"--data {folder}: split {split!r} mixes scales {sorted(scales)}")
    return scales.pop()


def _prior(cfg: SRTrainConfig, device: torch.device) -> Prior | None:
    adaptor = load_adaptor(cfg.adaptor, device)[0] if cfg.adaptor else None
    regressor = load_regressor(cfg.regressor)[0].to(device) if cfg.regressor else None
    dim = cfg.prior_dim or (None if adaptor else DEFAULT_PRIOR_DIM)
    if cfg.prior == "bare":
        return None
    return build_prior(cfg.prior, dim, adaptor, regressor).to(device)


def _model_config(cfg: SRTrainConfig, scale: int, prior: Prior | None) -> dict[str, Any]:
    return {
        "backbone": cfg.backbone,
        "scale": scale,
        "prior": cfg.prior,
        "prior_dim": prior.dim if prior else cfg.prior_dim or DEFAULT_PRIOR_DIM,
        "num_types": prior.num_types if prior else None,
    }


def _provenance(cfg: SRTrainConfig, summary: dict[str, Any]) -> dict[str, Any]:
    train = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in dataclasses.asdict(cfg).items()
        if k not in ("data", "out", "resume", "progress", "device")
    }
    train["milestones"] = list(cfg.milestones)
    return {
        "data": str(cfg.data),
        "split": cfg.split,
        "rows": summary["rows"],
        "recipe_hashes": summary["recipe_hashes"],
        "train": train,
    }


def _trainable(prior: Prior | None) -> dict[str, torch.Tensor]:
    """The prior's state that training changes (its frozen estimator is left out)."""
    if prior is None:
        return {}
    return {k: v for k, v in prior.state_dict().items() if not k.startswith("model.")}


def _load(path: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return read_sr_checkpoint(path, device)


def train_sr(cfg: SRTrainConfig) -> SRTrainResult:
    """Run (or resume) SR training; write ``OUT/last.safetensors`` and ``OUT/trunk.safetensors``."""
    device = torch.device(cfg.device)
    checkpoint, trunk_file = cfg.out / CHECKPOINT, cfg.out / TRUNK
    if checkpoint.exists() and not cfg.resume:
        raise ValueError(
            f"--out {cfg.out} already holds {CHECKPOINT}; pass --resume or a new --out"
        )
    summary = dataset_summary(cfg.data, cfg.split)
    scale = _dataset_scale(cfg.data, cfg.split)
    provenance = _provenance(cfg, summary)
    torch.manual_seed(cfg.seed)
    prior = _prior(cfg, device)
    config = _model_config(cfg, scale, prior)
    model = FusedSR(build_backbone(cfg.backbone, scale), config["prior_dim"]).to(device)
    if cfg.init and not (cfg.resume and checkpoint.exists()):
        left = load_trunk_weights(model.trunk, cfg.init, strict=not cfg.init_partial)
        if left:
            _say(f"--init {cfg.init}: {len(left)} trunk tensors kept their init (e.g. {left[0]})")
    trainable = list(model.parameters())
    if prior is not None:
        trainable += [p for p in prior.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr, betas=BETAS)
    start = 0
    if cfg.resume and checkpoint.exists():
        meta, tensors = _load(checkpoint, device)
        for key, expected in (("config", config), ("train", provenance["train"])):
            if meta.get(key) != expected:
                raise ValueError(
                    f"--resume: {checkpoint} was written with another {key} "
                    f"({json.dumps(meta.get(key))} != {json.dumps(expected)})"
                )
        model.load_state_dict(_section(tensors, "model."))
        if prior is not None:
            prior.load_state_dict(_section(tensors, "prior."), strict=False)
        optimizer_from_tensors(optimizer, tensors, meta["optimizer"], "optim")
        torch.set_rng_state(tensors["rng.cpu"].cpu())
        start = meta["step"]
        _say(f"resuming at step {start} of {cfg.steps}")
    columns = ["id", "lr", "hr", "scale", *(prior.columns if prior else ())]
    batches = step_batches(cfg.data, columns, cfg.batch_size, cfg.seed, start, cfg.split)
    estimates: dict[str, torch.Tensor] = {}
    model.train()
    if prior is not None:
        prior.train()

    def estimate(batch: dict[str, Any]) -> torch.Tensor:
        for i, row_id in enumerate(batch["id"]):
            if row_id not in estimates:
                row = {c: [batch[c][i]] for c in prior.columns}
                with torch.no_grad():
                    estimates[row_id] = prior.estimate(batch["lr"][i][None].to(device), row)[0]
        return torch.stack([estimates[row_id] for row_id in batch["id"]])

    def step(s: int) -> dict[str, float]:
        batch = next(batches)
        rng = np.random.default_rng([cfg.seed, s])
        lr, hr = paired_patches(batch["lr"], batch["hr"], scale, cfg.patch, rng)
        tokens = prior.embed(estimate(batch)) if prior is not None else None
        rate = multistep_lr_at(s, cfg.steps, cfg.lr, cfg.milestones, cfg.gamma)
        set_lr(optimizer, rate)
        loss = F.l1_loss(model(lr.to(device), tokens), hr.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"l1": float(loss.detach()), "lr": rate}

    def save(done: int) -> None:
        if done % cfg.save_every and done != cfg.steps:
            return
        optim_tensors, groups = optimizer_to_tensors(optimizer, "optim")
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"prior.{k}": v for k, v in _trainable(prior).items()})
        tensors.update(optim_tensors)
        tensors["rng.cpu"] = torch.get_rng_state()
        meta = {**provenance, "config": config, "step": done, "optimizer": groups}
        write_safetensors(tensors, checkpoint, {"degkit": json.dumps(meta, sort_keys=True)})
        save_trunk(model.trunk, trunk_file)

    run_steps("train SR", start, cfg.steps, step, cfg.progress, save)
    return SRTrainResult(checkpoint, trunk_file, model, prior, cfg.steps)

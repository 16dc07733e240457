"""Train an SR model on a built degkit dataset (``degkit train-sr``).

The model is a spandrel trunk (:mod:`degkit.models.backbones`) wrapped with
fusion blocks (:class:`~degkit.models.fusion.FusedSR`) fed by a prior
(:mod:`degkit.models.priors`); ``--prior bare`` trains the bare trunk (no
fusion block runs). The trunk, the fusion blocks and the prior's trainable
part are trained; frozen estimators stay frozen.

**Pairs** (:mod:`degkit.train.sr_data`): by default the dataset's own LR/HR
pairs (:class:`~degkit.train.sr_data.PairedPatches`); with ``recipe`` the HR
crops of the dataset degraded afresh for every sample by that recipe, at its
scale (:class:`~degkit.train.sr_data.OnTheFlyPairs`, records kept): one sample at
a time in the DataLoader (``degrade_on="loader"``, the default on the CPU), or
a whole batch at once on the training device inside the step
(``degrade_on="device"``, the default on CUDA; the same records, and on the
CPU the same LR bytes). Step ``s``
reads batch ``s`` of :class:`~degkit.train.sr_data.StepBatchSampler`: random
aligned patches with one of the eight flips / 90-degree rotations, fresh every
epoch, drawn from ``(seed, sample id)`` alone, so the run does not depend on
``workers`` (DataLoader worker processes; 0 reads in the training process).
The split's images are decoded once and kept in memory as uint8 when they fit
in ``cache_mb`` MiB (each process holds its own copy; DataLoader workers share
it), else read and decoded at every access. Images travel as uint8 and become
[0, 1] floats on the device, a batch at a time.

**Prior estimates** (the frozen part, never from the HR): on stored pairs,
once per image on the whole stored LR before the first step, kept on the CPU
for the run (``rows x (1 + K) x D`` float32: e.g. 10,000 rows with D = 512
hold 123 MB; ``K x 2`` per row for the level priors); on the fly, per sample
on its LR patch, since each sample is a new degradation.

**Loss and optimiser.** L1 against the HR patch (``target="hr"``) or against
the HR patch sharpened on the device by degkit's ``usm`` op with Real-ESRGAN's
setting (weight 0.5, threshold 10, radius 50; ``target="usm"``). Adam (betas
0.9 / 0.99), the learning rate multiplied by ``gamma`` at each milestone
(fractions of ``steps``); bf16 autocast on CUDA, float32 on the CPU. With
``ema`` > 0 an exponential moving average of the trained weights (model and
the prior's trainable part, ``torch.optim.swa_utils.AveragedModel``) is kept;
it is saved in the checkpoint and is what validation scores and
``trunk.safetensors`` holds.

**Validation** (``val_data``): every ``val_every`` steps and at the end, the
mean PSNR-Y (:func:`degkit.metrics.create_metric`, the SR protocol: BT.601 Y,
``scale`` pixels cropped per edge) of the whole LR images of that dataset,
each with its prior computed once on its whole LR; appended to ``OUT/val.jsonl``.

**Files.** ``OUT/last.safetensors`` holds the trained weights (``model.*``,
``prior.*``: the prior's trainable part), the EMA (``ema.model.*``,
``ema.prior.*``; :func:`degkit.models.sr_checkpoint.load_sr_checkpoint` reads
it back, EMA preferred), the optimizer, the step, torch's random state and
the full config (backbone, scale, prior, widths, training options, dataset and
recipe hashes, world size; the adaptor / regressor / init files by path,
path relative to ``OUT`` and sha256); ``resume`` continues from it (on the CPU
exactly as the uninterrupted run), also in a copied folder, as long as those
files have the same content. ``OUT/trunk.safetensors`` is the trunk alone in spandrel's format.
``OUT/train.json`` summarises the run's speed (steps/s, the share of step time
spent waiting for data, wall time); the checkpoint's meta holds it too.

Under ``torchrun`` each rank reads its own part of every epoch, gradients are
averaged (:mod:`degkit.train.distributed`), validation rows are split over the
ranks and their sums all-reduced, and rank 0 writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from degkit import recipes
from degkit.data.loaders import split_files
from degkit.metrics import create_metric
from degkit.models.adaptor import load_adaptor, write_safetensors
from degkit.models.backbones import (
    available_backbones,
    build_backbone,
    load_trunk_weights,
    save_trunk,
)
from degkit.models.fusion import FusedSR
from degkit.models.priors import PRIORS, Prior, build_prior
from degkit.models.sr_checkpoint import (
    EMA_PREFIX,
    FILE_OPTIONS,
    file_options_record,
    read_sr_checkpoint,
    section,
)
from degkit.ops.base import create_op
from degkit.train.data import dataset_summary
from degkit.train.distributed import (
    World,
    average_gradients,
    gather_rows,
    join_world,
    rank_device,
)
from degkit.train.optim import (
    ema_updater,
    multistep_lr_at,
    optimizer_from_tensors,
    optimizer_to_tensors,
    set_lr,
)
from degkit.train.regressor import load_regressor
from degkit.train.sr_data import (
    DEFAULT_CACHE_MB,
    EvalSampler,
    OnTheFlyPairs,
    PairedPatches,
    StepBatchSampler,
    WholePairs,
    collate_pairs,
    collate_patches,
    degrade_batch,
)
from degkit.train.steps import bf16_autocast, run_steps

__all__ = ["DEGRADE_ON", "PRIOR_CHOICES", "TARGETS", "SRTrainConfig", "SRTrainResult", "train_sr"]

CHECKPOINT = "last.safetensors"
TRUNK = "trunk.safetensors"
VALIDATION = "val.jsonl"
SUMMARY = "train.json"
PRIOR_CHOICES = ("bare", *PRIORS)
TARGETS = ("hr", "usm")
DEGRADE_ON = ("auto", "loader", "device")
BETAS = (0.9, 0.99)
DEFAULT_PRIOR_DIM = 512
EMA_UPDATES = "ema_updates"
_TRAINED = ("model.", "prior.")
REAL_ESRGAN_USM = {"op": "usm", "weight": 0.5, "threshold": 10.0, "radius": 50}
"""The ``usm`` record of Real-ESRGAN's GT sharpening."""


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
    recipe: str | None = None
    target: str = "hr"
    steps: int = 1000
    batch_size: int = 4
    patch: int = 64
    lr: float = 2e-4
    milestones: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: float = 0.5
    ema: float = 0.999
    val_data: Path | None = None
    val_split: str = "train"
    val_every: int = 1000
    save_every: int = 100
    seed: int = 0
    device: str = "cpu"
    split: str = "train"
    workers: int = 0
    cache_mb: float = DEFAULT_CACHE_MB
    degrade_on: str = "auto"
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
        if self.val_data is not None:
            self.val_data = Path(self.val_data)
        for name in ("steps", "batch_size", "patch", "save_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.workers < 0:
            raise ValueError("--workers must be >= 0")
        if self.degrade_on not in DEGRADE_ON:
            raise ValueError(f"--degrade-on {self.degrade_on!r}: choose one of {list(DEGRADE_ON)}")
        if self.cache_mb < 0:
            raise ValueError(f"--cache-mb must be >= 0 (0: no cache), got {self.cache_mb}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema {self.ema}: a decay in [0, 1) (0: no EMA)")
        if self.prior not in PRIOR_CHOICES:
            raise ValueError(f"--prior {self.prior!r}: choose one of {list(PRIOR_CHOICES)}")
        if self.target not in TARGETS:
            raise ValueError(f"--target {self.target!r}: choose one of {list(TARGETS)}")
        if self.backbone not in available_backbones():
            raise ValueError(f"--backbone {self.backbone!r}: choose one of {available_backbones()}")
        self.milestones = tuple(float(m) for m in self.milestones)
        if any(not 0 < m <= 1 for m in self.milestones):
            raise ValueError(f"--milestones {self.milestones}: fractions of --steps in (0, 1]")


@dataclasses.dataclass
class SRTrainResult:
    """What a run leaves: its files, the trained model and prior, the EMA, the last step,
    the validations and the speed summary."""

    checkpoint: Path
    trunk: Path
    model: FusedSR
    prior: Prior | None
    ema: FusedSR | None
    step: int
    validation: list[dict[str, Any]]
    summary: dict[str, Any]


class _Net(nn.Module):
    """The SR of LR images from their prior estimates: ``model(lr, prior.embed(estimate))``."""

    def __init__(self, model: FusedSR, prior: Prior | None) -> None:
        super().__init__()
        self.model = model
        self.prior = prior

    def trained(self) -> nn.ModuleDict:
        """The trained modules, named as in this net (the prior's frozen estimator left out)."""
        prior = self.prior.trainable() if self.prior is not None else nn.ModuleDict()
        return nn.ModuleDict({"model": self.model, "prior": prior})

    def forward(self, lr: torch.Tensor, estimate: torch.Tensor | None) -> torch.Tensor:
        tokens = self.prior.embed(estimate) if self.prior is not None else None
        return self.model(lr, tokens)


def _say(message: str) -> None:
    print(f"degkit train-sr: {message}", file=sys.stderr)


def _dataset_scale(folder: Path, split: str, flag: str) -> int:
    """The one ``scale`` of a dataset split (an error when its rows mix scales)."""
    scales: set[int] = set()
    for file in split_files(folder, split):
        scales.update(pq.read_table(file, columns=["scale"]).column("scale").to_pylist())
    if len(scales) != 1:
        raise ValueError(f"{flag} {folder}: split {split!r} mixes scales {sorted(scales)}")
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


def _provenance(
    cfg: SRTrainConfig, summary: dict[str, Any], recipe: recipes.Recipe | None, world: World
) -> dict[str, Any]:
    skip = ("data", "out", "resume", "progress", "device", "workers", "cache_mb", "degrade_on")
    train = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in skip + FILE_OPTIONS and not k.startswith("val_")
    }
    train["milestones"] = list(cfg.milestones)
    train.update(file_options_record({k: getattr(cfg, k) for k in FILE_OPTIONS}, cfg.out))
    return {
        "data": str(cfg.data),
        "split": cfg.split,
        "rows": summary["rows"],
        "recipe_hashes": summary["recipe_hashes"],
        "on_the_fly_recipe_hash": recipe.hash if recipe else None,
        "world_size": world.size,
        "validation": {
            "data": str(cfg.val_data) if cfg.val_data else None,
            "split": cfg.val_split,
            "every": cfg.val_every,
        },
        "train": train,
    }


def _degrades_on_device(degrade_on: str, device: torch.device) -> bool:
    """Whether on-the-fly batches are degraded on the training device (``auto``: on CUDA)."""
    return degrade_on == "device" or (degrade_on == "auto" and device.type == "cuda")


def _images(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's uint8 LR and HR as [0, 1] float32 on ``device``."""
    return tuple(batch[k].to(device, non_blocking=True).float().div_(255) for k in ("lr", "hr"))


def _whole_images(rows: WholePairs, world: World, workers: int) -> DataLoader:
    """This rank's share of whole rows, one at a time (sizes may differ between rows).

    Its own generator keeps torch's global random state untouched (exact resume).
    """
    return DataLoader(
        rows,
        sampler=EvalSampler(len(rows), world.size, world.rank),
        num_workers=workers,
        collate_fn=collate_pairs,
        generator=torch.Generator(),
    )


def _whole_estimates(
    prior: Prior, rows: WholePairs, world: World, device: torch.device, workers: int
) -> torch.Tensor:
    """The prior's estimate of every row, on its whole LR (each rank computes its share)."""
    if len(rows) < world.size:
        raise ValueError(f"{len(rows)} rows cannot be shared by {world.size} processes")
    ids, estimates = [], []
    with torch.no_grad(), bf16_autocast(device):
        for batch in _whole_images(rows, world, workers):
            estimates.append(prior.estimate(_images(batch, device)[0], batch).float())
            ids.append(batch["id"].to(device))
    ids, estimates = gather_rows(torch.cat(ids), world), gather_rows(torch.cat(estimates), world)
    table = torch.empty(len(rows), *estimates.shape[1:])
    table[ids.cpu()] = estimates.cpu()
    return table


def _validate(
    net: _Net,
    weights: dict[str, torch.Tensor] | None,
    rows: WholePairs,
    estimates: torch.Tensor | None,
    scale: int,
    world: World,
    device: torch.device,
    workers: int,
) -> dict[str, float]:
    """Mean PSNR-Y over all rows (split over the ranks), with ``weights`` swapped in if given."""
    metric = create_metric("psnr_y", scale=scale)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    net.eval()
    with torch.no_grad():
        for batch in _whole_images(rows, world, workers):
            lr, hr = _images(batch, device)
            estimate = estimates[batch["id"]].to(device) if estimates is not None else None
            with bf16_autocast(device):
                if weights is None:
                    sr = net(lr, estimate)
                else:
                    sr = torch.func.functional_call(net, weights, (lr, estimate), strict=False)
            if sr.shape != hr.shape:
                raise ValueError(
                    f"--val-data row {int(batch['id'][0])}: HR {tuple(hr.shape[-2:])} is not "
                    f"{scale} x the LR {tuple(lr.shape[-2:])}"
                )
            scores = metric(sr.float().clamp(0, 1), hr)
            sums += torch.tensor(
                [float(scores.sum()), len(scores)], dtype=sums.dtype, device=device
            )
    net.train()
    if world.size > 1:
        dist.all_reduce(sums)
    return {"psnr_y": float(sums[0] / sums[1]), "images": int(sums[1])}


def _sharpen(hr: torch.Tensor) -> torch.Tensor:
    """Real-ESRGAN's GT sharpening by degkit's ``usm`` op."""
    return create_op("usm").replay(hr, [REAL_ESRGAN_USM] * len(hr))


def _resume_view(train: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """The training options a resumed run must share with ``saved``'s: files by sha256,
    not by place (checkpoints from before sha256s were recorded: by path)."""
    by_content = any(f"{k}_sha256" in saved for k in FILE_OPTIONS)
    kept = tuple(f"{k}_sha256" for k in FILE_OPTIONS) if by_content else FILE_OPTIONS
    files = {*FILE_OPTIONS, *(f"{k}_{s}" for k in FILE_OPTIONS for s in ("relative", "sha256"))}
    return {k: v for k, v in train.items() if k not in files or k in kept}


def _check_resumable(meta: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    for key in ("config", "train", "world_size", "on_the_fly_recipe_hash"):
        found, wanted = meta.get(key), expected.get(key)
        if key == "train" and found is not None:
            found, wanted = _resume_view(found, found), _resume_view(wanted, found)
        if found != wanted:
            raise ValueError(
                f"--resume: {path} was written with another {key} "
                f"({json.dumps(found)} != {json.dumps(wanted)})"
            )


def train_sr(cfg: SRTrainConfig) -> SRTrainResult:
    """Run (or resume) SR training; write ``OUT/last.safetensors`` and ``OUT/trunk.safetensors``."""
    world = join_world(torch.device(cfg.device))
    device = rank_device(torch.device(cfg.device))
    checkpoint, trunk_file = cfg.out / CHECKPOINT, cfg.out / TRUNK
    if checkpoint.exists() and not cfg.resume:
        raise ValueError(
            f"--out {cfg.out} already holds {CHECKPOINT}; pass --resume or a new --out"
        )
    recipe = _recipe(cfg.recipe)
    summary = dataset_summary(cfg.data, cfg.split)
    scale = recipe.scale if recipe else _dataset_scale(cfg.data, cfg.split, "--data")
    provenance = _provenance(cfg, summary, recipe, world)
    torch.manual_seed(cfg.seed)
    prior = _prior(cfg, device)
    config = _model_config(cfg, scale, prior)
    model = FusedSR(build_backbone(cfg.backbone, scale), config["prior_dim"]).to(device)
    resuming = cfg.resume and checkpoint.exists()
    if cfg.init and not resuming:
        left = load_trunk_weights(model.trunk, cfg.init, strict=not cfg.init_partial)
        if left and world.is_main:
            _say(f"--init {cfg.init}: {len(left)} trunk tensors kept their init (e.g. {left[0]})")
    net = _Net(model, prior).to(device)
    trained = net.trained()
    ema = None
    if cfg.ema:
        ema = AveragedModel(trained, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
    optimizer = torch.optim.Adam(trained.parameters(), lr=cfg.lr, betas=BETAS)
    start = 0
    if resuming:
        meta, tensors = read_sr_checkpoint(checkpoint, device)
        _check_resumable(meta, {**provenance, "config": config}, checkpoint)
        trained.load_state_dict({k: v for k, v in tensors.items() if k.startswith(_TRAINED)})
        if ema is not None:
            ema.module.load_state_dict(section(tensors, EMA_PREFIX))
            ema.n_averaged.copy_(tensors[EMA_UPDATES])
        optimizer_from_tensors(optimizer, tensors, meta["optimizer"], "optim")
        torch.set_rng_state(tensors["rng.cpu"].cpu())
        start = meta["step"]
        if world.is_main:
            _say(f"resuming at step {start} of {cfg.steps}")
    update_ema = ema_updater(ema, trained, cfg.ema) if ema is not None else None

    on_device = recipe is not None and _degrades_on_device(cfg.degrade_on, device)
    if recipe:
        pairs = OnTheFlyPairs(
            cfg.data,
            recipe,
            cfg.patch,
            cfg.seed,
            cfg.split,
            cache_mb=cfg.cache_mb,
            degrade=not on_device,
        )
        estimates = None  # per sample, on its own LR patch
    else:
        pairs = PairedPatches(
            cfg.data, scale, cfg.patch, cfg.seed, cfg.split, cache_mb=cfg.cache_mb
        )
        whole = WholePairs(cfg.data, cfg.split)
        estimates = _whole_estimates(prior, whole, world, device, cfg.workers) if prior else None
    try:
        pairs[0]  # a patch larger than the images, or a scale the HR does not match
    except ValueError as error:
        raise ValueError(f"--patch {cfg.patch} / --data {cfg.data}: {error}") from None
    try:
        sampler = StepBatchSampler(pairs, cfg.batch_size, cfg.seed, start, world.size, world.rank)
    except ValueError as error:
        raise ValueError(f"--batch-size: {error}") from None
    loader = DataLoader(
        pairs,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=collate_patches if on_device else collate_pairs,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    batches = iter(loader)
    val_rows = val_estimates = None
    if cfg.val_data is not None:
        val_scale = _dataset_scale(cfg.val_data, cfg.val_split, "--val-data")
        if val_scale != scale:
            raise ValueError(f"--val-data {cfg.val_data}: scale {val_scale}, training is x{scale}")
        val_rows = WholePairs(cfg.val_data, cfg.val_split)
        if prior is not None:
            val_estimates = _whole_estimates(prior, val_rows, world, device, cfg.workers)
    validations: list[dict[str, Any]] = []
    clock = {"wait": 0.0, "busy": 0.0, "start": time.perf_counter()}
    shown: dict[str, float] = {}
    net.train()

    def step(s: int) -> dict[str, float]:
        began = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        if on_device:
            batch = degrade_batch(batch, pairs, device)
        lr, hr = _images(batch, device)
        target = _sharpen(hr) if cfg.target == "usm" else hr
        rate = multistep_lr_at(s, cfg.steps, cfg.lr, cfg.milestones, cfg.gamma)
        set_lr(optimizer, rate)
        with bf16_autocast(device):
            if estimates is not None:
                estimate = estimates[batch["id"] % len(estimates)].to(device)
            elif prior is not None:
                with torch.no_grad():
                    estimate = prior.estimate(lr, batch).float()
            else:
                estimate = None
            loss = F.l1_loss(net(lr, estimate).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(trained.parameters(), world)
        optimizer.step()
        if update_ema is not None:
            update_ema()
        ended = time.perf_counter()
        clock["wait"] += fetched - began
        clock["busy"] += ended - began
        return {"l1": float(loss.detach()), "lr": rate, "wait": clock["wait"] / clock["busy"]}

    def speed(done: int) -> dict[str, Any]:
        return {
            "steps": done - start,
            "steps_per_s": (done - start) / clock["busy"] if clock["busy"] else None,
            "data_wait_share": clock["wait"] / clock["busy"] if clock["busy"] else None,
            "wall_s": time.perf_counter() - clock["start"],
            "workers": cfg.workers,
            "images_in_memory": pairs.in_memory,
            "device": str(device),
            "degraded_on": ("device" if on_device else "loader") if recipe else None,
            "world_size": world.size,
        }

    def after(done: int) -> None:
        if val_rows is not None and (done % cfg.val_every == 0 or done == cfg.steps):
            weights = dict(ema.module.named_parameters()) if ema is not None else None
            score = _validate(
                net, weights, val_rows, val_estimates, scale, world, device, cfg.workers
            )
            entry = {"step": done, **score, "weights": "ema" if ema is not None else "model"}
            validations.append(entry)
            shown["psnr_y"] = score["psnr_y"]
            if world.is_main:
                with open(cfg.out / VALIDATION, "a") as f:
                    f.write(json.dumps(entry) + "\n")
        if not world.is_main or (done % cfg.save_every and done != cfg.steps):
            return
        optim_tensors, groups = optimizer_to_tensors(optimizer, "optim")
        tensors = dict(trained.state_dict())
        if ema is not None:
            tensors.update({f"{EMA_PREFIX}{k}": v for k, v in ema.module.state_dict().items()})
            tensors[EMA_UPDATES] = ema.n_averaged
        tensors.update(optim_tensors)
        tensors["rng.cpu"] = torch.get_rng_state()
        meta = {
            **provenance,
            "config": config,
            "step": done,
            "optimizer": groups,
            "throughput": speed(done),
        }
        write_safetensors(tensors, checkpoint, {"degkit": json.dumps(meta, sort_keys=True)})
        save_trunk(_export(model, ema).trunk, trunk_file)
        (cfg.out / SUMMARY).write_text(json.dumps(speed(done), indent=2) + "\n")

    def numbered(s: int) -> dict[str, float]:
        return {**step(s), **shown}

    cfg.out.mkdir(parents=True, exist_ok=True)
    run_steps("train SR", start, cfg.steps, numbered, cfg.progress and world.is_main, after)
    return SRTrainResult(
        checkpoint,
        trunk_file,
        model,
        prior,
        ema.module["model"] if ema is not None else None,
        cfg.steps,
        validations,
        speed(cfg.steps),
    )


def _export(model: FusedSR, ema: AveragedModel | None) -> FusedSR:
    """The weights exported and validated: the EMA when kept, else the trained model."""
    return ema.module["model"] if ema is not None else model


def _recipe(name: str | None) -> recipes.Recipe | None:
    if name is None:
        return None
    try:
        return recipes.load(name)
    except ValueError as error:
        raise ValueError(f"--recipe {name!r}: {error}") from None

"""Train the degradation adaptor on a built degkit dataset (``degkit train-adaptor``).

Two phases:

1. CLIP initialisation (``init``): ``"scratch"`` pre-trains the config's CLIP
   for ``pretrain_steps`` steps, contrastively (InfoNCE with CLIP's own
   temperature, equal captions as positives) on (LR image, degradation
   caption) and, where the dataset has them, (HR image, content caption)
   pairs, plus one such term per caption type on (LR image, that type's fine
   caption) and a term that teaches the text tower to read the level each fine
   caption prints (:func:`level_reading_loss`: with contrastive terms alone a
   small scratch tower embeds one type's captions at every level almost
   alike), and, with ``levels_weight`` above 0, the prompt-level term on the
   CLIP's own image embedding; it saves it as ``clip-pretrained.safetensors``.
   A path loads real open_clip weights from a local file.
2. The CLIP is frozen and the controller, zero layers, per-type head and the
   loss temperatures are trained with :class:`~degkit.models.losses.AdaptorLoss`
   on (LR image, captions) batches, plus (``levels_weight``, default 1; 0 is
   the paper's loss) the prompt-level term: each type's embedding against
   that type's captions at the estimation protocol's prompt levels
   (:func:`protocol_prompts`), cross-entropy towards the level nearest the
   truth (:func:`level_targets`, from the dataset's level columns). Datasets
   whose caption types are not the protocol's five drop it, and say so.

In both phases every degradation and fine caption goes into
``caption_template`` (default ``"A photo with {}"``, the prompt of the
degradation-estimation protocol), so the text tower sees in training the
prompts it is scored with; content captions are used as they are.

Both phases use AdamW (betas 0.9 / 0.98, eps 1e-6, weight decay on weight
matrices only), linear warm-up then cosine decay, and bf16 autocast on CUDA
(none on the CPU). LR images are used as stored: no augmentation. Runs are
seeded; on the CPU a run is deterministic, and ``resume`` continues from
``last.safetensors`` exactly as the uninterrupted run would. Every checkpoint
records the config, the init, the step, the dataset's recipe hash, the seed
and the wall seconds of pre-training and training (summed over resumed runs).
Under ``torchrun`` every rank trains on its own part of the data with averaged
gradients (:mod:`degkit.train.distributed`); the contrastive losses gather the
embeddings and captions of all ranks, so negatives (and equal-caption
positives) come from the global batch and the loss is that of one process on
the concatenated batch. Rank 0 writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from degkit.evaluate.estimation import PROMPT_TEMPLATE, PROTOCOL, prompts, snap, true_levels
from degkit.levels import LEVEL_COLUMNS, PAPER_TYPES
from degkit.models.adaptor import (
    AdaptorOutput,
    DegradationAdaptor,
    build_clip,
    encode_tokens,
    load_adaptor,
    load_clip_weights,
    preprocess,
    save_adaptor,
    save_clip_weights,
)
from degkit.models.config import get_config
from degkit.models.estimator import LEVEL_SCALES, levels_from_batch
from degkit.models.losses import AdaptorLoss, InfoNCELoss, PromptLevelLoss, positive_mask
from degkit.train.data import dataset_summary, step_batches, templated
from degkit.train.distributed import (
    SINGLE,
    World,
    average_gradients,
    gather_list,
    gather_rows,
    join_world,
    rank_device,
)
from degkit.train.optim import (
    adamw,
    lr_at,
    optimizer_from_tensors,
    optimizer_to_tensors,
    set_lr,
)
from degkit.train.steps import bf16_autocast, run_steps

__all__ = [
    "TrainConfig",
    "TrainResult",
    "pretrain_clip",
    "widen_token_embeddings",
    "level_reading_loss",
    "level_targets",
    "protocol_prompts",
    "pretrain_loss",
    "train_adaptor",
    "training_step",
]

CHECKPOINT = "last.safetensors"
PRETRAINED = "clip-pretrained.safetensors"
LEVEL_READING_WEIGHT = 10.0
"""Weight of :func:`level_reading_loss` in scratch pre-training. At 1 the contrastive
terms still pull one type's captions together (cosine 0.99 or more between its
prompt levels after 300 steps of the ``small`` CLIP); at 10 they stay apart
(0.4 to 0.9)."""
SCRATCH_TOKEN_STD = 0.3
"""Std of a scratch CLIP's token embeddings. open_clip's 0.02 suits hundreds of
millions of pairs; over a few hundred steps it leaves every caption's embedding
dominated by the end-of-text token, and the text tower collapses to one vector
before it learns to tell the fine captions' levels apart."""


@dataclasses.dataclass
class TrainConfig:
    """Options of one ``degkit train-adaptor`` run (see ``degkit train-adaptor --help``)."""

    data: Path
    out: Path
    model: str = "small"
    init: str = "scratch"
    quick_gelu: bool = False
    evidence: bool = False
    steps: int = 200
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 20
    weight_decay: float = 0.2
    loss: str = "siglip"
    content_weight: float = 0.2
    degradation_weight: float = 0.3
    types_weight: float = 0.5
    levels_weight: float = 1.0
    pretrain_steps: int = 200
    pretrain_lr: float = 5e-4
    caption_template: str = PROMPT_TEMPLATE
    save_every: int = 50
    seed: int = 0
    device: str = "cpu"
    split: str = "train"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        for name in ("steps", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("warmup", "pretrain_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if self.batch_size < 2:
            raise ValueError("--batch-size must be >= 2 (contrastive batches need negatives)")
        rest = self.caption_template.replace("{}", "", 1)
        if "{}" not in self.caption_template or "{" in rest or "}" in rest:
            raise ValueError(
                f"--caption-template {self.caption_template!r}: needs exactly one '{{}}' "
                "(where the caption goes) and no other braces"
            )
        if self.init != "scratch" and not Path(self.init).is_file():
            raise FileNotFoundError(f"--init {self.init}: no such file (or use --init scratch)")
        get_config(self.model)


def _say(message: str) -> None:
    print(f"degkit train-adaptor: {message}", file=sys.stderr)


def protocol_prompts(template: str, num_types: int) -> list[list[str]] | None:
    """Per type, ``template`` around its fine caption at each prompt level of the
    degradation-estimation protocol (:data:`~degkit.evaluate.estimation.PROTOCOL`);
    None when the dataset's caption types are not the protocol's."""
    if num_types != len(PROTOCOL):
        return None
    return [prompts(protocol, template) for protocol in PROTOCOL]


def level_targets(batch: dict[str, Any]) -> torch.Tensor:
    """``N x K`` index of the protocol's prompt level nearest each sample's true level."""
    levels, present = levels_from_batch(batch)
    return torch.stack(
        [
            torch.from_numpy(snap(p, true_levels(p, levels[:, k].numpy(), present[:, k].numpy())))
            for k, p in enumerate(PROTOCOL)
        ],
        dim=1,
    )


def widen_token_embeddings(clip: torch.nn.Module, std: float = SCRATCH_TOKEN_STD) -> None:
    """Redraw a scratch CLIP's token embeddings with ``std`` (see :data:`SCRATCH_TOKEN_STD`)."""
    torch.nn.init.normal_(clip.token_embedding.weight, std=std)


def pretrain_clip(
    clip: torch.nn.Module,
    batches: Iterator[dict[str, Any]],
    steps: int,
    lr: float,
    warmup: int,
    image_size: int,
    device: torch.device,
    weight_decay: float = 0.2,
    progress: bool = False,
    world: World = SINGLE,
    level_prompts: list[list[str]] | None = None,
) -> None:
    """Contrastive pre-training of a whole CLIP on (LR, degradation caption),
    (HR, content caption) and (LR, fine caption) pairs, with the loss of the global
    batch under ``torchrun`` (:func:`pretrain_loss`); with ``level_prompts``, also
    the prompt-level term on the CLIP's image embedding."""
    import open_clip

    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=clip.context_length)
    loss_fn = InfoNCELoss()
    loss_fn.logit_scale = clip.logit_scale  # CLIP's own temperature
    level_term = PromptLevelLoss()
    level_term.logit_scale = clip.logit_scale
    reader = torch.nn.Linear(clip.text_projection.shape[1], len(PAPER_TYPES)).to(device)
    named = list(clip.named_parameters()) + list(reader.named_parameters(prefix="reader"))
    optimizer = adamw(named, lr, weight_decay)
    clip.train()

    def step(s: int) -> dict[str, float]:
        set_lr(optimizer, lr_at(s, steps, warmup, lr))
        batch = next(batches)
        with bf16_autocast(device):
            loss = pretrain_loss(
                clip,
                loss_fn,
                tokenizer,
                batch,
                image_size,
                device,
                world,
                reader,
                (level_term, level_prompts) if level_prompts else None,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients((p for _, p in named), world)
        optimizer.step()
        return {"loss": float(loss.detach())}

    run_steps("pre-train CLIP", 0, steps, step, progress)
    clip.eval()


def pretrain_loss(
    clip: torch.nn.Module,
    loss_fn: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    batch: dict[str, Any],
    image_size: int,
    device: torch.device,
    world: World = SINGLE,
    reader: torch.nn.Linear | None = None,
    levels: tuple[PromptLevelLoss, list[list[str]]] | None = None,
) -> torch.Tensor:
    """The pre-training loss of the global batch, equal captions as positives.

    One term on every rank's (LR, degradation caption) pairs, then every rank's
    (HR, content caption) pairs (rows with an empty content caption give only the
    first); plus, when the batch has ``fine_captions``, the mean over types of one
    term on (LR, that type's fine caption) pairs; plus, with the batch's per-type
    level columns, :func:`level_reading_loss` (given a ``reader``) and the
    prompt-level term of the LR image embedding against each type's prompts
    (given ``levels``: the loss and the prompts).
    """
    n = len(batch["degradation_caption"])
    with_content = [i for i, c in enumerate(batch["content_caption"]) if c]
    content = [batch["content_caption"][i] for i in with_content]
    fine = [list(column) for column in zip(*batch.get("fine_captions") or [], strict=True)]
    images = [preprocess(batch["lr"].to(device), image_size)]
    if with_content:
        images.append(preprocess(batch["hr"][with_content].to(device), image_size))
    image = clip.encode_image(torch.cat(images), normalize=True).float()
    long_texts = list(batch["degradation_caption"]) + content
    text = torch.cat(
        [
            _encode_distinct(clip, tokenizer, texts, device)
            for texts in (long_texts, [c for column in fine for c in column])
            if texts
        ]
    )
    paired = n + len(content)
    lr_image = gather_rows(image[:n], world)
    image = torch.cat([lr_image, gather_rows(image[n:], world)])
    pairs_text = torch.cat([gather_rows(text[:n], world), gather_rows(text[n:paired], world)])
    captions = gather_list(batch["degradation_caption"], world) + gather_list(content, world)
    loss = loss_fn(image, pairs_text, positive_mask(captions).to(device))
    if not fine:
        return loss
    fine_text = torch.stack(
        [gather_rows(text[paired + t * n : paired + (t + 1) * n], world) for t in range(len(fine))],
        dim=1,
    )
    per_type = [
        loss_fn(lr_image, fine_text[:, t], positive_mask(gather_list(column, world)).to(device))
        for t, column in enumerate(fine)
    ]
    loss = loss + torch.stack(per_type).mean()
    if len(fine) != len(PAPER_TYPES) or not set(LEVEL_COLUMNS.values()) <= set(batch):
        return loss
    if reader is not None:
        true, _ = levels_from_batch(batch)
        scales = torch.tensor([LEVEL_SCALES[t] for t in PAPER_TYPES])
        loss = loss + LEVEL_READING_WEIGHT * level_reading_loss(
            reader, fine_text, gather_rows((true / scales).to(device), world)
        )
    if levels is not None:
        level_term, level_prompts = levels
        flat = _encode_distinct(clip, tokenizer, [c for row in level_prompts for c in row], device)
        prompt_text = flat.split([len(row) for row in level_prompts])
        targets = gather_rows(level_targets(batch).to(device), world)
        per_type = lr_image[:, None].expand(-1, len(prompt_text), -1)
        loss = loss + level_term(per_type, prompt_text, targets)[0]
    return loss


def level_reading_loss(
    reader: torch.nn.Linear, fine_text: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Smooth-L1 between ``targets`` (``N x K``: each type's level over its
    :data:`~degkit.models.estimator.LEVEL_SCALES`, 0 where absent) and row ``t`` of
    ``reader`` applied to the embeddings of type ``t``'s fine captions (``N x K x D``).

    Scratch pre-training only: contrastive terms alone leave a small text tower
    embedding one type's captions at every level almost alike, so the tower is
    also taught to read the level its caption prints (the reader is then dropped).
    """
    predicted = torch.einsum("nkd,kd->nk", fine_text, reader.weight) + reader.bias
    return F.smooth_l1_loss(predicted, targets.to(predicted.dtype))


def _encode_distinct(
    clip: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    texts: list[str],
    device: torch.device,
) -> torch.Tensor:
    """Embeddings of ``texts``, each distinct text encoded once (float32)."""
    unique = list(dict.fromkeys(texts))
    embedded = encode_tokens(clip, tokenizer(unique).to(device)).float()
    row = {t: i for i, t in enumerate(unique)}
    return embedded[[row[t] for t in texts]]


def training_step(
    model: DegradationAdaptor,
    loss_fn: AdaptorLoss,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    lr: float,
    world: World = SINGLE,
    level_prompts: list[list[str]] | None = None,
) -> dict[str, float]:
    """One optimisation step of the controller on a collated batch; returns loss terms.

    With ``level_prompts`` (:func:`protocol_prompts`) the batch's level columns give
    the prompt-level targets. Under ``torchrun`` the loss is that of the global
    batch (all ranks' rows).
    """
    device = model.type_head.weight.device
    set_lr(optimizer, lr)
    with bf16_autocast(device):
        local = model(batch["lr"].to(device))
        output = AdaptorOutput(
            *(gather_rows(t, world) for t in (local.content, local.degradation, local.per_type))
        )
        total, numbers = loss_fn(
            output,
            _frozen_text(model, world),
            gather_list(batch["degradation_caption"], world),
            gather_list(batch["fine_captions"], world),
            gather_list(batch.get("content_caption") or [], world),
            level_prompts,
            gather_rows(level_targets(batch).to(device), world) if level_prompts else None,
        )
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    average_gradients((p for g in optimizer.param_groups for p in g["params"]), world)
    optimizer.step()
    return {"loss": float(total.detach()), **numbers}


def _frozen_text(
    model: DegradationAdaptor, world: World = SINGLE
) -> Callable[[list[str]], torch.Tensor]:
    """The frozen text tower; under ``torchrun`` each rank encodes an equal share of the
    (same) list of texts and the shares are gathered."""

    def encode(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():  # the text tower is frozen
            if world.size == 1:
                return model.encode_text(texts)
            share = -(-len(texts) // world.size)
            padded = texts + texts[:1] * (share * world.size - len(texts))
            mine = model.encode_text(padded[world.rank * share : (world.rank + 1) * share])
            return gather_rows(mine, world)[: len(texts)]

    return encode


def _build_model(
    cfg: TrainConfig,
    num_types: int,
    device: torch.device,
    world: World,
    level_prompts: list[list[str]] | None,
) -> DegradationAdaptor:
    """The adaptor over a CLIP from ``cfg.init`` (pre-training it first for "scratch")."""
    config = get_config(
        cfg.model, num_types=num_types, quick_gelu=cfg.quick_gelu, evidence=cfg.evidence
    )
    torch.manual_seed(cfg.seed)
    clip = build_clip(config)
    pretrained = cfg.out / PRETRAINED
    if cfg.init != "scratch":
        load_clip_weights(clip, cfg.init)
    elif cfg.resume and pretrained.is_file():
        load_clip_weights(clip, pretrained)
        if world.is_main:
            _say(f"using the pre-trained CLIP in {pretrained}")
    else:
        widen_token_embeddings(clip)
        summary = dataset_summary(cfg.data, cfg.split)
        columns = ["lr", "degradation_caption", "fine_captions", "content_caption"]
        columns += list(LEVEL_COLUMNS.values())
        columns += ["hr"] if summary["has_content_captions"] else []
        batches = step_batches(cfg.data, columns, cfg.batch_size, cfg.seed, 0, cfg.split, world)
        batches = templated(batches, cfg.caption_template)
        pretrain_clip(
            clip.to(device),
            batches,
            cfg.pretrain_steps,
            cfg.pretrain_lr,
            min(cfg.warmup, cfg.pretrain_steps),
            config.image_size,
            device,
            cfg.weight_decay,
            cfg.progress and world.is_main,
            world,
            level_prompts,
        )
        if world.is_main:
            save_clip_weights(clip, pretrained)
    return DegradationAdaptor(config, clip).to(device)


def _provenance(cfg: TrainConfig, summary: dict[str, Any], world: World) -> dict[str, Any]:
    return {
        "world_size": world.size,
        "init": cfg.init,
        "seed": cfg.seed,
        "data": str(cfg.data),
        "split": cfg.split,
        "recipe_hashes": summary["recipe_hashes"],
        "rows": summary["rows"],
        "content_term": summary["has_content_captions"],
        "train": {
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("data", "out", "resume", "progress", "device")
        },
    }


def _check_resumable(
    cfg: TrainConfig, meta: dict[str, Any], summary: dict[str, Any], world: World
) -> None:
    expected = _provenance(cfg, summary, world)
    if "train" in meta:  # checkpoints from before the option trained without evidence
        meta = {**meta, "train": {"evidence": False, **meta["train"]}}
    for key in ("init", "seed", "recipe_hashes", "world_size", "train"):
        if meta.get(key) != expected[key]:
            raise ValueError(
                f"--resume: {cfg.out / CHECKPOINT} was written with another {key} "
                f"({json.dumps(meta.get(key))} != {json.dumps(expected[key])})"
            )


@dataclasses.dataclass
class TrainResult:
    """What a run leaves: its checkpoint file, the trained model and the last step."""

    checkpoint: Path
    model: DegradationAdaptor
    step: int


def train_adaptor(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training, on every rank under ``torchrun``; rank 0 writes checkpoints."""
    world = join_world(torch.device(cfg.device))
    device = rank_device(torch.device(cfg.device))
    summary = dataset_summary(cfg.data, cfg.split)
    checkpoint = cfg.out / CHECKPOINT
    for name in (CHECKPOINT, PRETRAINED):
        if (cfg.out / name).exists() and not cfg.resume:
            raise ValueError(f"--out {cfg.out} already holds {name}; pass --resume or a new --out")
    if not summary["has_content_captions"] and world.is_main:
        _say("the dataset has no content captions: the content term of the loss is dropped")
    level_prompts = None
    if cfg.levels_weight > 0:
        level_prompts = protocol_prompts(cfg.caption_template, summary["num_types"])
        if level_prompts is None and world.is_main:
            _say(
                f"the dataset has {summary['num_types']} caption types, not the "
                f"{len(PROTOCOL)} of the estimation protocol: the prompt-level term is dropped"
            )
    loss_fn = AdaptorLoss(
        cfg.loss, cfg.content_weight, cfg.degradation_weight, cfg.types_weight, cfg.levels_weight
    ).to(device)
    start, seconds = 0, {"pretrain": 0.0, "train": 0.0}
    if cfg.resume and checkpoint.exists():
        model, meta, tensors = load_adaptor(checkpoint, device)
        _check_resumable(cfg, meta, summary, world)
        loss_fn.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
        start = meta["step"]
        seconds.update(meta.get("wall_seconds", {}))
    else:
        began = time.perf_counter()
        model = _build_model(cfg, summary["num_types"], device, world, level_prompts)
        seconds["pretrain"] = time.perf_counter() - began if cfg.init == "scratch" else 0.0
    named = model.trainable_parameters() + list(loss_fn.named_parameters())
    optimizer = adamw(named, cfg.lr, cfg.weight_decay)
    if start:
        optimizer_from_tensors(optimizer, tensors, meta["optimizer"], "optim")
        if world.is_main:
            _say(f"resuming at step {start} of {cfg.steps}")
    columns = ["lr", "degradation_caption", "fine_captions", "content_caption"]
    columns += list(LEVEL_COLUMNS.values()) if level_prompts else []
    batches = step_batches(cfg.data, columns, cfg.batch_size, cfg.seed, start, cfg.split, world)
    batches = templated(batches, cfg.caption_template)
    model.train()
    trained_before, began = seconds["train"], time.perf_counter()

    def save(step: int) -> None:
        if not world.is_main or (step % cfg.save_every and step != cfg.steps):
            return
        seconds["train"] = trained_before + time.perf_counter() - began
        optim_tensors, groups = optimizer_to_tensors(optimizer, "optim")
        loss_tensors = {f"loss.{k}": v for k, v in loss_fn.state_dict().items()}
        meta = {**_provenance(cfg, summary, world), "step": step, "optimizer": groups}
        meta["wall_seconds"] = dict(seconds)
        save_adaptor(model, checkpoint, {**optim_tensors, **loss_tensors}, meta)

    def step(s: int) -> dict[str, float]:
        lr = lr_at(s, cfg.steps, cfg.warmup, cfg.lr)
        return training_step(model, loss_fn, optimizer, next(batches), lr, world, level_prompts)

    run_steps("train adaptor", start, cfg.steps, step, cfg.progress and world.is_main, save)
    return TrainResult(checkpoint, model, cfg.steps)

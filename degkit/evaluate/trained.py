"""A ``degkit train-sr`` checkpoint as an :class:`~degkit.evaluate.models.SRModel` (``degkit``).

The model's ``condition`` step runs the prior on the whole LR batch and
returns an upscaler holding those tokens, so tiles reuse them (see
:func:`~degkit.evaluate.models.super_resolve`). The oracle priors read each
image's ground truth from its test pair: the per-type levels
(:func:`degkit.levels.type_levels`) and fine captions
(:func:`degkit.captions.fine_captions`) of the pair's degradation records,
at the pair's HR size, and its content caption (empty when the set has none),
as a dataset row holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from degkit.captions import fine_captions
from degkit.evaluate.models import SRModel, Upscaler, file_sha256
from degkit.levels import LEVEL_COLUMNS, type_levels
from degkit.models.estimator import levels_from_flat
from degkit.models.sr_checkpoint import load_sr_checkpoint

__all__ = ["degkit_model", "truth_columns"]


def truth_columns(columns: Sequence[str], pairs: Sequence[Any], scale: int) -> dict[str, list]:
    """The batch ``columns`` an oracle prior reads (level columns, ``levels`` / ``present``,
    captions), per pair, from its records."""
    out: dict[str, list] = {name: [] for name in columns}
    for pair in pairs:
        records = pair.meta.get("records")
        if records is None:
            raise ValueError(f"pair {pair.id}: no degradation records (an oracle prior needs them)")
        image = pair.hr if pair.hr is not None else pair.lr
        factor = 1 if pair.hr is not None else scale
        hr_size = (image.shape[0] * factor, image.shape[1] * factor)
        levels = type_levels(records, hr_size)
        row = {column: levels[t] for t, column in LEVEL_COLUMNS.items()}
        row["levels"], row["present"] = levels_from_flat(row)
        if "fine_captions" in columns:
            row["fine_captions"] = fine_captions(records, hr_size)
        row["content_caption"] = pair.meta.get("content_caption") or ""
        for name in columns:
            out[name].append(row[name])
    return out


def degkit_model(
    path: str | Path,
    scale: int | None,
    *,
    adaptor: str | Path | None = None,
    regressor: str | Path | None = None,
) -> SRModel:
    """The checkpoint's model and prior (EMA weights when it holds them); ``scale``
    None: the checkpoint's own."""
    path = Path(path)
    model, prior, meta = load_sr_checkpoint(path, "cpu", adaptor=adaptor, regressor=regressor)
    config = meta["config"]
    if scale is not None and config["scale"] != scale:
        raise ValueError(
            f"checkpoint {path}: a x{config['scale']} {config['backbone']} model, "
            f"but the test set is x{scale}"
        )
    module = torch.nn.ModuleDict({"sr": model} | ({"prior": prior} if prior else {}))

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        return model(lr)

    def condition(lr: torch.Tensor, pairs: Sequence[Any] | None) -> Upscaler:
        if prior.columns and pairs is None:
            raise ValueError(f"model {path}: {needs_truth}; none was given")
        rows = truth_columns(prior.columns, pairs, model.scale) if prior.columns else None
        tokens = prior(lr, rows)
        return lambda part: model(part, tokens)

    needs_truth = None
    if prior is not None and prior.columns:
        needs_truth = f"its prior {prior.name!r} reads each image's true degradations"
    details = {
        "backbone": config["backbone"],
        "prior": config["prior"],
        "prior_dim": config["prior_dim"],
        "weights": meta["weights"],
        "step": meta.get("step"),
        "sr_parameters": sum(p.numel() for p in model.parameters()),
        **{
            kind: {"file": str(file), "sha256": file_sha256(file)}
            for kind, file in meta["files"].items()
        },
    }
    return SRModel(
        name=path.parent.name if path.name == "last.safetensors" else path.stem,
        kind="degkit",
        scale=model.scale,
        upscale=upscale,
        module=module,
        checkpoint=str(path),
        checkpoint_sha256=file_sha256(path),
        architecture=f"{model.family} + fusion" if prior else model.family,
        condition=condition if prior is not None else None,
        needs_truth=needs_truth,
        details=details,
    )

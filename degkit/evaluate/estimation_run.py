"""Run the degradation-estimation protocol on a built test set (``degkit eval-adaptor``).

Reads a split's LR images and per-type ground truth
(:func:`~degkit.models.estimator.levels_from_flat`), embeds the images with
the adaptor (and, if given, runs the level regressor), scores both with
:mod:`degkit.evaluate.estimation` and returns the results with the run's
provenance: the dataset's fingerprint, build command and recipe hashes, the
checkpoints' metadata (init, seed, config, steps, wall times), the degkit commit.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

import degkit
from degkit.captions import PAPER_TYPES
from degkit.data.loaders import ShardDataset, split_files
from degkit.data.state import read_build_info
from degkit.evaluate import estimation
from degkit.evaluate.summary import git_commit
from degkit.levels import LEVEL_COLUMNS
from degkit.models.adaptor import load_adaptor
from degkit.models.estimator import levels_from_flat
from degkit.train.regressor import load_regressor

__all__ = ["TestSet", "estimate", "load_test_set"]


@dataclasses.dataclass
class TestSet:
    """LR images (a list of ``3 x H x W`` tensors in [0, 1]) and per-type truth ``N x K``."""

    images: list[torch.Tensor]
    levels: np.ndarray
    present: np.ndarray
    folder: Path
    split: str

    def truth(self) -> dict[str, np.ndarray]:
        """Per type, the protocol's true level of every sample."""
        return {
            p.name: estimation.true_levels(p, self.levels[:, k], self.present[:, k])
            for k, p in enumerate(estimation.PROTOCOL)
        }

    def describe(self) -> dict[str, Any]:
        """Where the set comes from: folder, split, rows, fingerprint, command, recipe hashes."""
        info = read_build_info(self.folder)
        hashes = set()
        for file in split_files(self.folder, self.split):
            hashes.update(pq.read_table(file, columns=["recipe_hash"])["recipe_hash"].to_pylist())
        return {
            "folder": str(self.folder),
            "split": self.split,
            "rows": len(self.images),
            "fingerprint": info["fingerprint"],
            "command": info["command"],
            "recipe_hashes": sorted(hashes),
        }


def load_test_set(folder: str | Path, split: str = "test") -> TestSet:
    """The LR images and ground truth of one split of a built dataset.

    Raises ``ValueError`` naming the shard and the columns it lacks.
    """
    folder = Path(folder)
    columns = list(LEVEL_COLUMNS.values())
    needed = ["lr", "recipe_hash", *columns]
    for file in split_files(folder, split):
        missing = sorted(set(needed) - set(pq.ParquetFile(file).schema_arrow.names))
        if missing:
            raise ValueError(
                f"{file}: no column(s) {missing}; the estimation protocol needs the LR image "
                f"and the level columns {columns} (rebuild it with this degkit)"
            )
    dataset = ShardDataset(folder, split, ["lr", *columns])
    rows = [dataset[i] for i in range(len(dataset))]
    pairs = [levels_from_flat(row) for row in rows]
    return TestSet(
        images=[row["lr"] for row in rows],
        levels=np.array([p[0] for p in pairs], dtype=float).reshape(len(rows), len(PAPER_TYPES)),
        present=np.array([p[1] for p in pairs], dtype=bool).reshape(len(rows), len(PAPER_TYPES)),
        folder=folder,
        split=split,
    )


def _batches(images: list[torch.Tensor], size: int) -> list[list[torch.Tensor]]:
    """Consecutive images cut into batches of at most ``size`` images of one shape."""
    out: list[list[torch.Tensor]] = []
    for image in images:
        if out and len(out[-1]) < size and out[-1][0].shape == image.shape:
            out[-1].append(image)
        else:
            out.append([image])
    return out


@torch.no_grad()
def adaptor_choices(
    path: str | Path, images: list[torch.Tensor], batch_size: int = 64
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Per type: chosen prompt index ``N`` and fine embeddings ``N x D``; and the checkpoint's
    metadata with its config and the prompt template.

    The prompts use the caption template the adaptor was trained with (a
    checkpoint recording none was trained on bare captions).
    """
    model, meta, _ = load_adaptor(path)
    template = meta.get("train", {}).get("caption_template", "{}")
    if model.config.num_types != len(PAPER_TYPES):
        raise ValueError(
            f"{path}: the adaptor has {model.config.num_types} per-type embeddings; the "
            f"protocol needs {len(PAPER_TYPES)} ({', '.join(PAPER_TYPES)})"
        )
    model.eval()
    embeddings = torch.cat(
        [model(torch.stack(batch)).per_type for batch in _batches(images, batch_size)]
    )
    choices, fine = {}, {}
    for k, protocol in enumerate(estimation.PROTOCOL):
        text = model.encode_text(estimation.prompts(protocol, template))
        choices[protocol.name] = (embeddings[:, k] @ text.T).argmax(dim=1).numpy()
        fine[protocol.name] = embeddings[:, k].numpy()
    meta = {k: v for k, v in meta.items() if k != "optimizer"}  # resume state, not provenance
    meta.update(config=model.config.to_dict(), path=str(path), prompt_template=template)
    return choices, fine, meta


@torch.no_grad()
def regressor_choices(
    path: str | Path, images: list[torch.Tensor], batch_size: int = 64
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per type: the prompt index nearest the regressor's level (0 when its presence
    probability is below 0.5), and the checkpoint's metadata."""
    model, meta = load_regressor(path)
    missing = sorted(set(PAPER_TYPES) - set(model.types))
    if missing:
        raise ValueError(f"{path}: the regressor predicts no level for type(s) {missing}")
    model.eval()
    outputs = [model(torch.stack(batch)) for batch in _batches(images, batch_size)]
    present = torch.cat([o.presence_logits for o in outputs]).numpy() > 0
    levels = torch.cat([o.levels for o in outputs]).numpy()
    choices = {}
    for protocol in estimation.PROTOCOL:
        k = model.types.index(protocol.name)
        guess = estimation.true_levels(protocol, levels[:, k], present[:, k])
        choices[protocol.name] = estimation.snap(protocol, guess)
    return choices, {**meta, "path": str(path)}


def _scores(
    protocol: estimation.TypeProtocol, choices: np.ndarray, true: np.ndarray
) -> dict[str, Any]:
    return {
        "accuracy": estimation.accuracy(protocol, choices, true),
        "confusion": estimation.confusion_matrix(protocol, choices, true).tolist(),
    }


def estimate(
    data: str | Path,
    adaptor: str | Path,
    regressor: str | Path | None = None,
    split: str = "test",
    batch_size: int = 64,
    command: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(results, per-type fine embeddings, per-type true levels) of one protocol run.

    ``results`` is JSON-able: the protocol, per type ``n``, ``chance``,
    ``majority`` (and its level) and, per model, ``accuracy`` and ``confusion``
    (rows: true level snapped to the nearest prompt level; columns: the choice),
    plus provenance.
    """
    for name, path in (("--adaptor", adaptor), ("--regressor", regressor)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name} {path}: no such checkpoint")
    test = load_test_set(data, split)
    truth = test.truth()
    adaptor_picked, fine, adaptor_meta = adaptor_choices(adaptor, test.images, batch_size)
    regressor_picked, regressor_meta = (
        regressor_choices(regressor, test.images, batch_size) if regressor else ({}, None)
    )
    types = {}
    for protocol in estimation.PROTOCOL:
        true = truth[protocol.name]
        majority, level = estimation.majority_accuracy(protocol, true)
        entry: dict[str, Any] = {
            "n": len(true),
            "chance": estimation.chance_accuracy(protocol, true),
            "majority": majority,
            "majority_level": level,
            "adaptor": _scores(protocol, adaptor_picked[protocol.name], true),
        }
        if regressor_picked:
            entry["regressor"] = _scores(protocol, regressor_picked[protocol.name], true)
        types[protocol.name] = entry
    template = adaptor_meta["prompt_template"]
    results = {
        "protocol": {
            "prompt_template": template,
            "types": [
                {**dataclasses.asdict(p), "prompts": estimation.prompts(p, template)}
                for p in estimation.PROTOCOL
            ],
        },
        "types": types,
        "provenance": {
            "data": test.describe(),
            "adaptor": adaptor_meta,
            "regressor": regressor_meta,
            "degkit_version": degkit.__version__,
            "git_commit": git_commit(),
            "torch_version": torch.__version__,
            "command": list(command) if command is not None else None,
            "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    }
    return results, fine, truth

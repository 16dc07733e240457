"""Read a ``degkit train-sr`` checkpoint back as a ready model and prior.

The file (``OUT/last.safetensors``) holds ``model.*`` tensors (the
:class:`~degkit.models.fusion.FusedSR`), ``prior.*`` tensors (the prior's
trainable part; its frozen estimator comes from the adaptor / regressor file
named in the metadata) and, when the run kept one, an exponential moving
average under ``ema.model.*`` / ``ema.prior.*``, each preferred where
present. Its safetensors metadata holds JSON under ``"degkit"``: ``config``
(backbone, scale, prior, prior_dim, num_types), the training options under
``train`` and the ``step``. For each file option (``adaptor``, ``regressor``,
``init``) ``train`` holds its path, that path relative to the checkpoint's
folder (``<name>_relative``) and its sha256 (``<name>_sha256``): a run folder
moved or copied with its estimator beside it still finds it, and a different
file at the recorded path is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from degkit.evaluate.models import file_sha256
from degkit.models.backbones import available_backbones, build_backbone
from degkit.models.fusion import FusedSR
from degkit.models.priors import ESTIMATOR_OF, PRIORS, Prior, build_prior

__all__ = [
    "EMA_PREFIX",
    "FILE_OPTIONS",
    "file_options_record",
    "load_sr_checkpoint",
    "read_sr_checkpoint",
    "read_sr_meta",
    "section",
]

EMA_PREFIX = "ema."

FILE_OPTIONS = ("adaptor", "regressor", "init")
"""Training options that name a file: recorded by path, relative path and sha256."""


def file_options_record(files: dict[str, Path | None], out: Path) -> dict[str, str | None]:
    """For each file option: its path, its path relative to ``out`` and its sha256."""
    record: dict[str, str | None] = {}
    for name, path in files.items():
        record[name] = str(path) if path else None
        record[f"{name}_relative"] = os.path.relpath(path, out) if path else None
        record[f"{name}_sha256"] = file_sha256(path) if path else None
    return record


def read_sr_meta(path: str | Path) -> dict[str, Any] | None:
    """The ``degkit`` metadata of an SR checkpoint, or None when ``path`` is not one
    (not safetensors, or no ``config`` with a ``backbone``)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        meta = json.loads(header["degkit"])
    except Exception:  # not safetensors, no or bad degkit metadata
        return None
    config = meta.get("config") if isinstance(meta, dict) else None
    return meta if isinstance(config, dict) and "backbone" in config else None


def read_sr_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, every tensor) of an SR checkpoint; a clear error when it is not one."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    meta = read_sr_meta(path)
    if meta is None:
        raise ValueError(
            f"{path}: not a degkit SR checkpoint (no 'degkit' metadata with a config "
            "naming a backbone; degkit train-sr writes OUT/last.safetensors)"
        )
    return meta, load_file(str(path), device=str(device))


def section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _weights(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The EMA tensors when the file holds ``ema.<prefix>...`` ones, else all of them."""
    ema = section(tensors, EMA_PREFIX)
    return ema if any(k.startswith(prefix) for k in ema) else tensors


def _frozen_file(path: Path, meta: dict[str, Any], kind: str, override: str | Path | None) -> Path:
    """The adaptor / regressor file the prior needs: ``override``, or the one training used.

    That one is looked for at its recorded path, then at its recorded path relative
    to ``path``'s folder (a moved or copied run folder); when training recorded its
    sha256, the file found must match it.
    """
    prior = meta["config"]["prior"]
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(
                f"{path}: prior {prior!r} needs --{kind}, {override}, which does not exist"
            )
        return Path(override)
    train = meta.get("train") or {}
    if not train.get(kind):
        raise ValueError(f"{path}: prior {prior!r} needs a {kind} checkpoint; pass --{kind}")
    relative = train.get(f"{kind}_relative")
    places = [Path(train[kind])] + ([path.parent / relative] if relative else [])
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"{path}: prior {prior!r} needs the {kind} this model was trained with, "
            f"{' or '.join(map(str, places))}, which does not exist; pass --{kind} with its path"
        )
    digest = train.get(f"{kind}_sha256")
    if digest and file_sha256(found) != digest:
        raise ValueError(
            f"{path}: {found} is not the {kind} this model was trained with (its sha256 "
            f"differs from the recorded {digest[:12]}); pass --{kind} to use it anyway"
        )
    return found


def _prior(
    path: Path,
    meta: dict[str, Any],
    device: torch.device,
    adaptor: str | Path | None,
    regressor: str | Path | None,
) -> tuple[Prior | None, dict[str, Path]]:
    from degkit.models.adaptor import load_adaptor
    from degkit.train.regressor import load_regressor

    config = meta["config"]
    name = config["prior"]
    if name == "bare":
        return None, {}
    kind = ESTIMATOR_OF.get(name)
    if kind is None:
        return build_prior(name, config["prior_dim"]).to(device), {}
    file = _frozen_file(path, meta, kind, adaptor if kind == "adaptor" else regressor)
    frozen_adaptor = load_adaptor(file, device)[0] if kind == "adaptor" else None
    frozen_regressor = load_regressor(file)[0] if kind == "regressor" else None
    prior = build_prior(name, config["prior_dim"], frozen_adaptor, frozen_regressor)
    return prior.to(device), {kind: file}


def load_sr_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    adaptor: str | Path | None = None,
    regressor: str | Path | None = None,
) -> tuple[FusedSR, Prior | None, dict[str, Any]]:
    """The model and prior of a ``degkit train-sr`` checkpoint, in eval mode, and its metadata.

    EMA weights are used when the file holds them. ``adaptor`` / ``regressor``
    replace the frozen estimator files recorded at training. The returned
    metadata gains ``weights`` (``"ema"`` or ``"model"``) and ``files``
    (the adaptor / regressor file used, by kind).
    """
    path, device = Path(path), torch.device(device)
    meta, tensors = read_sr_checkpoint(path, device)
    config = meta["config"]
    for field, known in (("backbone", available_backbones()), ("prior", ["bare", *PRIORS])):
        if config.get(field) not in known:
            raise ValueError(f"{path}: config {field} {config.get(field)!r} is not one of {known}")
    unused = [f for f, v in (("adaptor", adaptor), ("regressor", regressor)) if v is not None]
    unused = [f for f in unused if ESTIMATOR_OF.get(config["prior"]) != f]
    if unused:
        raise ValueError(
            f"--{unused[0]}: the prior {config['prior']!r} of {path} reads no {unused[0]}"
        )
    prior, files = _prior(path, meta, device, adaptor, regressor)
    weights = "ema" if _weights(tensors, "model.") is not tensors else "model"
    model = FusedSR(build_backbone(config["backbone"], config["scale"]), config["prior_dim"])
    try:
        model.load_state_dict(section(_weights(tensors, "model."), "model."))
        missing = []
        if prior is not None:
            state = section(_weights(tensors, "prior."), "prior.")
            missing = prior.load_state_dict(state, strict=False).missing_keys
    except RuntimeError as exc:
        text = " ".join(str(exc).split())[:300]
        raise ValueError(f"{path}: weights do not fit its config {config} ({text})") from None
    missing = [k for k in missing if not k.startswith("model.")]  # the frozen estimator's
    if missing:
        raise ValueError(f"{path}: prior tensors missing for its config {config}: {missing}")
    model.to(device).eval()
    if prior is not None:
        prior.eval()
    return model, prior, {**meta, "weights": weights, "files": files}

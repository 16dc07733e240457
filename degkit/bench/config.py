"""Leaderboard configs (``benchmarks/leaderboards/*.yaml``) and their profiles.

A config names the training data, the seeds, the adaptor / regressor / SR
training budgets, the SR entries (backbones x priors), the test sets and
metrics, and a few test images for visual comparisons. ``profiles`` holds
named overrides of those sections (``quick``, ``cpu-long``, ``gpu``,
``full``); a profile's mapping is merged key by key into the base, so it only
states what differs. Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from degkit.shipped import shipped_dir

__all__ = ["BenchConfig", "load_bench_config", "SHIPPED_FOLDER", "backbone_sr", "sr_steps"]

SHIPPED_FOLDER = shipped_dir("leaderboard_files", "benchmarks/leaderboards")

_SECTIONS: dict[str, dict[str, Any]] = {
    "data": {"recipe": "deplsr", "crop": 256, "per_image": 8, "seed": 0},
    "adaptor": {
        "model": "small",
        "pretrain_steps": 200,
        "steps": 200,
        "batch_size": 32,
        "lr": 5e-4,
        "evidence": False,
    },
    "regressor": {"steps": 300, "batch_size": 32, "lr": 3e-3, "jpeg_grid": True, "level_bins": 16},
    "sr": {
        "backbones": ["compact_tiny"],
        "priors": ["none", "deplsr", "regressor", "oracle-params", "oracle-text"],
        "steps": 200,
        "batch_size": 8,
        "patch": 16,
        "lr": 2e-4,
        "ema": 0.0,
        "recipe": None,
    },
    "eval": {"sets": ["deplsr_x4"], "metrics": ["psnr_y", "ssim_y"], "batch_size": 8},
    "visual": {"set": "deplsr_x4", "images": 3, "crop": 32},
}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """A resolved leaderboard config: its sections after the profile's overrides."""

    name: str
    profile: str
    description: str
    seeds: tuple[int, ...]
    device: str
    data: dict[str, Any]
    adaptor: dict[str, Any]
    regressor: dict[str, Any]
    sr: dict[str, Any]
    eval: dict[str, Any]
    visual: dict[str, Any]

    def section_hash(self, *names: str, backbone: str | None = None) -> str:
        """SHA-256 of the named sections (what a stage's result depends on).

        With ``backbone``, ``sr`` stands for :func:`backbone_sr` of it: an entry of
        one backbone does not depend on the other backbones' steps or on the
        lists of backbones and priors.
        """
        payload = {n: getattr(self, n) for n in names}
        if backbone is not None and "sr" in payload:
            payload["sr"] = backbone_sr(self.sr, backbone)
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for reports."""
        return dataclasses.asdict(self)


def sr_steps(sr: Mapping[str, Any], backbone: str) -> int:
    """Steps of ``backbone``'s SR entries (``sr.steps``: one number, or one per backbone)."""
    steps = sr["steps"]
    return int(steps[backbone] if isinstance(steps, Mapping) else steps)


def backbone_sr(sr: Mapping[str, Any], backbone: str) -> dict[str, Any]:
    """The training settings of ``backbone``'s SR entries: the shared ones and its own steps."""
    shared = {k: v for k, v in sr.items() if k not in ("backbones", "priors", "steps")}
    return {**shared, "steps": sr_steps(sr, backbone)}


def _check_sr_steps(where: str, sr: Mapping[str, Any]) -> None:
    steps = sr["steps"]
    per_backbone = steps if isinstance(steps, Mapping) else dict.fromkeys(sr["backbones"], steps)
    missing = sorted(set(sr["backbones"]) - set(per_backbone))
    if missing:
        raise ValueError(f"{where}: sr.steps names no steps for backbone(s) {missing}")
    bad = {
        b: n
        for b, n in per_backbone.items()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1
    }
    if bad:
        raise ValueError(f"{where}: sr.steps must be positive integers, got {bad}")


def _merge(where: str, base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key not in base:
            raise ValueError(f"{where}: unknown key {key!r} (known: {sorted(base)})")
        out[key] = value
    return out


def load_bench_config(path: str | Path, profile: str = "quick") -> BenchConfig:
    """Read a config (a path, or the name of a shipped one) with one of its profiles.

    Raises:
        FileNotFoundError: no such config.
        ValueError: unknown profile, section or key (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        shipped = SHIPPED_FOLDER / f"{path.name}.yaml"
        if not shipped.is_file():
            known = sorted(p.stem for p in SHIPPED_FOLDER.glob("*.yaml"))
            raise FileNotFoundError(
                f"leaderboard config {str(path)!r}: no such file (shipped: {known})"
            )
        path = shipped
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a leaderboard config is a mapping")
    top = {"name", "description", "seeds", "device", "profiles", *_SECTIONS}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} (known: {sorted(top)})")
    profiles = data.get("profiles") or {}
    if profile not in profiles:
        raise ValueError(f"{path}: no profile {profile!r} (profiles: {sorted(profiles)})")
    chosen = profiles[profile] or {}
    sections = {}
    for name, defaults in _SECTIONS.items():
        base = _merge(f"{path}: {name}", defaults, data.get(name) or {})
        sections[name] = _merge(f"{path}: profiles.{profile}.{name}", base, chosen.get(name) or {})
    _check_sr_steps(f"{path}: profile {profile}", sections["sr"])
    extra = sorted(set(chosen) - {*_SECTIONS, "seeds", "device"})
    if extra:
        raise ValueError(f"{path}: profiles.{profile}: unknown key(s) {extra}")
    seeds = chosen.get("seeds", data.get("seeds", [0, 1, 2]))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: seeds must be distinct integers, got {seeds}")
    return BenchConfig(
        name=str(data.get("name", path.stem)),
        profile=profile,
        description=str(data.get("description", "")).strip(),
        seeds=tuple(int(s) for s in seeds),
        device=str(chosen.get("device", data.get("device", "cpu"))),
        **sections,
    )

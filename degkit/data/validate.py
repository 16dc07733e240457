"""Checks of every :class:`degkit.data.build.BuildConfig` field, before any work starts.

Each message names the config field, e.g. ``BuildConfig.scale must be a
positive integer, got 0``; the command line shows the same message with its
option in place of the field (``--scale must be ...``).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import torch

from degkit.data.defaults import CROP_MODES, ENGINES
from degkit.data.jobs import shard_from_environment
from degkit.data.plan import parse_shard_spec, split_weights

__all__ = ["ENGINES", "field_name", "validate_config", "check_crop_fits_scale"]

_INT64 = 2**63
# Device types whose torch module tells whether (and how many) such devices exist.
_ACCELERATORS = ("cuda", "mps", "xpu")


def field_name(field: str) -> str:
    """``BuildConfig.<field>``, how messages name a setting."""
    return f"BuildConfig.{field}"


def _integer(config: Any, field: str, low: int | None, high: int | None = None) -> None:
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field_name(field)} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
        else:
            wanted = f"an integer from {low} to {high}"
        raise ValueError(f"{field_name(field)} must be {wanted}, got {value}")
    setattr(config, field, value)


def _optional_integer(config: Any, field: str, low: int) -> None:
    if getattr(config, field) is not None:
        _integer(config, field, low)


def _text(config: Any, field: str, optional: bool = False) -> None:
    value = getattr(config, field)
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ValueError(f"{field_name(field)} must be a non-empty one-line string, got {value!r}")


def _flag(config: Any, field: str) -> None:
    if not isinstance(getattr(config, field), bool):
        raise ValueError(
            f"{field_name(field)} must be True or False, got {getattr(config, field)!r}"
        )


def check_device(device: str) -> None:
    """Refuse a device string torch does not parse, or one this machine does not have."""
    name = field_name("device")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or mps, got {device!r}") from None
    if parsed.type == "cpu":
        return
    if parsed.type not in _ACCELERATORS:
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or mps, got {device!r}")
    backend = getattr(torch, parsed.type)
    if not backend.is_available():
        raise ValueError(f"{name} {device!r}: {parsed.type} is not available on this machine")
    count = backend.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"{name} {device!r}: this machine has {count} {parsed.type} device(s)")


def check_splits(text: Any) -> None:
    """Refuse ``BuildConfig.splits`` whose fractions do not sum to 1 (one bare name means 1)."""
    name = field_name("splits")
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string like train=0.9,validation=0.1, got {text!r}")
    weights = split_weights(text)
    total = sum(weights.values())
    if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-6):
        written = " + ".join(f"{k}={v:g}" for k, v in weights.items())
        raise ValueError(f"{name} fractions must sum to 1, got {written} = {total:g}")


def check_crop_fits_scale(crop: int | None, scale: int) -> None:
    """Refuse a crop that is not a positive multiple of the scale."""
    if crop is not None and (crop < scale or crop % scale):
        hint = f"; try {crop - crop % scale}" if crop > scale else ""
        raise ValueError(
            f"{field_name('crop')} must be a positive multiple of the scale {scale}, "
            f"got {crop}{hint}"
        )


def validate_config(config: Any) -> None:
    """Check (and normalise to plain ints) every field of a ``BuildConfig``.

    Raises:
        ValueError: the first bad field, named with its option.
    """
    for field in ("recipe", "source"):  # a YAML recipe or a source given as a Path
        if isinstance(getattr(config, field), os.PathLike):
            setattr(config, field, os.fspath(getattr(config, field)))
    _text(config, "recipe")
    if not isinstance(config.out, str | os.PathLike) or str(config.out) == "":
        raise ValueError(f"{field_name('out')} must name a folder, got {config.out!r}")
    _text(config, "source", optional=True)
    _optional_integer(config, "scale", 1)
    _optional_integer(config, "crop", 1)
    if config.scale is not None:
        check_crop_fits_scale(config.crop, config.scale)
    _integer(config, "per_image", 1)
    if config.crop is None and config.per_image != 1:
        raise ValueError(
            f"{field_name('per_image')} must be 1 when whole images are kept "
            f"(BuildConfig.crop=None), "
            f"got {config.per_image}"
        )
    if config.crop_mode not in CROP_MODES:
        raise ValueError(
            f"{field_name('crop_mode')} must be one of {CROP_MODES}, got {config.crop_mode!r}"
        )
    _integer(config, "seed", -_INT64, _INT64 - 1)
    check_splits(config.splits)
    _text(config, "shard", optional=True)
    if config.shard == "auto":  # the k/n of this job, read once, here
        config.shard = shard_from_environment()
    parse_shard_spec(config.shard)
    _optional_integer(config, "rows_per_shard", 1)
    _text(config, "device")
    check_device(config.device)
    if config.workers is None:
        config.workers = os.cpu_count() or 1
    _integer(config, "workers", 0)
    _integer(config, "batch_size", 1)
    _flag(config, "resume")
    _integer(config, "png_level", 0, 9)
    _integer(config, "max_pixels", 1)
    for field in ("image_column", "caption_column", "path_column", "captioner"):
        _text(config, field, optional=True)
    _text(config, "license")
    _flag(config, "progress")
    if config.engine not in ENGINES:
        raise ValueError(
            f"{field_name('engine')} must be one of {', '.join(ENGINES)}, got {config.engine!r}"
        )

"""The options of one ``degkit build`` run, and the single home of their defaults.

Light on purpose (no torch, NumPy or Pillow at import): the command line reads
its option defaults from these fields, so ``degkit build --help`` and a library
call agree on every default. The checks themselves (:mod:`degkit.data.validate`)
load when a config is made.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from degkit.data.defaults import DEFAULT_MAX_PIXELS, DEFAULT_PNG_LEVEL

__all__ = ["BuildConfig", "config_defaults"]


@dataclasses.dataclass
class BuildConfig:
    """Options of one ``degkit build`` run (see ``degkit build --help``).

    ``workers`` None means one worker process per CPU core (it is resolved to
    that number when the config is made); 0 runs everything in this process.
    Invalid values raise ``ValueError`` naming the field, e.g. ``BuildConfig.crop``.
    """

    recipe: str
    out: Path
    source: str | None = None
    scale: int | None = None
    crop: int | None = 256
    per_image: int = 1
    crop_mode: str = "random"
    seed: int = 0
    splits: str = "train"
    shard: str | None = None
    rows_per_shard: int | None = None
    device: str = "cpu"
    workers: int | None = None
    batch_size: int = 32
    resume: bool = False
    png_level: int = DEFAULT_PNG_LEVEL
    max_pixels: int = DEFAULT_MAX_PIXELS
    image_column: str | None = None
    caption_column: str | None = None
    path_column: str | None = None
    captioner: str | None = None
    license: str = "other"
    progress: bool = True
    engine: str = "local"

    def __post_init__(self) -> None:
        from degkit.data.validate import validate_config

        validate_config(self)
        self.out = Path(self.out)


def config_defaults() -> dict[str, object]:
    """``{field: default}`` of every :class:`BuildConfig` field that has one."""
    return {
        f.name: f.default
        for f in dataclasses.fields(BuildConfig)
        if f.default is not dataclasses.MISSING
    }

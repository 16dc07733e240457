"""Defaults of ``degkit build`` shared by the command line and the build.

Kept free of imports so ``degkit --help`` can show them without loading NumPy,
Pillow or torch.
"""

__all__ = ["CROP_MODES", "DEFAULT_MAX_PIXELS", "DEFAULT_PNG_LEVEL", "ENGINES"]

CROP_MODES = ("random", "grid")
DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb guard
DEFAULT_PNG_LEVEL = 6
ENGINES = ("local", "ray")  # where a build's shards are written

"""Small stand-ins for evaluation tests: a tiny in-memory test set, numpy metrics, callables.

The metrics follow the ``degkit.metrics.Metric`` interface and are computed in
numpy, independently of degkit's code. ``nearest_x2`` / ``wrong_shape`` are
importable as ``eval_fakes:nearest_x2`` (tests/ is on the path).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import torch

LEVELS = ("light", "medium", "heavy")
TYPES = ("blur", "noise")


@dataclasses.dataclass(frozen=True)
class FakePair:
    id: str
    lr: np.ndarray
    hr: np.ndarray | None
    meta: dict


class FakeSet:
    """A test set held in memory (the ``TestSet`` interface)."""

    def __init__(self, name: str, scale: int, pairs: list[FakePair], kind: str = "paired"):
        self.name, self.scale, self.kind, self._pairs = name, scale, kind, pairs

    def pairs(self) -> list[FakePair]:
        return self._pairs

    @property
    def hash(self) -> str:
        h = hashlib.sha256(f"{self.scale}".encode())
        for p in self._pairs:
            h.update(p.id.encode() + p.lr.tobytes() + (b"" if p.hr is None else p.hr.tobytes()))
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hash": self.hash,
            "scale": self.scale,
            "kind": self.kind,
            "n": len(self._pairs),
        }


def tiny_set(
    n: int = 6, scale: int = 2, size: int = 8, seed: int = 0, kind: str = "paired", name="tiny"
) -> FakeSet:
    """``n`` random smooth-ish HR images of ``size * scale`` pixels and their box-downscaled LR."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        hr = rng.integers(0, 256, (size * scale, size * scale, 3)).astype(np.float64)
        hr = (hr + np.roll(hr, 1, 0) + np.roll(hr, 1, 1)) / 3
        hr8 = hr.round().astype(np.uint8)
        lr = hr8.reshape(size, scale, size, scale, 3).mean((1, 3)).round().astype(np.uint8)
        meta = {"type": TYPES[i % 2], "level": LEVELS[i % 3], "records": [{"op": "x"}]}
        pairs.append(FakePair(f"img{i:02d}", lr, hr8 if kind == "paired" else None, meta))
    return FakeSet(name, scale, pairs, kind)


class NumpyMetric:
    """Per-image scores of 8-bit-exact float images, computed in numpy."""

    available = True
    missing = None

    def __init__(self, name: str, direction: str, reference: str, fn):
        self.name, self.direction, self.reference, self._fn = name, direction, reference, fn
        self.protocol = {"name": name, "implementation": "numpy test reference"}
        self.calls = 0

    @property
    def na_text(self) -> str:
        return f"n/a ({self.missing})"

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        a = sr.double().cpu().numpy()
        b = None if hr is None else hr.double().cpu().numpy()
        return torch.tensor([self._fn(a[i], None if b is None else b[i]) for i in range(len(a))])


def psnr_rgb() -> NumpyMetric:
    """PSNR over RGB, data range 1."""
    return NumpyMetric(
        "psnr_rgb", "higher", "full", lambda a, b: -10 * np.log10(((a - b) ** 2).mean())
    )


def mae_rgb() -> NumpyMetric:
    """Mean absolute error (lower is better)."""
    return NumpyMetric("mae_rgb", "lower", "full", lambda a, b: np.abs(a - b).mean())


def brightness() -> NumpyMetric:
    """A no-reference score: mean intensity."""
    return NumpyMetric("brightness", "higher", "none", lambda a, b: a.mean())


def unavailable_metric() -> NumpyMetric:
    m = NumpyMetric("lpips_fake", "lower", "full", lambda a, b: 0.0)
    m.available = False
    m.missing = "weights missing: put fake.pth in $TORCH_HOME"
    return m


def np_psnr(sr8: np.ndarray, hr8: np.ndarray) -> float:
    return float(-10 * np.log10(((sr8 / 255.0 - hr8 / 255.0) ** 2).mean()))


def nearest_x2(lr: torch.Tensor) -> torch.Tensor:
    """A callable SR model: pixel replication by 2."""
    return lr.repeat_interleave(2, -2).repeat_interleave(2, -1)


def wrong_shape(lr: torch.Tensor) -> torch.Tensor:
    """A callable that forgets to upscale."""
    return lr

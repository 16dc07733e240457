"""The :class:`Metric` object: input checks, border crop and batched scoring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from degkit.metrics.pixel import crop_border
from degkit.metrics.table import MetricSpec

ScoreFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class MetricUnavailable(RuntimeError):
    """The metric's weights, parameters or packages are not present locally."""


class Metric:
    """One configured metric; call it on a batch: ``m(sr, hr) -> float64 (N,)``.

    ``sr`` and ``hr`` are float32 (or float64) N x 3 x H x W RGB tensors in [0, 1] of the
    same shape on the same device; ``hr`` is required for full-reference metrics and
    ignored by no-reference ones. Scores come back on the CPU.
    """

    def __init__(
        self,
        spec: MetricSpec,
        protocol: dict[str, Any],
        score: ScoreFn | None,
        missing: str | None = None,
    ) -> None:
        self.name = spec.name
        self.direction = spec.direction
        self.reference = spec.reference
        self.protocol = protocol
        self.missing = missing
        self._spec = spec
        self._score = score

    @property
    def available(self) -> bool:
        return self.missing is None

    @property
    def na_text(self) -> str:
        """Text for reports in place of a score: ``n/a (<what is missing>)``."""
        return f"n/a ({self.missing})" if self.missing else ""

    def __repr__(self) -> str:
        state = "available" if self.available else self.na_text
        return f"Metric({self.name!r}, {self.direction} is better, {state})"

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        if not self.available:
            raise MetricUnavailable(f"{self.name}: {self.missing}")
        self._check_image("sr", sr)
        if self.reference == "full":
            if hr is None:
                raise ValueError(f"{self.name}: full-reference metric needs hr")
            self._check_image("hr", hr)
            if hr.shape != sr.shape:
                raise ValueError(
                    f"{self.name}: sr shape {tuple(sr.shape)} differs from hr shape "
                    f"{tuple(hr.shape)}"
                )
            if hr.device != sr.device:
                raise ValueError(f"{self.name}: sr is on {sr.device} but hr is on {hr.device}")
        else:
            hr = None
        self._check_size(sr)
        if sr.shape[0] == 0:
            return torch.empty(0, dtype=torch.float64)
        border = self.protocol["crop_border"]
        sr = crop_border(sr, border)
        hr = crop_border(hr, border) if hr is not None else None
        with torch.no_grad():
            scores = self._score(sr, hr)
        return scores.reshape(sr.shape[0]).to(device="cpu", dtype=torch.float64)

    def _check_image(self, label: str, x: Any) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{self.name}: {label} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"{self.name}: {label} has dtype {x.dtype}, expected torch.float32 in [0, 1]"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{self.name}: {label} has shape {tuple(x.shape)}, expected N x 3 x H x W (RGB)"
            )
        if x.numel():
            low, high = torch.aminmax(x)
            if not (low >= 0 and high <= 1):
                raise ValueError(
                    f"{self.name}: {label} values span [{low.item():.4g}, {high.item():.4g}], "
                    "expected finite values in [0, 1]"
                )

    def _check_size(self, x: torch.Tensor) -> None:
        border = self.protocol["crop_border"]
        height, width = x.shape[-2:]
        inner = (height - 2 * border, width - 2 * border)
        need = self._spec.min_size
        if min(inner) < need:
            raise ValueError(
                f"{self.name}: images of {height}x{width} are {inner[0]}x{inner[1]} after "
                f"cropping {border} px per edge; {self.name} needs at least {need}x{need}"
            )

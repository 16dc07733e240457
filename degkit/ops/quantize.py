"""Quantisation to a fixed number of bits per channel (8 by default).

``quantize`` maps every value to the nearest of ``2**bits`` evenly spaced
levels in ``[0, 1]``: ``round(clamp(x, 0, 1) * L) / L`` with ``L = 2**bits - 1``
(ties round half to even, as ``torch.round``). With 8 bits this is exactly what
saving to an 8-bit image file and reading it back does, so a pipeline can end
with it to make the LR images it returns equal the ones it writes. Applying it
twice changes nothing (idempotent). It is not differentiable (rounding has a
zero gradient almost everywhere).
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from degkit.ops.base import Op, OpError, Params, register
from degkit.ops.labels import FlatColumn
from degkit.rng import BatchStreams

__all__ = ["Quantize", "level_values", "quantize_levels", "to_uint8"]

MAX_BITS = 16


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in ``[0, 1]`` -> uint8 (round to nearest, clamp), same shape and device."""
    return x.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


@functools.cache
def level_values(device: torch.device) -> torch.Tensor:
    """``k / 255`` in float32 for the 256 8-bit levels, on ``device``.

    Divided once on the CPU (CUDA divides by a number through its reciprocal,
    one ulp off), so ``level_values(device)[pixels]`` is the same on every device.
    """
    return (torch.arange(256, dtype=torch.float32) / 255.0).to(device)


def quantize_levels(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Round sample ``i`` of ``x`` (N x C x H x W) to ``bits[i]`` bits per channel."""
    levels = (2.0 ** bits.to(device=x.device, dtype=x.dtype, non_blocking=True) - 1.0).view(
        -1, 1, 1, 1
    )
    return x.clamp(0.0, 1.0).mul(levels).round_().div_(levels)


@register
@dataclasses.dataclass
class Quantize(Op):
    """Round to ``bits`` bits per channel and clamp to ``[0, 1]``."""

    name = "quantize"
    version = 1
    family = "quantize"
    caption_types = ()
    flat_columns = (
        FlatColumn(
            "quantize_bits",
            "int64",
            "bits per channel of the last quantisation",
            lambda rec: rec["bits"],
        ),
    )
    param_limits = {"bits": (1, MAX_BITS)}

    bits: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise OpError(f"quantize.bits must be an integer in [1, {MAX_BITS}], got {self.bits!r}")
        if not 1 <= self.bits <= MAX_BITS:
            raise OpError(f"quantize.bits must be an integer in [1, {MAX_BITS}], got {self.bits}")

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {"bits": torch.full((n,), self.bits, dtype=torch.int64)}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        bits = params["bits"]
        if bits.is_floating_point() and not torch.equal(bits, bits.round()):
            raise OpError(f"{self.name}: parameter 'bits' must be integers, got {bits.tolist()}")
        return quantize_levels(x, bits)

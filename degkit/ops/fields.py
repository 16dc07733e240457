"""Random fields drawn on the image's device from recorded field seeds.

A noise op records one 63-bit *field seed* per sample and regenerates the
sample's field from it in ``apply``. This module turns field seeds into
fields with plain int64 tensor arithmetic, so the same code runs on the CPU
and on CUDA, gives the same bits on both, and never copies a field between
them or waits on the host:

* the sample's 64-bit key is ``mix(seed XOR 0x6465676B69742D66)`` and its
  ``k``-th word (``k = 0, 1, ...``) is ``mix(key + (k + 1) * 0x9E3779B97F4A7C15)``
  (mod 2**64), where ``mix`` is the SplitMix64 finaliser
  (``x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27;
  x *= 0x94D049BB133111EB; x ^= x >> 31``, logical shifts). This is the
  SplitMix64 generator of Steele, Lea and Flood (2014) read at counter ``k``:
  any word can be computed without the ones before it;
* word ``k`` gives the 32-bit draws ``2k`` (its high half) and ``2k + 1`` (its
  low half), so the first ``M`` draws of a field never depend on how many are
  drawn (a gray sample's one plane is the first plane of a colour draw);
* uniforms are ``(u + 0.5) / 2**32`` for a 32-bit draw ``u``;
* normals pair the two halves of each word (Box-Muller, float32):
  ``r = sqrt(-2 ln((hi + 0.5) / 2**32))``, ``t = 2 pi lo / 2**32``; value
  ``2k`` is ``r cos t`` and ``2k + 1`` is ``r sin t``.

The integer draws are identical on every device; normals pass through float32
``log``, ``cos`` and ``sin``, whose last bit can differ between the CPU's and
CUDA's math libraries.
"""

from __future__ import annotations

import math

import torch

__all__ = ["field_keys", "field_draws", "field_uniforms", "field_normals"]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
_FIELD_DOMAIN = 0x6465676B69742D66  # "degkit-f"
_LOW_32 = 0xFFFFFFFF


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _xor_shifted(x: torch.Tensor, shift: int, scratch: torch.Tensor) -> None:
    """``x ^= x >> shift`` in place, with a logical (unsigned) shift."""
    torch.bitwise_right_shift(x, shift, out=scratch)
    scratch.bitwise_and_((1 << (64 - shift)) - 1)
    x.bitwise_xor_(scratch)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """The SplitMix64 finaliser, in place on an int64 tensor (multiplication wraps)."""
    scratch = torch.empty_like(x)
    _xor_shifted(x, 30, scratch)
    x.mul_(_signed(_MIX_1))
    _xor_shifted(x, 27, scratch)
    x.mul_(_signed(_MIX_2))
    _xor_shifted(x, 31, scratch)
    return x


def field_keys(seeds: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """The 64-bit key (int64) of each recorded field seed, on ``device``."""
    keys = seeds.to(device=device, dtype=torch.int64).bitwise_xor(_FIELD_DOMAIN)
    return _mix(keys)


def _words(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` int64: words ``0 .. count - 1`` of each key."""
    counters = torch.arange(1, count + 1, dtype=torch.int64, device=keys.device)
    return _mix(counters.mul_(_signed(_GOLDEN)).unsqueeze(0).add(keys.unsqueeze(1)))


def _halves(keys: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves (int64) of the first ``ceil(count / 2)`` words."""
    words = _words(keys, (count + 1) // 2)
    high = words.bitwise_right_shift(32).bitwise_and_(_LOW_32)
    return high, words.bitwise_and_(_LOW_32)


def _interleave(even: torch.Tensor, odd: torch.Tensor, count: int) -> torch.Tensor:
    """Values ``2k`` from ``even[:, k]`` and ``2k + 1`` from ``odd[:, k]``, first ``count``."""
    return torch.stack((even, odd), dim=2).view(even.shape[0], -1)[:, :count]


def field_draws(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` int64 in ``[0, 2**32)``: the first ``count`` 32-bit draws of each key."""
    return _interleave(*_halves(keys, count), count)


def field_uniforms(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` float64 uniforms in ``(0, 1)``, ``(u + 0.5) / 2**32``."""
    return field_draws(keys, count).double().add_(0.5).mul_(2.0**-32)


def field_normals(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` float32 standard normals (Box-Muller on each word's two halves)."""
    high, low = _halves(keys, count)
    radius = high.float().add_(0.5).mul_(2.0**-32).log_().mul_(-2.0).sqrt_()
    angle = low.float().mul_(2.0 * math.pi * 2.0**-32)
    pairs = torch.empty((*angle.shape, 2), dtype=torch.float32, device=angle.device)
    torch.cos(angle, out=pairs[..., 0])
    torch.sin(angle, out=pairs[..., 1])
    return pairs.mul_(radius.unsqueeze(2)).view(angle.shape[0], -1)[:, :count]

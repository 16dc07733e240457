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

Fields of samples of different sizes on one canvas (see :mod:`degkit.ops.canvas`)
are read at *counters*: the value at pixel ``(p, y, x)`` of a sample ``h x w``
is its value ``(p h + y) w + x``, exactly what the sample alone draws there
(:func:`canvas_counters`, :func:`draws_at`, :func:`normals_at`).

The integer draws are identical on every device; normals pass through float32
``log``, ``cos`` and ``sin``, whose last bit can differ between the CPU's and
CUDA's math libraries.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "field_keys",
    "field_draws",
    "field_uniforms",
    "field_normals",
    "canvas_counters",
    "draws_at",
    "uniforms_at",
    "normals_at",
]

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
    keys = seeds.to(device=device, dtype=torch.int64, non_blocking=True).bitwise_xor(_FIELD_DOMAIN)
    return _mix(keys)


def _words_at(keys: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Word ``words[n, ...]`` of key ``keys[n]`` (int64, same shape as ``words``)."""
    counters = words.add(1).mul_(_signed(_GOLDEN))
    return _mix(counters.add_(keys.view(-1, *[1] * (words.ndim - 1))))


def _words(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` int64: words ``0 .. count - 1`` of each key."""
    counters = torch.arange(1, count + 1, dtype=torch.int64, device=keys.device)
    return _mix(counters.mul_(_signed(_GOLDEN)).unsqueeze(0).add(keys.unsqueeze(1)))


def _split(words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves (int64) of int64 words (the low half in place)."""
    high = words.bitwise_right_shift(32).bitwise_and_(_LOW_32)
    return high, words.bitwise_and_(_LOW_32)


def _halves(keys: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit halves (int64) of the first ``ceil(count / 2)`` words."""
    return _split(_words(keys, (count + 1) // 2))


def _radius_angle(high: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Box-Muller's float32 radius and angle of two 32-bit draws."""
    radius = high.float().add_(0.5).mul_(2.0**-32).log_().mul_(-2.0).sqrt_()
    return radius, low.float().mul_(2.0 * math.pi * 2.0**-32)


def _interleave(even: torch.Tensor, odd: torch.Tensor, count: int) -> torch.Tensor:
    """Values ``2k`` from ``even[:, k]`` and ``2k + 1`` from ``odd[:, k]``, first ``count``."""
    return torch.stack((even, odd), dim=2).view(even.shape[0], -1)[:, :count]


def field_draws(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` int64 in ``[0, 2**32)``: the first ``count`` 32-bit draws of each key."""
    return _interleave(*_halves(keys, count), count)


def _to_uniform(draws: torch.Tensor) -> torch.Tensor:
    return draws.double().add_(0.5).mul_(2.0**-32)


def field_uniforms(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` float64 uniforms in ``(0, 1)``, ``(u + 0.5) / 2**32``."""
    return _to_uniform(field_draws(keys, count))


def field_normals(keys: torch.Tensor, count: int) -> torch.Tensor:
    """``N x count`` float32 standard normals (Box-Muller on each word's two halves)."""
    radius, angle = _radius_angle(*_halves(keys, count))
    pairs = torch.empty((*angle.shape, 2), dtype=torch.float32, device=angle.device)
    torch.cos(angle, out=pairs[..., 0])
    torch.sin(angle, out=pairs[..., 1])
    return pairs.mul_(radius.unsqueeze(2)).view(angle.shape[0], -1)[:, :count]


# -- reading fields at given counters (canvases) ---------------------------------
def canvas_counters(
    sizes: torch.Tensor, planes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """``N x P x height x width`` int64: the field index ``(p h + y) w + x`` of each canvas
    pixel in its sample's own field.

    ``sizes`` (``N x 2``, on the target device) are the samples' ``(h, w)``;
    ``planes`` (``N x P``) the field plane each channel reads (0 for every
    channel of a gray sample). Pixels outside a sample get some index (ignored).
    """
    h, w = sizes[:, 0].view(-1, 1, 1, 1), sizes[:, 1].view(-1, 1, 1, 1)
    ys = torch.arange(height, device=sizes.device).view(1, 1, -1, 1)
    xs = torch.arange(width, device=sizes.device).view(1, 1, 1, -1)
    return (planes.unsqueeze(-1).unsqueeze(-1) * h + ys) * w + xs


def draws_at(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """The 32-bit draws (int64) numbered ``counters[n, ...]`` of key ``keys[n]``."""
    high, low = _split(_words_at(keys, counters >> 1))
    return torch.where(counters.bitwise_and(1).bool(), low, high)


def uniforms_at(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """The float64 uniforms numbered ``counters`` (see :func:`field_uniforms`)."""
    return _to_uniform(draws_at(keys, counters))


def normals_at(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """The float32 normals numbered ``counters`` (see :func:`field_normals`)."""
    radius, angle = _radius_angle(*_split(_words_at(keys, counters >> 1)))
    odd = counters.bitwise_and(1).bool()
    return torch.where(odd, torch.sin(angle), torch.cos(angle)).mul_(radius)

"""The level of each of the paper's five degradation types, from a sample's records.

One number per type (None when the type is absent), whatever the number of
ops of that type; the fine captions (:func:`degkit.captions.fine_captions`),
the level columns of a dataset row and the estimation targets
(:func:`degkit.models.estimator.levels_from_flat`) all print or read these.

=============== ============================================================================
type            level
=============== ============================================================================
blur            effective Gaussian sigma at LR (output) scale, pixels: each ``blur`` record
                (not sinc) gives the sigma its caption uses, ``sqrt(sigma_x sigma_y)``,
                divided by the downscale factor from where it ran to the output,
                ``sqrt(f_h f_w)`` with ``f = size at the blur / output size`` per axis;
                these combine in quadrature, ``sqrt(sum s_i**2)``
gaussian noise  the noise std left in the output, 0-255 scale: each ``gaussian_noise`` sigma
                times the attenuation of the linear filters after it (below); these
                combine in quadrature (independent noises: variances add)
poisson noise   the same for the ``poisson_noise`` scales
jpeg            quality of the last ``jpeg`` (the one closest to the output)
ringing         1.0 when a ``ringing`` op or a ``blur`` with a sinc kernel ran
=============== ============================================================================

**Present** means the ops changed something: blur and the noises are present
when their level is above 0 (a blur of sigma 0, on DePLSR's grid, is an
identity; so is a noise of strength 0), JPEG and ringing whenever one ran. An
absent type has level None.

**Noise after filtering.** A linear filter with kernel ``k`` turns white
noise of std ``s`` into noise of std ``s ||k||_2`` (root sum of squared
taps; a Gaussian of sigma 2 divides it by about 7). The attenuation of a
noise op is ``||k||_2`` of the composite kernel of every linear filter that
ran after it: the full convolution of their kernels, each rebuilt from its
record by the op's own builder (:meth:`degkit.ops.base.Op.linear_kernel`:
``blur`` of any kernel type, sinc included, ``motion_blur``,
``defocus_blur``, ``ringing``). No later filter: 1. So DePLSR's stage-1
noise counts at the strength stage 2's blur leaves of it.

**Exactness.** Quadrature is exact for composed isotropic Gaussians (their
variances add). For anisotropic or non-Gaussian kernels it approximates:
covariances add, but the geometric-mean sigma of a sum is the root sum of
squares only when the kernels share their axes and aspect. Dividing by the
downscale factor is exact for an ideal rescaling; a resize's own
interpolation filter is not counted (nor the kernel of BSRGAN's
``shifted_subsample``, part of its way down). The noise attenuation is exact
for white noise through the filters away from borders; not modelled:
resizes after a noise (taken as identity; a filter after a resize is
composed as though it ran on the noise's pixel grid), other ops after it
(JPEG, sharpening, colour changes), clipping to ``[0, 1]`` and the
brightness-dependent variance of Poisson noise.

**Sizes.** The downscale factor comes from the ops' own size rules
(:meth:`degkit.ops.base.Op.output_size`) run forward from ``hr_size`` (the
HR ``(H, W)``). A blur after the last resize-family op ran at output scale
(factor 1), as in DePLSR, which degrades after its first resize to the LR
size; a blur before one needs ``hr_size`` unless the records fix the sizes
(a ``final_resize`` or a target-relative ``resize`` after the blur records
its size, an input-relative ``resize`` does not): Real-ESRGAN blurs at HR scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from degkit.ops import registered_ops
from degkit.ops.labels import FlatColumn, Record

__all__ = [
    "PAPER_TYPES",
    "LEVEL_COLUMNS",
    "level_columns",
    "noise_attenuations",
    "type_levels",
]

PAPER_TYPES = ("blur", "gaussian noise", "poisson noise", "jpeg", "ringing")
"""The paper's five fine-caption types, in its order."""

LEVEL_COLUMNS = {
    "blur": "blur_level",
    "gaussian noise": "gaussian_noise_level",
    "poisson noise": "poisson_noise_level",
    "jpeg": "jpeg_level",
    "ringing": "ringing",
}
"""The flat column holding each type's level (ringing: the ops' ``ringing`` flag)."""

_NOISES = ("gaussian noise", "poisson noise")

_LEVEL_DOCS = {
    "blur_level": "blur level: effective Gaussian sigma of all Gaussian-family blurs at LR scale, "
    "pixels (each divided by its downscale to the LR, combined in quadrature); null when none "
    "or sigma 0",
    "gaussian_noise_level": "gaussian noise level: the Gaussian noise std left in the output "
    "(0-255): each sigma times the L2 norm of the composite kernel of the linear filters "
    "after it, in quadrature; null when none or sigma 0",
    "poisson_noise_level": "poisson noise level: the Poisson scales, each times the L2 norm "
    "of the composite kernel of the linear filters after it, in quadrature; null when none "
    "or scale 0",
    "jpeg_level": "jpeg level: quality of the last JPEG (1-100); null when none",
}


def level_columns() -> tuple[FlatColumn, ...]:
    """The level columns of a dataset row (``ringing`` is declared by the sinc ops)."""
    return tuple(FlatColumn(name, "float64", doc) for name, doc in _LEVEL_DOCS.items())


def _paper_type(record: Record) -> str | None:
    cls = registered_ops().get(record.get("op"))
    kind = cls.caption_type(record) if cls is not None else None
    return kind.name if kind is not None and kind.name in PAPER_TYPES else None


def _value(record: Record) -> float:
    """The one number a record's caption prints."""
    kind = registered_ops()[record["op"]].caption_type(record)
    return float(next(iter(kind.values(record).values())))


def _downscale_factors(
    records: Sequence[Record], hr_size: tuple[int, int] | None
) -> list[float | None]:
    """Per record, ``sqrt(f_h f_w)`` from its input to the output (None when unknown)."""
    ops = registered_ops()
    size = None if hr_size is None else (int(hr_size[0]), int(hr_size[1]))
    before = []
    last_resize = -1
    for i, rec in enumerate(records):
        before.append(size)
        cls = ops.get(rec.get("op"))
        if cls is not None and cls.family == "resize":
            last_resize = i
            size = cls.output_size(rec, size)
    out = size
    factors: list[float | None] = []
    for i, size in enumerate(before):
        if i > last_resize:
            factors.append(1.0)
        elif size is None or out is None:
            factors.append(None)
        else:
            factors.append(math.sqrt(size[0] / out[0] * size[1] / out[1]))
    return factors


def _convolve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The full 2-D convolution of two kernels (``(ha + hb - 1) x (wa + wb - 1)``)."""
    pad = (b.shape[0] - 1, b.shape[1] - 1)
    return F.conv2d(a[None, None], b.flip(0, 1)[None, None], padding=pad)[0, 0]


def _kernel(record: Record) -> torch.Tensor | None:
    """The record's linear filter kernel (float64), None when its op is no linear filter."""
    cls = registered_ops().get(record.get("op"))
    try:
        kernel = cls.linear_kernel(record) if cls is not None else None
    except KeyError as err:
        raise ValueError(
            f"record {record.get('path', record['op'])!r}: no field {err.args[0]!r}, needed to "
            "rebuild its kernel (the filter ran after a noise, whose level it weakens)"
        ) from None
    return None if kernel is None else kernel.double()


def noise_attenuations(records: Sequence[Record]) -> list[float | None]:
    """Per noise record, ``||k||_2`` of the composite kernel of the linear filters after it.

    The factor by which those filters scale the std of white noise present
    before them (1.0 when none follows); None for the other records. See the
    module doc.
    """
    noises = [_paper_type(rec) in _NOISES for rec in records]
    out: list[float | None] = [None] * len(records)
    composite = torch.ones(1, 1, dtype=torch.float64)
    first = noises.index(True) if any(noises) else len(records)
    for i in reversed(range(first, len(records))):
        if noises[i]:
            out[i] = float(torch.linalg.vector_norm(composite))
        elif (kernel := _kernel(records[i])) is not None:
            composite = _convolve(composite, kernel)
    return out


def type_levels(
    records: Sequence[Record], hr_size: tuple[int, int] | None = None
) -> dict[str, float | None]:
    """The level of each of :data:`PAPER_TYPES` (None when absent); see the module doc.

    ``hr_size`` is the HR ``(H, W)`` the records degraded.

    Raises:
        ValueError: a blur ran before a resize whose sizes the records do not
            give, and ``hr_size`` is missing; or a linear filter after a noise
            lacks a field its kernel needs.
    """
    factors = _downscale_factors(records, hr_size)
    attenuations = noise_attenuations(records)
    squares = {"blur": 0.0, "gaussian noise": 0.0, "poisson noise": 0.0}
    jpeg, ringing = None, False
    for rec, factor, attenuation in zip(records, factors, attenuations, strict=True):
        name = _paper_type(rec)
        if name == "ringing":
            ringing = True
        elif name == "jpeg":
            jpeg = _value(rec)
        elif name == "blur":
            value = _value(rec)
            if value > 0 and factor is None:
                raise ValueError(
                    f"record {rec.get('path', rec['op'])!r}: a blur ran before a resize "
                    "from a size the records do not give; pass hr_size (the HR (H, W))"
                )
            squares[name] += (value / factor) ** 2 if value > 0 else 0.0
        elif attenuation is not None:  # a noise
            squares[name] += (_value(rec) * attenuation) ** 2
    levels: dict[str, float | None] = {
        name: math.sqrt(total) if total > 0 else None for name, total in squares.items()
    }
    return {**levels, "jpeg": jpeg, "ringing": 1.0 if ringing else None}

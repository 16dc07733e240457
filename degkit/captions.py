"""Captions and flat columns derived from a sample's records (and only from them).

**Numeric caption** (the DePLSR paper's format). Every captioned record gives
one *fragment*, in record order, joined with ``","`` (no space). The paper's
five types use its exact templates:

=============== =============================================== ======================
type            fragment                                        from the record
=============== =============================================== ======================
blur            ``blur with sigma:{s:.1f}``                     ``blur`` (not sinc):
                                                                s = sqrt(sigma_x sigma_y)
gaussian noise  ``gaussian noise with sigma:{s:.1f}``           ``gaussian_noise.sigma``
                                                                (0-255 scale)
poisson noise   ``poisson noise with scale:{s:.1f}``            ``poisson_noise.scale``
jpeg            ``jpeg with quality factor:{q:.1f}``            ``jpeg.quality``
ringing         ``ringing and overshoot artifacts``             ``ringing``, or ``blur``
                                                                with a sinc kernel
=============== =============================================== ======================

For an anisotropic kernel ``s`` is the geometric mean of its two standard
deviations (the isotropic Gaussian with the same covariance determinant).
degkit's other types use templates of the same shape (see :data:`TYPES`):
motion blur, defocus blur, speckle noise, salt and pepper noise, haze,
rain, snow, low light.
Resizes, sharpening, quantisation and colour shifts give no fragment. A
sample with no fragment gets :data:`CLEAN_CAPTION`.

Multi-stage pipelines (two blurs, two JPEGs) give one fragment per op, in the
order the ops ran, which the paper's format allows; the parser reads them back
in that order.

**Fine captions**: one per paper type, in the order blur, gaussian noise,
poisson noise, jpeg, ringing. A type that ran once has its fragment; several
times, its fragments joined with ``","`` in order (ringing, which has no
number, is said once); an absent type has its *none* caption:
``blur with sigma:0.0``, ``gaussian noise with sigma:0.0``, ``poisson noise
with scale:0.0``, ``jpeg with quality factor:100.0`` (degkit's choice: the
paper's pipeline always compressed) and ``no ringing and overshoot artifacts``.

**Severity caption**: for each type present, in order of first appearance,
``"<light|medium|heavy> <phrase>"`` for its most severe occurrence, joined
with ``", "`` (``"clean"`` when none). Bins, on the value each op applied
(wherever it sits in the pipeline):

=================== ======================== ========= ========== =========
type                value                    light     medium     heavy
=================== ======================== ========= ========== =========
blur                sigma (px)               < 1       [1, 2)     >= 2
motion blur         length (px)              < 7       [7, 11)    >= 11
defocus blur        radius (px)              < 2       [2, 3)     >= 3
gaussian noise      sigma (0-255)            < 10      [10, 20)   >= 20
poisson noise       scale                    < 1       [1, 2)     >= 2
speckle noise       sigma (relative)         < 0.08    [0.08,     >= 0.14
                                                       0.14)
salt/pepper noise   amount (pixel fraction)  < 0.01    [0.01,     >= 0.03
                                                       0.03)
jpeg compression    quality                  >= 70     [50, 70)   < 50
ringing artifacts   sinc cutoff (rad/px)     >= 3pi/4  [pi/2,     < pi/2
                                                       3pi/4)
haze                beta (per unit depth)    < 1       [1, 2)     >= 2
rain                density (drops / pixel)  < 0.004   [0.004,    >= 0.008
                                                       0.008)
snow                density (flakes / px)    < 0.002   [0.002,    >= 0.004
                                                       0.004)
underexposure       midtone 0.5 -> b 0.5^g   >= 0.2    [0.1, 0.2) < 0.1
=================== ======================== ========= ========== =========

**Parser**: :func:`parse_caption` turns a numeric caption back into records,
exact within the printed precision: blur -> ``{"op": "blur", "kernel":
"iso", "sigma_x": s, "sigma_y": s}``, ringing -> ``{"op": "ringing"}``, the
others -> the op with the printed fields. Fields a caption does not print
(kernel sizes, noise seeds, ...) are not recovered.

**Flat columns** (:data:`FLAT_COLUMNS`, :func:`flat_columns`): fixed typed
columns for filtering datasets without parsing text. Each type's value
columns describe the *last* op of that type (the one closest to the output);
``*_count`` columns count them. An absent type has null value columns, a
count of 0 and False flags.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from degkit.ops.base import Record

__all__ = [
    "CaptionType",
    "TYPES",
    "PAPER_TYPES",
    "CLEAN_CAPTION",
    "SEVERITY_WORDS",
    "FLAT_COLUMNS",
    "captions_for",
    "degradation_caption",
    "fine_captions",
    "severity_caption",
    "parse_caption",
    "caption_type",
    "flat_columns",
]

CLEAN_CAPTION = "no degradation"
SEVERITY_WORDS = ("light", "medium", "heavy")
SEPARATOR = ","


@dataclasses.dataclass(frozen=True)
class CaptionType:
    """One captioned degradation type.

    Attributes:
        name: the type, e.g. ``"gaussian noise"``.
        template: fragment format with named fields, e.g. ``"... sigma:{sigma:.1f}"``.
        none: the fine caption when the type is absent.
        phrase: the severity caption's noun phrase.
        bins: the two thresholds between light, medium and heavy.
        heavier_when_lower: whether lower values are more severe (JPEG quality).
        values: record -> the template's fields.
        severity: record -> the value the bins apply to.
        to_record: parsed fields -> a record.
    """

    name: str
    template: str
    none: str
    phrase: str
    bins: tuple[float, float]
    heavier_when_lower: bool
    values: Callable[[Record], dict[str, float]]
    severity: Callable[[Record], float]
    to_record: Callable[[dict[str, float]], Record]

    def fragment(self, record: Record) -> str:
        """The caption fragment of one record of this type."""
        return self.template.format(**self.values(record))

    def level(self, record: Record) -> int:
        """0 (light), 1 (medium) or 2 (heavy)."""
        v = self.severity(record)
        lo, hi = self.bins
        if self.heavier_when_lower:
            return 0 if v >= lo else 1 if v >= hi else 2
        return 0 if v < lo else 1 if v < hi else 2

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Regex matching a whole fragment, one named group per field."""
        parts = re.split(r"\{(\w+):[^}]*\}", self.template)
        regex = re.escape(parts[0])
        for i in range(1, len(parts), 2):
            regex += rf"(?P<{parts[i]}>\d+(?:\.\d+)?)" + re.escape(parts[i + 1])
        return re.compile(regex)


def _field(name: str) -> Callable[[Record], float]:
    return lambda rec: float(rec[name])


def _blur_sigma(rec: Record) -> float:
    return math.sqrt(float(rec["sigma_x"]) * float(rec["sigma_y"]))


def _midtone(rec: Record) -> float:
    return float(rec["brightness"]) * 0.5 ** float(rec["gamma"])


def _single(op: str, field: str, key: str) -> Callable[[dict[str, float]], Record]:
    return lambda v: {"op": op, field: v[key]}


_RINGING_BINS = (3 * math.pi / 4, math.pi / 2)

TYPES: dict[str, CaptionType] = {
    t.name: t
    for t in (
        CaptionType(
            "blur",
            "blur with sigma:{sigma:.1f}",
            "blur with sigma:0.0",
            "blur",
            (1.0, 2.0),
            False,
            lambda rec: {"sigma": _blur_sigma(rec)},
            _blur_sigma,
            lambda v: {"op": "blur", "kernel": "iso", "sigma_x": v["sigma"], "sigma_y": v["sigma"]},
        ),
        CaptionType(
            "gaussian noise",
            "gaussian noise with sigma:{sigma:.1f}",
            "gaussian noise with sigma:0.0",
            "gaussian noise",
            (10.0, 20.0),
            False,
            lambda rec: {"sigma": float(rec["sigma"])},
            _field("sigma"),
            _single("gaussian_noise", "sigma", "sigma"),
        ),
        CaptionType(
            "poisson noise",
            "poisson noise with scale:{scale:.1f}",
            "poisson noise with scale:0.0",
            "poisson noise",
            (1.0, 2.0),
            False,
            lambda rec: {"scale": float(rec["scale"])},
            _field("scale"),
            _single("poisson_noise", "scale", "scale"),
        ),
        CaptionType(
            "jpeg",
            "jpeg with quality factor:{quality:.1f}",
            "jpeg with quality factor:100.0",
            "jpeg compression",
            (70.0, 50.0),
            True,
            lambda rec: {"quality": float(rec["quality"])},
            _field("quality"),
            _single("jpeg", "quality", "quality"),
        ),
        CaptionType(
            "ringing",
            "ringing and overshoot artifacts",
            "no ringing and overshoot artifacts",
            "ringing artifacts",
            _RINGING_BINS,
            True,
            lambda rec: {},
            _field("cutoff"),
            lambda v: {"op": "ringing"},
        ),
        CaptionType(
            "motion blur",
            "motion blur with length:{length:.1f}",
            "motion blur with length:0.0",
            "motion blur",
            (7.0, 11.0),
            False,
            lambda rec: {"length": float(rec["length"])},
            _field("length"),
            _single("motion_blur", "length", "length"),
        ),
        CaptionType(
            "defocus blur",
            "defocus blur with radius:{radius:.1f}",
            "defocus blur with radius:0.0",
            "defocus blur",
            (2.0, 3.0),
            False,
            lambda rec: {"radius": float(rec["radius"])},
            _field("radius"),
            _single("defocus_blur", "radius", "radius"),
        ),
        CaptionType(
            "speckle noise",
            "speckle noise with sigma:{sigma:.2f}",
            "speckle noise with sigma:0.00",
            "speckle noise",
            (0.08, 0.14),
            False,
            lambda rec: {"sigma": float(rec["sigma"])},
            _field("sigma"),
            _single("speckle_noise", "sigma", "sigma"),
        ),
        CaptionType(
            "salt and pepper noise",
            "salt and pepper noise with amount:{amount:.3f}",
            "salt and pepper noise with amount:0.000",
            "salt and pepper noise",
            (0.01, 0.03),
            False,
            lambda rec: {"amount": float(rec["amount"])},
            _field("amount"),
            _single("salt_pepper_noise", "amount", "amount"),
        ),
        CaptionType(
            "haze",
            "haze with beta:{beta:.2f}",
            "haze with beta:0.00",
            "haze",
            (1.0, 2.0),
            False,
            lambda rec: {"beta": float(rec["beta"])},
            _field("beta"),
            _single("haze", "beta", "beta"),
        ),
        CaptionType(
            "rain",
            "rain with density:{density:.4f}",
            "rain with density:0.0000",
            "rain",
            (0.004, 0.008),
            False,
            lambda rec: {"density": float(rec["density"])},
            _field("density"),
            _single("rain", "density", "density"),
        ),
        CaptionType(
            "snow",
            "snow with density:{density:.4f}",
            "snow with density:0.0000",
            "snow",
            (0.002, 0.004),
            False,
            lambda rec: {"density": float(rec["density"])},
            _field("density"),
            _single("snow", "density", "density"),
        ),
        CaptionType(
            "low light",
            "low light with gamma:{gamma:.1f} and brightness:{brightness:.2f}",
            "low light with gamma:1.0 and brightness:1.00",
            "underexposure",
            (0.2, 0.1),
            True,
            lambda rec: {"gamma": float(rec["gamma"]), "brightness": float(rec["brightness"])},
            _midtone,
            lambda v: {"op": "low_light", "gamma": v["gamma"], "brightness": v["brightness"]},
        ),
    )
}
"""Every captioned type, by name."""

PAPER_TYPES = ("blur", "gaussian noise", "poisson noise", "jpeg", "ringing")
"""The paper's five fine-caption types, in its order."""

_TYPE_OF_OP = {
    "gaussian_noise": "gaussian noise",
    "poisson_noise": "poisson noise",
    "jpeg": "jpeg",
    "ringing": "ringing",
    "motion_blur": "motion blur",
    "defocus_blur": "defocus blur",
    "speckle_noise": "speckle noise",
    "salt_pepper_noise": "salt and pepper noise",
    "low_light": "low light",
    "haze": "haze",
    "rain": "rain",
    "snow": "snow",
}


def caption_type(record: Record) -> CaptionType | None:
    """The captioned type of a record, or None for ops without a caption."""
    op = record.get("op")
    if op == "blur":
        return TYPES["ringing" if record.get("kernel") == "sinc" else "blur"]
    name = _TYPE_OF_OP.get(op)
    return TYPES[name] if name is not None else None


def _typed(records: Sequence[Record]) -> list[tuple[CaptionType, Record]]:
    out = []
    for rec in records:
        kind = caption_type(rec)
        if kind is not None:
            out.append((kind, rec))
    return out


def degradation_caption(records: Sequence[Record]) -> str:
    """The numeric caption: one fragment per captioned record, joined with ``","``."""
    fragments = [kind.fragment(rec) for kind, rec in _typed(records)]
    return SEPARATOR.join(fragments) if fragments else CLEAN_CAPTION


def fine_captions(records: Sequence[Record]) -> list[str]:
    """The five per-type captions (blur, gaussian noise, poisson noise, jpeg, ringing)."""
    typed = _typed(records)
    out = []
    for name in PAPER_TYPES:
        kind = TYPES[name]
        fragments = [kind.fragment(rec) for k, rec in typed if k is kind]
        if not fragments:
            out.append(kind.none)
        elif name == "ringing":
            out.append(fragments[0])
        else:
            out.append(SEPARATOR.join(fragments))
    return out


def severity_caption(records: Sequence[Record]) -> str:
    """``"<level> <phrase>"`` per type present (most severe occurrence), or ``"clean"``."""
    worst: dict[str, int] = {}
    for kind, rec in _typed(records):
        worst[kind.name] = max(worst.get(kind.name, 0), kind.level(rec))
    if not worst:
        return "clean"
    return ", ".join(f"{SEVERITY_WORDS[lvl]} {TYPES[name].phrase}" for name, lvl in worst.items())


def captions_for(records: Sequence[Record]) -> dict[str, Any]:
    """``degradation_caption``, ``fine_captions`` (5 strings) and ``severity_caption``."""
    return {
        "degradation_caption": degradation_caption(records),
        "fine_captions": fine_captions(records),
        "severity_caption": severity_caption(records),
    }


_NO_RECORD = {TYPES["ringing"].none, CLEAN_CAPTION}


def parse_caption(text: str) -> list[Record]:
    """Records from a numeric caption (or a fine caption), in order.

    ``"no ringing and overshoot artifacts"`` and :data:`CLEAN_CAPTION` give no
    record. Raises ``ValueError`` naming a fragment that matches no template.
    """
    records: list[Record] = []
    for raw in text.split(SEPARATOR):
        fragment = raw.strip()
        if fragment in _NO_RECORD:
            continue
        for kind in TYPES.values():
            match = kind.pattern.fullmatch(fragment)
            if match:
                records.append(kind.to_record({k: float(v) for k, v in match.groupdict().items()}))
                break
        else:
            known = "; ".join(k.template for k in TYPES.values())
            raise ValueError(f"caption fragment {fragment!r} matches no template ({known})")
    return records


# -- flat columns --------------------------------------------------------------
FLAT_COLUMNS: dict[str, str] = {
    "blur_count": "int64",
    "blur_kernel": "string",
    "blur_sigma": "float64",
    "blur_sigma_x": "float64",
    "blur_sigma_y": "float64",
    "blur_kernel_size": "int64",
    "motion_blur_length": "float64",
    "motion_blur_angle": "float64",
    "defocus_blur_radius": "float64",
    "noise_count": "int64",
    "noise_kind": "string",
    "noise_level": "float64",
    "noise_gray": "bool",
    "jpeg_count": "int64",
    "jpeg_quality": "float64",
    "ringing": "bool",
    "ringing_cutoff": "float64",
    "low_light_gamma": "float64",
    "low_light_brightness": "float64",
    "haze_beta": "float64",
    "haze_airlight": "float64",
    "rain_density": "float64",
    "rain_length": "float64",
    "snow_density": "float64",
    "snow_size": "float64",
    "resize_count": "int64",
    "resize_scale": "float64",
    "final_resize_mode": "string",
    "usm": "bool",
    "quantize_bits": "int64",
    "color_shift": "bool",
}
"""Flat column name -> dtype ("float64", "int64", "string" or "bool").

blur_*: the last Gaussian-family ``blur`` (not sinc); blur_sigma is
sqrt(sigma_x sigma_y). noise_kind: gaussian, poisson, speckle or salt_pepper;
noise_level: its sigma (0-255), scale, sigma (relative) or amount;
noise_gray: that op's gray flag (False for salt_pepper). ringing: any sinc
(``ringing`` or a sinc ``blur``) ran; ringing_cutoff: the last one's.
resize_scale: the last random ``resize``'s scale; final_resize_mode: the
final resize's interpolation. usm / color_shift: the op ran. quantize_bits:
the last quantisation's bits.
"""

_NOISE_LEVEL = {
    "gaussian_noise": ("gaussian", "sigma"),
    "poisson_noise": ("poisson", "scale"),
    "speckle_noise": ("speckle", "sigma"),
    "salt_pepper_noise": ("salt_pepper", "amount"),
}


def flat_columns(records: Sequence[Record]) -> dict[str, Any]:
    """One value per :data:`FLAT_COLUMNS` column (None where a type is absent)."""
    row: dict[str, Any] = {
        name: (0 if dtype == "int64" and name.endswith("_count") else None)
        for name, dtype in FLAT_COLUMNS.items()
    }
    for flag in ("ringing", "usm", "color_shift", "noise_gray"):
        row[flag] = False
    for rec in records:
        op = rec.get("op")
        kind = caption_type(rec)
        if kind is TYPES["blur"]:
            row["blur_count"] += 1
            row["blur_kernel"] = rec["kernel"]
            row["blur_sigma"] = _blur_sigma(rec)
            row["blur_sigma_x"], row["blur_sigma_y"] = float(rec["sigma_x"]), float(rec["sigma_y"])
            row["blur_kernel_size"] = int(rec["kernel_size"])
        elif kind is TYPES["ringing"]:
            row["ringing"] = True
            row["ringing_cutoff"] = float(rec["cutoff"])
        elif op == "motion_blur":
            row["motion_blur_length"], row["motion_blur_angle"] = (
                float(rec["length"]),
                float(rec["angle"]),
            )
        elif op == "defocus_blur":
            row["defocus_blur_radius"] = float(rec["radius"])
        elif op in _NOISE_LEVEL:
            kind_name, field = _NOISE_LEVEL[op]
            row["noise_count"] += 1
            row["noise_kind"] = kind_name
            row["noise_level"] = float(rec[field])
            row["noise_gray"] = bool(rec.get("gray", False))
        elif op == "jpeg":
            row["jpeg_count"] += 1
            row["jpeg_quality"] = float(rec["quality"])
        elif op == "low_light":
            row["low_light_gamma"] = float(rec["gamma"])
            row["low_light_brightness"] = float(rec["brightness"])
        elif op == "haze":
            row["haze_beta"], row["haze_airlight"] = float(rec["beta"]), float(rec["airlight"])
        elif op == "rain":
            row["rain_density"], row["rain_length"] = float(rec["density"]), float(rec["length"])
        elif op == "snow":
            row["snow_density"], row["snow_size"] = float(rec["density"]), float(rec["size"])
        elif op == "resize":
            row["resize_count"] += 1
            row["resize_scale"] = float(rec["scale"])
        elif op == "final_resize":
            row["final_resize_mode"] = rec["mode"]
        elif op in ("usm", "color_shift"):
            row[op] = True
        elif op == "quantize":
            row["quantize_bits"] = int(rec["bits"])
    return row

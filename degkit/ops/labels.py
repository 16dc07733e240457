"""What an op tells captions and datasets about itself.

Every registered op declares, next to its sampler and kernel:

* ``caption_types``: the :class:`CaptionType` s its records can have (the
  caption fragment's template, the fine caption when the type is absent, the
  severity phrase and the two bins between light, medium and heavy); empty for
  ops that give no caption (resizes, sharpening, quantisation, colour shifts);
* ``flat_columns``: the :class:`FlatColumn` s its records fill in a dataset
  row, each with a one-line description (the dataset card prints it).

:mod:`degkit.captions` and the dataset writer read these declarations and
nothing else, so adding an op adds its captions and columns.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["CaptionType", "FlatColumn", "FLAT_DTYPES", "field_value"]

Record: TypeAlias = dict[str, Any]
"""One sample's description by one op: ``{"op": name, param: value, ...}``."""

#: Column kinds: numbers, flags, free text, and ``class_label`` (a fixed set of
#: strings stored as a ``datasets.ClassLabel`` integer code).
FLAT_DTYPES = ("float64", "int64", "bool", "string", "class_label")


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

    def level_fragment(self, level: float | None) -> str:
        """The type's fine caption: :attr:`none` when absent (None), else the
        template printing ``level`` in its one field (a template without a field,
        ringing, is printed as is).

        A nonzero level that would print as zero at the template's precision gets
        the decimals its first significant digit needs (0.027 -> ``0.03``), so a
        present type never reads like an absent one.
        """
        if level is None:
            return self.none
        fields = re.findall(r"\{\w+:\.(\d+)f\}", self.template)
        if not fields:
            return self.template
        if len(fields) > 1:
            raise TypeError(f"caption type {self.name!r}: a level fills one field, not {fields}")
        decimals = int(fields[0])
        if level != 0 and float(f"{level:.{decimals}f}") == 0:
            decimals = -math.floor(math.log10(abs(level)))
        return re.sub(r"\{\w+:[^}]*\}", f"{level:.{decimals}f}", self.template)

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

    @classmethod
    def single(
        cls,
        name: str,
        op: str,
        field: str,
        precision: int,
        bins: tuple[float, float],
        phrase: str | None = None,
        heavier_when_lower: bool = False,
        none: float = 0.0,
        label: str | None = None,
    ) -> CaptionType:
        """A type printing one record field: ``"<name> with <label>:<value>"``.

        ``label`` (default: the field's name) is the word the caption prints;
        ``none`` the value of the fine caption when the type is absent.
        """
        label = label or field
        return cls(
            name=name,
            template=f"{name} with {label}:{{{field}:.{precision}f}}",
            none=f"{name} with {label}:{none:.{precision}f}",
            phrase=phrase or name,
            bins=bins,
            heavier_when_lower=heavier_when_lower,
            values=lambda rec: {field: float(rec[field])},
            severity=field_value(field),
            to_record=lambda v: {"op": op, field: v[field]},
        )


def field_value(name: str) -> Callable[[Record], float]:
    """``record -> float(record[name])``."""
    return lambda rec: float(rec[name])


@dataclasses.dataclass(frozen=True)
class FlatColumn:
    """One typed dataset column filled from records.

    Attributes:
        name: the column name (unique across ops; ops sharing a column, like
            the noise ops' ``noise_level``, declare equal dtype, doc and labels).
        dtype: one of :data:`FLAT_DTYPES`.
        doc: one line for the dataset card.
        value: record -> the column's value, or None when this record leaves
            the column alone. A row keeps the last value given (the op closest
            to the output); ``count`` columns instead count the records giving one.
            None for a column computed from all of a sample's records at once
            (the type levels of :mod:`degkit.levels`).
        labels: the fixed values of a ``class_label`` column, in code order.
        count: the column counts records (int64, 0 when none).
    """

    name: str
    dtype: str
    doc: str
    value: Callable[[Record], Any] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    labels: tuple[str, ...] = ()
    count: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in FLAT_DTYPES:
            raise TypeError(f"flat column {self.name!r}: dtype must be one of {FLAT_DTYPES}")
        if (self.dtype == "class_label") != bool(self.labels):
            raise TypeError(f"flat column {self.name!r}: labels go with dtype class_label only")
        if self.count and self.dtype != "int64":
            raise TypeError(f"flat column {self.name!r}: a count column is int64")
        if not self.doc or "\n" in self.doc:
            raise TypeError(f"flat column {self.name!r}: needs a one-line doc")

    @property
    def empty(self) -> Any:
        """The value of a row no record filled: 0 for counts, False for flags, else None."""
        return 0 if self.count else False if self.dtype == "bool" else None

    def encode(self, value: Any) -> Any:
        """A record's value as stored (a label becomes its code)."""
        if self.dtype == "class_label":
            return self.labels.index(value)
        return {"float64": float, "int64": int, "bool": bool, "string": str}[self.dtype](value)

    def spec(self) -> dict[str, Any]:
        """JSON form kept in a build's settings: dtype, doc and (class labels) labels."""
        out: dict[str, Any] = {"dtype": self.dtype, "doc": self.doc}
        if self.labels:
            out["labels"] = list(self.labels)
        return out

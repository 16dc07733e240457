"""The operator contract shared by every degradation op.

An op is a small dataclass whose fields are its *configuration* (the ranges
and probabilities its parameters are drawn from) and three separate methods:

* ``sample(rng, n) -> params``: per-sample parameters, a dict of tensors with a
  leading batch dimension, drawn from each sample's own stream;
* ``apply(x, params) -> x``: pure and batched; sample ``i`` uses row ``i`` of
  every parameter, so kernel sizes and output sizes may differ per sample;
* ``describe(params) -> records``: one JSON-ready dict per sample, and its
  inverse ``params_from_records(records) -> params`` for replay.

Images are float32 ``N x C x H x W`` tensors in ``[0, 1]`` on any device. After
an op that gives samples different sizes (a per-sample resize) a batch is a
*ragged* list of ``C x H x W`` tensors; :meth:`Op.apply` runs an op's batched
kernel once per group of equal-shape samples and hands back a tensor again as
soon as all shapes agree. Off the CPU, ops that implement
:meth:`Op._apply_canvas` instead run a ragged batch once, on a
:class:`~degkit.ops.canvas.Canvas` (one padded tensor with each sample's size),
and pipelines pass canvases from op to op (:meth:`Op.apply_batched`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch

from degkit.ops.canvas import Canvas, canvas_enabled
from degkit.ops.labels import CaptionType, FlatColumn, Record
from degkit.rng import BatchStreams

__all__ = [
    "Images",
    "Params",
    "Record",
    "Op",
    "OpError",
    "register",
    "create_op",
    "op_class",
    "registered_ops",
    "batch_size",
    "group_by_shape",
    "collate",
    "take",
    "check_range",
    "check_prob",
    "as_pair",
    "image_sizes",
    "map_groups",
    "SEED_LIMITS",
]

#: Valid interval of a recorded noise-field seed (a signed 64-bit integer).
SEED_LIMITS = (-(2.0**63), 2.0**63)

Images: TypeAlias = torch.Tensor | list[torch.Tensor]
Params: TypeAlias = dict[str, torch.Tensor]

_REGISTRY: dict[str, type[Op]] = {}


class OpError(ValueError):
    """An invalid op configuration or parameter; the message names it."""


# -- ragged batches ------------------------------------------------------
def batch_size(x: Images | Canvas) -> int:
    """Number of samples in a batch (tensor, ragged list or canvas)."""
    return x.shape[0] if isinstance(x, torch.Tensor) else len(x)


def group_by_shape(x: Images) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield ``(positions, stacked batch)`` for each group of equal-shape samples."""
    if isinstance(x, torch.Tensor):
        yield list(range(x.shape[0])), x
        return
    groups: dict[tuple[int, ...], list[int]] = {}
    for pos, img in enumerate(x):
        groups.setdefault(tuple(img.shape), []).append(pos)
    for positions in groups.values():
        yield positions, collate([x[p] for p in positions])


def image_sizes(x: Images) -> torch.Tensor:
    """``N x 2`` int64 tensor of each sample's (height, width)."""
    if isinstance(x, torch.Tensor):
        return torch.tensor([list(x.shape[-2:])] * x.shape[0], dtype=torch.int64)
    return torch.tensor([list(img.shape[-2:]) for img in x], dtype=torch.int64)


def map_groups(
    x: torch.Tensor,
    keys: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """Run ``fn(x_group, positions, key)`` once per distinct key; reassemble in batch order.

    ``positions`` (CPU int64) index the group's rows in the batch, e.g. to
    ``take`` its parameters.
    """
    keys_list = [int(k) for k in keys.tolist()]
    distinct = sorted(set(keys_list))
    if len(distinct) == 1:
        return fn(x, torch.arange(x.shape[0]), distinct[0])
    out: torch.Tensor | None = None
    for key in distinct:
        positions = torch.tensor([i for i, k in enumerate(keys_list) if k == key])
        index = positions.to(x.device, non_blocking=True)
        y = fn(x.index_select(0, index), positions, key)
        if out is None:
            out = y.new_empty((x.shape[0], *y.shape[1:]))
        out.index_copy_(0, index, y)
    return out


def collate(images: Sequence[torch.Tensor]) -> Images:
    """Stack per-sample ``C x H x W`` tensors when their shapes agree, else keep a list.

    A single image becomes a batch view of itself, not a copy (ops never write
    to their input).
    """
    if len(images) == 1:
        return images[0].unsqueeze(0)
    if len({tuple(img.shape) for img in images}) <= 1 and len(images) > 0:
        return torch.stack(list(images))
    return list(images)


def take(params: Params, positions: Sequence[int]) -> Params:
    """Rows ``positions`` of every parameter."""
    index = torch.as_tensor(list(positions), dtype=torch.long)
    return {k: v.index_select(0, index) for k, v in params.items()}


# -- configuration checks -------------------------------------------------
def as_pair(name: str, value: Any) -> tuple[float, float]:
    """Read a ``(low, high)`` range, or a single number meaning ``(v, v)``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), float(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        lo, hi = value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
            return float(lo), float(hi)
    raise OpError(f"{name} must be a number or a [low, high] pair of numbers, got {value!r}")


def check_range(
    name: str, value: Any, lo: float = -math.inf, hi: float = math.inf
) -> tuple[float, float]:
    """Validate a ``(low, high)`` range lying inside ``[lo, hi]``; return it as floats."""
    a, b = as_pair(name, value)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise OpError(f"{name} must be finite, got {value!r}")
    if a > b:
        raise OpError(f"{name} must have low <= high, got [{a:g}, {b:g}]")
    if a < lo or b > hi:
        raise OpError(f"{name} must lie in [{lo:g}, {hi:g}], got [{a:g}, {b:g}]")
    return a, b


def check_prob(name: str, value: Any) -> float:
    """Validate a probability."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise OpError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _values_to_tensor(op: str, key: str, values: list) -> torch.Tensor:
    """Recorded values -> bool, int64 or float64 tensor (float64 keeps JSON floats exact)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return torch.from_numpy(arr.copy())
    if arr.dtype.kind in "iu":
        return torch.from_numpy(arr.astype(np.int64))
    if arr.dtype.kind == "f":
        return torch.from_numpy(arr.astype(np.float64))
    raise OpError(f"{op}: recorded {key!r} must be numbers or booleans, got {values[0]!r}")


# -- the op contract --------------------------------------------------------
class Op:
    """Base class of degradation ops (subclasses are dataclasses).

    Subclasses set ``name``, implement :meth:`sample` and :meth:`_apply`, and
    declare every parameter ``_apply`` reads: ``param_limits`` (valid interval
    of each numeric parameter), ``categories`` (labels of categorical
    parameters stored as integer codes) and ``optional_params`` (parameters
    that may be absent, with their intervals). A parameter outside these is
    rejected, so records hold exactly what changes the pixels. ``version`` is
    the op's semantic version: raise it whenever what ``apply`` computes from
    the same parameters, or what ``sample`` draws from the same
    configuration, changes (recipe hashes include it). It also declares
    ``caption_types`` and ``flat_columns`` (see :mod:`degkit.ops.labels`; a
    registered op must declare both, empty where it has none).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    version: ClassVar[int] = 1
    param_limits: ClassVar[dict[str, tuple[float, float]]] = {}
    categories: ClassVar[dict[str, tuple[str, ...]]] = {}
    optional_params: ClassVar[dict[str, tuple[float, float]]] = {}
    caption_types: ClassVar[tuple[CaptionType, ...]]
    flat_columns: ClassVar[tuple[FlatColumn, ...]]

    @classmethod
    def caption_type(cls, record: Record) -> CaptionType | None:
        """The caption type of one of this op's records (its first declared one, if any)."""
        return cls.caption_types[0] if cls.caption_types else None

    @classmethod
    def output_size(cls, record: Record, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """The ``(H, W)`` one of this op's records makes of an input of ``size``.

        ``size`` None means unknown; the answer is then None unless the record
        alone fixes it. Ops that change sizes (family ``"resize"``) override
        this; every other op keeps the size.
        """
        return size

    @classmethod
    def linear_kernel(cls, record: Record) -> torch.Tensor | None:
        """The 2-D kernel (``k x k``) one of this op's records convolves each channel with.

        None unless the op is a linear shift-invariant filter (the blur family
        overrides this); borders and the final clamp to ``[0, 1]`` are not part of it.
        """
        return None

    # -- to implement -----------------------------------------------------
    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        """Draw per-sample parameters for ``n`` samples from their streams.

        ``context`` carries per-sample facts a pipeline knows and an op may
        need, e.g. ``target_size`` (``N x 2``: the LR height and width).
        """
        raise NotImplementedError

    def _apply(self, x: torch.Tensor, params: Params) -> Images | Canvas:
        """Apply to a batch of equal-shape samples (parameters already checked).

        An op that gives samples different sizes may return a :class:`Canvas`
        when :func:`~degkit.ops.canvas.canvas_enabled` says so.
        """
        raise NotImplementedError

    def _apply_canvas(self, x: Canvas, params: Params) -> torch.Tensor | Canvas:
        """Apply to a ragged batch on a canvas in one pass; ops that can override this."""
        raise NotImplementedError

    @classmethod
    def supports_canvas(cls) -> bool:
        """Whether the op runs ragged batches as canvases (see :mod:`degkit.ops.canvas`)."""
        return cls._apply_canvas is not Op._apply_canvas

    # -- shared behaviour ---------------------------------------------------
    def apply_batched(self, x: Images | Canvas, params: Params) -> Images | Canvas:
        """:meth:`apply` that keeps ragged batches on canvases where it can (for pipelines)."""
        n = batch_size(x)
        self.check_params(params, n)
        if isinstance(x, Canvas):
            if self.supports_canvas():
                return self._apply_canvas(x, params)
            x = x.images()
        if isinstance(x, torch.Tensor):
            if x.ndim != 4:
                raise OpError(f"{self.name}: images must be N x C x H x W, got {tuple(x.shape)}")
            return self._apply(x, params)
        if self.supports_canvas() and canvas_enabled(x[0].device):
            return self._apply_canvas(Canvas.from_images(x), params)
        out: list[torch.Tensor | None] = [None] * n
        for positions, xb in group_by_shape(x):
            yb = self._apply(xb, take(params, positions))
            ys = yb.views() if isinstance(yb, Canvas) else yb
            for p, y in zip(positions, ys, strict=True):
                out[p] = y
        return collate(out)  # type: ignore[arg-type]

    def apply(self, x: Images | Canvas, params: Params) -> Images:
        """Apply per-sample ``params`` to a batch; pure and deterministic."""
        out = self.apply_batched(x, params)
        return out.images() if isinstance(out, Canvas) else out

    def __call__(
        self, x: Images, rng: BatchStreams, context: Params | None = None
    ) -> tuple[Images, list[Record]]:
        """Sample, apply and describe in one go."""
        params = self.sample(rng, batch_size(x), context)
        return self.apply(x, params), self.describe(params)

    @classmethod
    def param_intervals(cls) -> dict[str, tuple[float, float]]:
        """Valid interval of every required parameter (category codes included)."""
        codes = {key: (0, len(labels) - 1) for key, labels in cls.categories.items()}
        return {**codes, **cls.param_limits}

    def check_params(self, params: Params, n: int) -> None:
        """Raise :class:`OpError` naming the first missing, unknown or invalid parameter."""
        required = self.param_intervals()
        unknown = sorted(set(params) - set(required) - set(self.optional_params))
        if unknown:
            known = sorted({*required, *self.optional_params})
            raise OpError(f"{self.name}: unknown parameter(s) {unknown}; known: {known}")
        for key in required:
            if key not in params:
                raise OpError(f"{self.name}: missing parameter {key!r}")
        for key, (lo, hi) in {**required, **self.optional_params}.items():
            if key in params:
                self._check_values(key, params[key], n, lo, hi)

    def _check_values(self, key: str, value: torch.Tensor, n: int, lo: float, hi: float) -> None:
        if not isinstance(value, torch.Tensor) or value.shape[:1] != (n,):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise OpError(
                f"{self.name}: parameter {key!r} must have one row per sample ({n}), got {shape}"
            )
        v = value.detach().to("cpu", torch.float64).numpy().reshape(n, -1)
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if bad.any():
            i = int(bad.any(axis=1).argmax())
            raise OpError(
                f"{self.name}: parameter {key!r} must be in [{lo:g}, {hi:g}], "
                f"got {v[i].tolist()} at sample {i}"
            )

    def describe(self, params: Params) -> list[Record]:
        """One record per sample: ``{"op": name, param: python value, ...}``."""
        columns: dict[str, list[Any]] = {}
        for key, value in params.items():
            items = value.tolist()
            if key in self.categories:
                items = [self.categories[key][int(item)] for item in items]
            columns[key] = items
        n = len(next(iter(columns.values()))) if columns else 0
        return [
            {"op": self.name, **{key: column[i] for key, column in columns.items()}}
            for i in range(n)
        ]

    @classmethod
    def params_from_records(cls, records: Sequence[Record]) -> Params:
        """Rebuild the parameters that :meth:`describe` recorded (for replay)."""
        if not records:
            return {}
        for rec in records:
            if rec.get("op") != cls.name:
                raise OpError(f"{cls.name}: cannot replay a record of op {rec.get('op')!r}")
        params: Params = {}
        for key in records[0]:
            if key in ("op", "path"):
                continue
            lacking = [i for i, rec in enumerate(records) if key not in rec]
            if lacking:
                raise OpError(f"{cls.name}: record {lacking[0]} has no {key!r}")
            values = [rec[key] for rec in records]
            if key in cls.categories:
                labels = cls.categories[key]
                bad = [v for v in values if v not in labels]
                if bad:
                    raise OpError(f"{cls.name}: {key!r} must be one of {labels}, got {bad[0]!r}")
                params[key] = torch.tensor([labels.index(v) for v in values])
            else:
                params[key] = _values_to_tensor(cls.name, key, values)
        return params

    def replay(self, x: Images, records: Sequence[Record]) -> Images:
        """Apply exactly what ``records`` describe."""
        return self.apply(x, self.params_from_records(records))

    @classmethod
    def config_fields(cls) -> list[tuple[str, Any]]:
        """``(field name, default)`` of the configuration (for ``degkit ops``)."""
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            out.append((f.name, default))
        return out


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    for attribute in ("caption_types", "flat_columns"):
        if not isinstance(getattr(cls, attribute, None), tuple):
            raise TypeError(
                f"op {cls.name!r} must declare {attribute} (a tuple, empty if it has none)"
            )
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"op name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_ops() -> dict[str, type[Op]]:
    """All registered ops by name, sorted."""
    return dict(sorted(_REGISTRY.items()))


def op_class(name: str) -> type[Op]:
    """The op class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise OpError(f"unknown op {name!r}; known ops: {known}") from None


def create_op(name: str, **config: Any) -> Op:
    """Build a registered op from its name and configuration."""
    cls = op_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config) - fields)
    if unknown:
        raise OpError(f"{name}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    return cls(**config)

"""Pipelines: ops composed into a tree that degrades HR batches and records every step.

A pipeline is a tree of nodes:

* :class:`OpNode` runs one op (a bare :class:`~degkit.ops.base.Op` anywhere in a
  tree is wrapped in one);
* :class:`Sequential` runs its children in order;
* :class:`Stage` is a named :class:`Sequential`: its name prefixes the paths of
  everything inside it (``stage1/blur``);
* :class:`OneOf` runs one child per sample, picked with the given weights;
* :class:`Maybe` runs its child for a sample with probability ``p``;
* :class:`Shuffle` runs all its children in a random order per sample (BSRGAN),
  optionally constrained: some children at fixed positions (``fixed``), some
  before others (``before``); every allowed order is equally likely.

**Paths and randomness.** Every op has a *path*: the names of the stages
around it and its own name (the op name unless given one), e.g.
``stage2/gaussian_noise``. An op draws its parameters from
``BatchStreams(seed, indices).child(path)``, and a ``OneOf``, ``Maybe`` or
``Shuffle`` draws its decision from the stream at its own path (its name
joined to the enclosing stage's path; defaults ``one_of``, ``maybe_<child>``,
``shuffle``). Only stages add path components, so what a sample draws depends
on (seed, index, path) alone: never on the batch, the branch other samples
take, or edits to other branches. Paths must be unique in a pipeline (give
duplicates a ``name``).

**Records.** Running a pipeline first *plans*: walks the tree, draws every
decision and every op's parameters, and writes per sample the ordered records
of the ops it will run (``{"op": name, "path": path, <params>}``; a skipped
op leaves no record). Then it *executes* the records: every op runs once per
group of samples whose next record is that op, batched (samples gathered,
applied, scattered back). Replay executes recorded records the same way, so a
replay reproduces the LR exactly, and :meth:`Pipeline.plan` gives the records
without touching any image (a dry run).

**Target size.** Ops see ``context = {"target_size": N x 2}`` (``H // scale``,
``W // scale``), used by ``final_resize`` and ``resize(relative_to="target")``.
A sample whose last resize-family op is not ``final_resize`` (or that has
none while its HR size differs from the target) gets an extra bicubic
``final_resize`` at path ``auto_final_resize``, recorded like any op.

**Profiling.** Inside ``with op_cpu_seconds() as spent:`` every op run adds the
process CPU seconds it took (all threads) to ``spent[path]``, which shows
where a recipe spends its time (``benchmarks/build_throughput.py`` prints it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import numbers
import time
from collections.abc import Iterator, Mapping, Sequence

import torch

from degkit.ops.base import (
    Images,
    Op,
    Params,
    Record,
    check_prob,
    collate,
    image_sizes,
    op_class,
    take,
)
from degkit.ops.canvas import Canvas, concat
from degkit.ops.resize import FinalResize
from degkit.rng import BatchStreams

__all__ = [
    "Node",
    "OpNode",
    "Sequential",
    "Stage",
    "OneOf",
    "Maybe",
    "Shuffle",
    "Pipeline",
    "PipelineResult",
    "PipelineError",
    "AUTO_FINAL_RESIZE",
    "MAX_SHUFFLE_CHILDREN",
    "op_cpu_seconds",
]

AUTO_FINAL_RESIZE = "auto_final_resize"
MAX_SHUFFLE_CHILDREN = 8


class PipelineError(ValueError):
    """An invalid pipeline, or records that do not fit the pipeline."""


# The dicts of the op_cpu_seconds() blocks now open.
_OP_CLOCKS: list[dict[str, float]] = []


@contextlib.contextmanager
def op_cpu_seconds() -> Iterator[dict[str, float]]:
    """Within the block, add the process CPU seconds of every op run to ``spent[path]``.

    Process CPU time counts every thread an op uses, so this is the op's cost,
    not its wall time; measure one pipeline at a time per process.
    """
    spent: dict[str, float] = {}
    _OP_CLOCKS.append(spent)
    try:
        yield spent
    finally:
        _OP_CLOCKS.remove(spent)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name:
        raise PipelineError(f"{kind} name must be a non-empty string without '/', got {name!r}")
    return name


# -- execution state -----------------------------------------------------------
class _Execution:
    """Per-sample images and the records still to apply (consumed in order).

    The last op's output batch is kept: when the next op takes exactly the
    same samples, still untouched, it gets that tensor instead of a restacked
    copy (stacking a batch of HR crops per op costs as much as a cheap op).
    Samples that an op left on a :class:`~degkit.ops.canvas.Canvas` (a ragged
    batch) remember their canvas and row, so the next op gets them as rows
    of canvases again, not as one tensor per sample.
    """

    def __init__(self, hr: Images, records: list[list[Record]]) -> None:
        self.images = _per_sample(hr)
        self.records = records
        self.cursor = [0] * len(self.images)
        self.rows: list[tuple[Canvas, int] | None] = [None] * len(self.images)
        self._last: tuple[list[int], torch.Tensor | Canvas, list[torch.Tensor]] | None = None
        if isinstance(hr, torch.Tensor):  # ops never write to their input
            self._last = (list(range(len(self.images))), hr, list(self.images))

    def gather(self, positions: list[int]) -> Images | Canvas:
        """The images at ``positions`` as one batch (a list or canvas when ragged)."""
        if self._last is not None:
            last_positions, batch, views = self._last
            if last_positions == positions and all(
                self.images[i] is view for i, view in zip(positions, views, strict=True)
            ):
                return batch
        rows = [self.rows[i] for i in positions]
        if all(row is not None for row in rows):
            return self._gather_canvas_rows(rows)  # type: ignore[arg-type]
        return collate([self.images[i] for i in positions])

    @staticmethod
    def _gather_canvas_rows(rows: list[tuple[Canvas, int]]) -> Canvas:
        """Rows of one or more canvases as one canvas, in the order given."""
        canvases: dict[int, tuple[Canvas, list[int], list[int]]] = {}
        for k, (canvas, row) in enumerate(rows):
            _, picked, order = canvases.setdefault(id(canvas), (canvas, [], []))
            picked.append(row)
            order.append(k)
        if len(canvases) == 1:
            ((canvas, picked, _),) = canvases.values()
            return canvas if picked == list(range(len(canvas))) else canvas.select(picked)
        merged = concat([canvas.select(picked) for canvas, picked, _ in canvases.values()])
        order = [k for _, _, ks in canvases.values() for k in ks]
        return merged.select(sorted(range(len(order)), key=order.__getitem__))

    def scatter(self, positions: list[int], out: Images | Canvas) -> None:
        """Store an op's output for the samples at ``positions``."""
        views = out.views() if isinstance(out, Canvas) else list(out)
        for k, (i, img) in enumerate(zip(positions, views, strict=True)):
            self.images[i] = img
            self.rows[i] = (out, k) if isinstance(out, Canvas) else None
        keep = isinstance(out, torch.Tensor | Canvas)
        self._last = (positions, out, views) if keep else None

    def head_path(self, i: int) -> str | None:
        recs, c = self.records[i], self.cursor[i]
        return recs[c].get("path") if c < len(recs) else None

    def waiting_at(self, paths: set[str] | str) -> list[int]:
        """Positions of samples whose next record is at one of ``paths``."""
        wanted = {paths} if isinstance(paths, str) else paths
        return [i for i in range(len(self.images)) if self.head_path(i) in wanted]

    def pop(self, i: int) -> Record:
        rec = self.records[i][self.cursor[i]]
        self.cursor[i] += 1
        return rec


def _params_record(record: Record) -> Record:
    """The op's own record (``op`` and parameters) without the pipeline's ``path``."""
    return {k: v for k, v in record.items() if k != "path"}


# -- nodes -------------------------------------------------------------------------
class Node:
    """A pipeline tree node. ``name`` is its path component or stream name."""

    name: str
    items: Sequence[Node] = ()

    def children(self) -> Sequence[Node]:
        """Direct children (``items`` for the composite nodes)."""
        return self.items

    def stream_paths(self, prefix: str) -> Iterator[tuple[str, Node]]:
        """``(path, node)`` of every node below (and at) this one that draws randomness."""
        for child in self.children():
            yield from child.stream_paths(self._child_prefix(prefix))

    def op_paths(self, prefix: str) -> Iterator[tuple[str, Op]]:
        """``(path, op)`` of every op in this subtree."""
        for child in self.children():
            yield from child.op_paths(self._child_prefix(prefix))

    def _child_prefix(self, prefix: str) -> str:
        return prefix

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        """Append to ``out[i]`` the records sample ``i`` of ``rng`` will produce here."""
        raise NotImplementedError

    def execute(self, state: _Execution, prefix: str) -> None:
        """Apply the records waiting at this subtree's ops, in tree order."""
        for child in self.children():
            child.execute(state, self._child_prefix(prefix))


def _as_node(item: Node | Op) -> Node:
    if isinstance(item, Node):
        return item
    if isinstance(item, Op):
        return OpNode(item)
    raise PipelineError(f"pipeline children must be ops or nodes, got {type(item).__name__}")


class OpNode(Node):
    """One op at path ``<stage path>/<name>`` (``name`` defaults to the op's name)."""

    def __init__(self, op: Op, name: str | None = None) -> None:
        if not isinstance(op, Op):
            raise PipelineError(f"OpNode needs an Op, got {type(op).__name__}")
        self.op = op
        self.name = _check_name("op", name if name is not None else op.name)

    def __repr__(self) -> str:
        return f"OpNode({self.op!r}, name={self.name!r})"

    def stream_paths(self, prefix: str) -> Iterator[tuple[str, Node]]:
        yield _join(prefix, self.name), self

    def op_paths(self, prefix: str) -> Iterator[tuple[str, Op]]:
        yield _join(prefix, self.name), self.op

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        if rng.n == 0:
            return
        path = _join(prefix, self.name)
        params = self.op.sample(rng.child(path), rng.n, context)
        records = self.op.describe(params)
        if len(records) != rng.n:
            raise PipelineError(f"{path}: op gave {len(records)} records for {rng.n} samples")
        for sample_records, rec in zip(out, records, strict=True):
            if "path" in rec:
                raise PipelineError(f"{path}: op records may not use the reserved key 'path'")
            sample_records.append({"op": rec["op"], "path": path, **_params_record(rec)})

    def execute(self, state: _Execution, prefix: str) -> None:
        path = _join(prefix, self.name)
        positions = state.waiting_at(path)
        if not positions:
            return
        records = [_params_record(state.pop(i)) for i in positions]
        try:
            params = self.op.params_from_records(records)
        except ValueError as exc:  # OpError names the bad or missing field
            raise PipelineError(f"{path}: cannot replay records: {exc}") from exc
        started = time.process_time()
        state.scatter(positions, self.op.apply_batched(state.gather(positions), params))
        elapsed = time.process_time() - started
        for spent in _OP_CLOCKS:
            spent[path] = spent.get(path, 0.0) + elapsed


class Sequential(Node):
    """Children one after another."""

    def __init__(self, *children: Node | Op, name: str = "sequential") -> None:
        self.items = [_as_node(c) for c in children]
        self.name = _check_name("sequential", name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.items))})"

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        for child in self.items:
            child.plan(rng, self._child_prefix(prefix), context, out)


class Stage(Sequential):
    """A named group: its children run in order under the path ``<prefix>/<name>``."""

    def __init__(self, name: str, *children: Node | Op) -> None:
        super().__init__(*children)
        self.name = _check_name("stage", name)

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, {', '.join(map(repr, self.items))})"

    def _child_prefix(self, prefix: str) -> str:
        return _join(prefix, self.name)


class _Decision(Node):
    """A node that draws a per-sample decision from the stream at its own path."""

    def stream_paths(self, prefix: str) -> Iterator[tuple[str, Node]]:
        yield _join(prefix, self.name), self
        yield from super().stream_paths(prefix)

    def _own(self, rng: BatchStreams, prefix: str) -> BatchStreams:
        return rng.child(_join(prefix, self.name))


def _plan_subset(
    child: Node,
    rng: BatchStreams,
    prefix: str,
    context: Params,
    out: list[list[Record]],
    positions: list[int],
) -> None:
    if positions:
        child.plan(
            rng.subset(positions), prefix, take(context, positions), [out[p] for p in positions]
        )


class OneOf(_Decision):
    """One child per sample, chosen with probability proportional to ``weights``."""

    def __init__(
        self,
        *children: Node | Op,
        weights: Sequence[float] | None = None,
        name: str = "one_of",
    ) -> None:
        if len(children) < 1:
            raise PipelineError("one_of needs at least one child")
        self.items = [_as_node(c) for c in children]
        if weights is not None:
            weights = [float(w) for w in weights]
            if (
                len(weights) != len(self.items)
                or any(not math.isfinite(w) or w < 0 for w in weights)
                or sum(weights) <= 0
            ):
                raise PipelineError(
                    f"one_of.weights must be {len(self.items)} non-negative numbers with a "
                    f"positive sum, got {weights}"
                )
        self.weights = weights
        self.name = _check_name("one_of", name)

    def __repr__(self) -> str:
        return f"OneOf({', '.join(map(repr, self.items))}, weights={self.weights})"

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        if rng.n == 0:
            return
        picks = self._own(rng, prefix).choice(len(self.items), self.weights).tolist()
        for b, child in enumerate(self.items):
            positions = [i for i, p in enumerate(picks) if p == b]
            _plan_subset(child, rng, prefix, context, out, positions)


class Maybe(_Decision):
    """Its child runs for a sample with probability ``p``."""

    def __init__(self, child: Node | Op, p: float, name: str | None = None) -> None:
        self.child = _as_node(child)
        self.p = check_prob("maybe.p", p)
        self.name = _check_name("maybe", name if name is not None else f"maybe_{self.child.name}")

    def __repr__(self) -> str:
        return f"Maybe({self.child!r}, p={self.p})"

    def children(self) -> Sequence[Node]:
        return (self.child,)

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        if rng.n == 0:
            return
        coins = self._own(rng, prefix).bernoulli(self.p).tolist()
        positions = [i for i, c in enumerate(coins) if c]
        _plan_subset(self.child, rng, prefix, context, out, positions)


class Shuffle(_Decision):
    """All children in a random order per sample, uniform over the allowed orders.

    Args:
        children: at most :data:`MAX_SHUFFLE_CHILDREN` nodes or ops, with
            distinct names (constraints refer to them by name).
        fixed: child name -> position it always takes (negative counts from
            the end: ``{"final_resize": -1}`` keeps the final resize last).
        before: ``(a, b)`` pairs: child ``a`` always runs before child ``b``.
    """

    def __init__(
        self,
        *children: Node | Op,
        fixed: Mapping[str, int] | None = None,
        before: Sequence[Sequence[str]] = (),
        name: str = "shuffle",
    ) -> None:
        self.items = [_as_node(c) for c in children]
        k = len(self.items)
        if not 1 <= k <= MAX_SHUFFLE_CHILDREN:
            raise PipelineError(f"shuffle takes 1 to {MAX_SHUFFLE_CHILDREN} children, got {k}")
        names = [c.name for c in self.items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PipelineError(f"shuffle children need distinct names; repeated: {dupes}")
        self.fixed = dict(fixed or {})
        self.before = [tuple(pair) for pair in before]
        self.name = _check_name("shuffle", name)
        self.orders = self._allowed_orders(names)

    def __repr__(self) -> str:
        return (
            f"Shuffle({', '.join(map(repr, self.items))}, fixed={self.fixed}, before={self.before})"
        )

    def _allowed_orders(self, names: list[str]) -> list[tuple[int, ...]]:
        k = len(names)

        def index_of(child: object, what: str) -> int:
            if child not in names:
                raise PipelineError(f"shuffle.{what} names {child!r}; children are {names}")
            return names.index(child)

        positions = {}
        for child, pos in self.fixed.items():
            if isinstance(pos, bool) or not isinstance(pos, int) or not -k <= pos < k:
                raise PipelineError(
                    f"shuffle.fixed[{child!r}] must be an integer in [{-k}, {k - 1}], got {pos!r}"
                )
            positions[index_of(child, "fixed")] = pos % k
        pairs = []
        for pair in self.before:
            if len(pair) != 2:
                raise PipelineError(
                    f"shuffle.before entries must be [a, b] pairs, got {list(pair)}"
                )
            pairs.append((index_of(pair[0], "before"), index_of(pair[1], "before")))
        orders = []
        for order in itertools.permutations(range(k)):
            where = {c: p for p, c in enumerate(order)}
            if all(where[c] == p for c, p in positions.items()) and all(
                where[a] < where[b] for a, b in pairs
            ):
                orders.append(order)
        if not orders:
            raise PipelineError(
                f"shuffle constraints fixed={self.fixed} before={self.before} allow no order"
            )
        return orders

    def plan(
        self, rng: BatchStreams, prefix: str, context: Params, out: list[list[Record]]
    ) -> None:
        if rng.n == 0:
            return
        picks = self._own(rng, prefix).integers(0, len(self.orders) - 1).tolist()
        per_child: list[list[list[Record]]] = []
        for child in self.items:
            child_out: list[list[Record]] = [[] for _ in range(rng.n)]
            child.plan(rng, prefix, context, child_out)
            per_child.append(child_out)
        for i, pick in enumerate(picks):
            for c in self.orders[pick]:
                out[i].extend(per_child[c][i])

    def execute(self, state: _Execution, prefix: str) -> None:
        # Each round applies, child by child, every block of records waiting at
        # that child; a sample's blocks come in its own order, one or more per
        # round, so len(children) rounds always suffice.
        own_paths = {path for path, _ in self.op_paths(prefix)}
        for _ in range(len(self.items)):
            if not state.waiting_at(own_paths):
                return
            for child in self.items:
                child.execute(state, prefix)


# -- the pipeline -----------------------------------------------------------------
@dataclasses.dataclass
class PipelineResult:
    """LR batch (``N x 3 x H//scale x W//scale``) and per-sample ordered records."""

    lr: Images
    records: list[list[Record]]


def _target_sizes(hr_sizes: torch.Tensor, scale: int) -> torch.Tensor:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise PipelineError(f"scale must be a positive integer, got {scale!r}")
    target = torch.div(hr_sizes, int(scale), rounding_mode="floor")
    if (target < 1).any():
        raise PipelineError(
            f"HR sizes {hr_sizes.tolist()} are too small for scale {scale} (LR under 1 pixel)"
        )
    return target


def _per_sample(hr: Images) -> list[torch.Tensor]:
    if isinstance(hr, torch.Tensor):
        if hr.ndim != 4:
            raise PipelineError(f"HR batch must be N x C x H x W, got shape {tuple(hr.shape)}")
        return list(hr.unbind(0))
    return list(hr)


class Pipeline:
    """A tree of degradation nodes that makes LR batches and their records.

    Args:
        root: a node, an op, or a list of them (run in sequence).
        name: shown in reprs and errors.
    """

    def __init__(self, root: Node | Op | Sequence[Node | Op], name: str = "pipeline") -> None:
        if isinstance(root, Sequence) and not isinstance(root, str):
            root = Sequential(*root)
        self.root = _as_node(root)
        self.name = name
        self.auto_final = OpNode(FinalResize(modes=("bicubic",)), name=AUTO_FINAL_RESIZE)
        seen: dict[str, Node] = {AUTO_FINAL_RESIZE: self.auto_final}
        for path, node in self.root.stream_paths(""):
            if path == AUTO_FINAL_RESIZE:
                raise PipelineError(f"the path {path!r} is reserved for the automatic final resize")
            if path in seen:
                raise PipelineError(
                    f"pipeline {name!r}: two nodes use the path {path!r}; give one a distinct name"
                )
            seen[path] = node
        self.ops: dict[str, Op] = dict(self.root.op_paths(""))

    def __repr__(self) -> str:
        return f"Pipeline({self.root!r}, name={self.name!r})"

    # -- planning --------------------------------------------------------------
    def plan(
        self,
        seed: int,
        indices: Sequence[int],
        hr_size: tuple[int, int] | torch.Tensor,
        scale: int,
    ) -> list[list[Record]]:
        """The records of samples ``indices`` without applying anything (a dry run).

        ``hr_size`` is one ``(H, W)`` for all samples or an ``N x 2`` tensor.
        """
        indices = [int(i) for i in indices]
        sizes = torch.as_tensor(hr_size, dtype=torch.int64)
        if sizes.ndim == 1:
            sizes = sizes.expand(len(indices), 2)
        if sizes.shape != (len(indices), 2):
            raise PipelineError(
                f"hr_size must be (H, W) or {len(indices)} x 2, got {tuple(sizes.shape)}"
            )
        target = _target_sizes(sizes, scale)
        rng = BatchStreams(seed, indices)
        out: list[list[Record]] = [[] for _ in indices]
        self.root.plan(rng, "", {"target_size": target}, out)
        needs = [
            i
            for i, recs in enumerate(out)
            if self._needs_final_resize(recs, bool((sizes[i] != target[i]).any()))
        ]
        _plan_subset(self.auto_final, rng, "", {"target_size": target}, out, needs)
        return out

    @staticmethod
    def _needs_final_resize(records: list[Record], size_differs: bool) -> bool:
        resizes = [r["op"] for r in records if op_class(r["op"]).family == "resize"]
        if not resizes:
            return size_differs
        return resizes[-1] != "final_resize"

    # -- running -------------------------------------------------------------------
    def __call__(self, hr: Images, seed: int, indices: Sequence[int], scale: int) -> PipelineResult:
        """Degrade HR samples ``indices`` (global ids) with dataset ``seed`` to ``1/scale``."""
        sizes = image_sizes(_per_sample(hr))
        if len(sizes) != len(indices):
            raise PipelineError(f"{len(sizes)} HR images but {len(indices)} indices")
        return self._execute(hr, self.plan(seed, indices, sizes, scale), scale)

    def replay(self, hr: Images, records: Sequence[Sequence[Record]], scale: int) -> PipelineResult:
        """Re-apply recorded records (one list per sample); reproduces the LR exactly."""
        n = len(_per_sample(hr))
        if n != len(records):
            raise PipelineError(f"{n} HR images but {len(records)} record lists")
        known = set(self.ops) | {AUTO_FINAL_RESIZE}
        for i, recs in enumerate(records):
            for rec in recs:
                if rec.get("path") not in known:
                    raise PipelineError(
                        f"sample {i}: record path {rec.get('path')!r} is not in pipeline "
                        f"{self.name!r} (paths: {sorted(known)})"
                    )
        return self._execute(hr, [list(r) for r in records], scale)

    def _execute(self, hr: Images, records: list[list[Record]], scale: int) -> PipelineResult:
        state = _Execution(hr, records)
        target = _target_sizes(image_sizes(state.images), scale)
        self.root.execute(state, "")
        self.auto_final.execute(state, "")
        for i, recs in enumerate(records):
            if state.cursor[i] != len(recs):
                rec = recs[state.cursor[i]]
                raise PipelineError(
                    f"sample {i}: record {rec} is out of order for pipeline {self.name!r}"
                )
            if list(state.images[i].shape[-2:]) != target[i].tolist():
                raise PipelineError(
                    f"sample {i}: ended at {tuple(state.images[i].shape[-2:])}, "
                    f"not the target {tuple(target[i].tolist())}"
                )
        return PipelineResult(collate(state.images), records)

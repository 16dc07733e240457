"""Invariant checkers for degradation operators (degkit's and your own).

Each checker runs an op and raises ``AssertionError`` with a message saying
which property failed and by how much. Use them in plain tests or with the
strategies of :mod:`degkit.testing.strategies`::

    @given(x=image_batches(), seed=seeds())
    def test_my_op(x, seed):
        check_contract(MyOp(), x, seed)
        check_batch_equals_per_sample(MyOp(), x, seed)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import torch

from degkit.ops.base import Images, Op, Params, take
from degkit.rng import BatchStreams

__all__ = [
    "check_contract",
    "check_op",
    "check_identity",
    "check_batch_equals_per_sample",
    "check_batch_size_invariance",
    "check_monotone_severity",
    "check_gradients",
    "check_kernels_normalized",
    "mse",
]


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared error between two images (resized-free: same shape required)."""
    return float(((a.double() - b.double()) ** 2).mean())


def _samples(x: Images) -> list[torch.Tensor]:
    return list(x) if isinstance(x, list) else list(x.unbind(0))


def _assert_same(a: Images, b: Images, what: str, atol: float = 0.0) -> None:
    sa, sb = _samples(a), _samples(b)
    assert len(sa) == len(sb), f"{what}: {len(sa)} samples vs {len(sb)}"
    for i, (u, v) in enumerate(zip(sa, sb, strict=True)):
        assert u.shape == v.shape, f"{what}: sample {i} shape {tuple(u.shape)} vs {tuple(v.shape)}"
        err = float((u.double() - v.double()).abs().max()) if u.numel() else 0.0
        assert err <= atol, f"{what}: sample {i} differs by up to {err:.3g} (allowed {atol:g})"


def _context_rows(context: Params | None, positions: Sequence[int]) -> Params | None:
    return None if context is None else take(context, positions)


def check_contract(
    op: Op, x: torch.Tensor, seed: int = 0, context: Params | None = None, same_shape: bool = True
) -> None:
    """Shape, dtype, device, [0, 1] range, input left untouched, one JSON record per
    sample, exact replay."""
    n = x.shape[0]
    rng = BatchStreams(seed, range(n))
    params = op.sample(rng, n, context)
    before = x.clone()
    y = op.apply(x, params)
    assert torch.equal(x, before), f"{op.name}: apply wrote to its input (ops must be pure)"
    out = _samples(y)
    assert len(out) == n, f"{op.name}: {len(out)} outputs for {n} inputs"
    for i, img in enumerate(out):
        assert img.dtype == torch.float32, f"{op.name}: sample {i} dtype {img.dtype}"
        assert img.device == x.device, f"{op.name}: sample {i} moved to {img.device}"
        assert img.shape[0] == x.shape[1], f"{op.name}: sample {i} has {img.shape[0]} channels"
        if same_shape:
            assert img.shape == x.shape[1:], f"{op.name}: sample {i} shape {tuple(img.shape)}"
        assert torch.isfinite(img).all(), f"{op.name}: sample {i} has non-finite values"
        lo, hi = float(img.min()), float(img.max())
        assert lo >= 0.0 and hi <= 1.0, f"{op.name}: sample {i} range [{lo}, {hi}] not in [0, 1]"
    records = op.describe(params)
    assert len(records) == n, f"{op.name}: {len(records)} records for {n} samples"
    for rec in records:
        assert rec.get("op") == op.name, f"{op.name}: record names op {rec.get('op')!r}"
    replayed = op.replay(x, json.loads(json.dumps(records)))
    _assert_same(y, replayed, f"{op.name}: replay from JSON records")


def check_op(
    op: Op,
    x: torch.Tensor,
    seed: int = 0,
    context: Params | None = None,
    same_shape: bool = True,
    atol: float = 0.0,
) -> None:
    """The contract, batch equals per-sample, and batch-size invariance, in one call.

    ``atol`` bounds the difference allowed between batch splits (0: bit-identical);
    ops built on batched float kernels whose rounding depends on the batch size
    (e.g. Kornia's differentiable JPEG) need a few float32 ulps.
    """
    check_contract(op, x, seed, context, same_shape)
    check_batch_equals_per_sample(op, x, seed, context, atol)
    check_batch_size_invariance(op, x, seed, context, atol)


def check_identity(op: Op, x: torch.Tensor, params: Params, atol: float = 1e-6) -> None:
    """``apply`` at zero strength returns the input."""
    _assert_same(op.apply(x, params), x, f"{op.name}: identity at zero strength", atol)


def check_batch_equals_per_sample(
    op: Op, x: torch.Tensor, seed: int = 0, context: Params | None = None, atol: float = 0.0
) -> None:
    """Applying to the batch equals applying to each sample alone with its own row of params."""
    n = x.shape[0]
    params = op.sample(BatchStreams(seed, range(n)), n, context)
    batched = op.apply(x, params)
    singles = [_samples(op.apply(x[i : i + 1], take(params, [i])))[0] for i in range(n)]
    _assert_same(batched, singles, f"{op.name}: batch vs per-sample", atol)


def check_batch_size_invariance(
    op: Op, x: torch.Tensor, seed: int = 0, context: Params | None = None, atol: float = 0.0
) -> None:
    """The same (seed, index) gives the same output whatever the batch split or order."""
    n = x.shape[0]
    whole, _ = op(x, BatchStreams(seed, range(n)), context)
    whole_samples = _samples(whole)
    order = list(reversed(range(n)))
    rev, _ = op(x[order], BatchStreams(seed, order), _context_rows(context, order))
    _assert_same(
        [_samples(rev)[order.index(i)] for i in range(n)],
        whole_samples,
        f"{op.name}: reversed batch order",
        atol,
    )
    for i in range(n):
        one, _ = op(x[i : i + 1], BatchStreams(seed, [i]), _context_rows(context, [i]))
        _assert_same(one, [whole_samples[i]], f"{op.name}: sample {i} run alone", atol)


def check_monotone_severity(
    op: Op,
    x: torch.Tensor,
    params_at: Callable[[float], Params],
    levels: Sequence[float],
    metric: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
    tolerance: float = 0.0,
) -> list[float]:
    """Distance to the input never falls as the level rises, and grows overall.

    ``params_at(level)`` gives the parameters of the whole batch at that level;
    returns the distances. ``tolerance`` allows small non-monotone steps
    (relative), e.g. for ops quantised to a grid.
    """
    metric = metric or mse
    distances = []
    for level in levels:
        y = op.apply(x, params_at(level))
        distances.append(sum(metric(a, b) for a, b in zip(_samples(y), _samples(x), strict=True)))
    for k in range(1, len(distances)):
        (l0, d0), (l1, d1) = (levels[k - 1], distances[k - 1]), (levels[k], distances[k])
        assert d1 >= d0 * (1 - tolerance) - 1e-12, (
            f"{op.name}: distance fell from {d0:.4g} at level {l0} to {d1:.4g} at level {l1}"
        )
    assert distances[-1] > distances[0], (
        f"{op.name}: no growth in distance over levels {list(levels)}: {distances}"
    )
    return distances


def check_gradients(op: Op, x: torch.Tensor, params: Params) -> None:
    """Gradients of a scalar loss reach the input, finite and not all zero."""
    xg = x.detach().clone().requires_grad_(True)
    y = op.apply(xg, params)
    loss = sum(
        (img * torch.linspace(0.5, 1.5, img.numel(), device=img.device).view_as(img)).sum()
        for img in _samples(y)
    )
    loss.backward()
    assert xg.grad is not None, f"{op.name}: no gradient reached the input"
    assert torch.isfinite(xg.grad).all(), f"{op.name}: non-finite gradient"
    assert xg.grad.abs().sum() > 0, f"{op.name}: gradient is all zero"


def check_kernels_normalized(kernels: torch.Tensor, atol: float = 1e-5) -> None:
    """Every kernel (``... x K x K``) is finite and sums to 1."""
    assert torch.isfinite(kernels).all(), "kernels have non-finite taps"
    sums = kernels.double().sum(dim=(-2, -1))
    err = float((sums - 1).abs().max())
    assert err <= atol, f"kernel sums deviate from 1 by up to {err:.3g}"

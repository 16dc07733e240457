"""Poisson counts by inverting the exact CDF at 32-bit random draws, on any device.

For a rate ``level / 255 * 2**e`` (``level`` 0..255, ``e`` 0..8: Real-ESRGAN's
Poisson noise needs no others) and a 32-bit draw ``u``, the count is the
smallest ``k`` with ``P(X <= k) > u / 2**32``, so each count has its exact
probability to within ``2**-32``. The CDFs come from SciPy once per device:
row ``r = 256 e + level`` holds ``c_k = ceil(P(X <= k) * 2**32)`` (then
``c_k <= u`` exactly when ``P(X <= k) <= u / 2**32``), its last entry set to
``2**32`` (the tail cut off is below 1e-30).

Two ways to find the count give the same integers: on CUDA one
``searchsorted`` over all rows at once (each row shifted by ``r * 2**33``, so
the rows form one increasing int64 array); on the CPU a guide table answers
most draws in one lookup (``2**12`` buckets of ``u`` per row, a bucket's entry
is its count unless some ``c_k`` falls inside it) and only the few draws in
such buckets are searched.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import special

__all__ = ["poisson_counts"]

_EXPONENTS = 9
_GUIDE_BITS = 12  # buckets per row; about 8 times the longest row (478 entries)


@functools.cache
def _cdf_rows() -> list[np.ndarray]:
    """``c_k`` of every row ``256 e + level``, as int64 arrays (lengths grow with ``e``)."""
    rows = []
    for exponent in range(_EXPONENTS):
        vals = 2**exponent
        size = int(vals + 12 * math.sqrt(vals) + 30)
        rates = np.arange(256) / 255.0 * vals
        cdf = np.ceil(special.pdtr(np.arange(size)[None, :], rates[:, None]) * 2.0**32)
        cdf[:, -1] = 2.0**32
        rows += list(cdf.astype(np.int64))
    return rows


@functools.cache
def _search_table(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """All rows in one increasing int64 array (row ``r`` shifted by ``r * 2**33``) and
    the position where each row starts."""
    rows = _cdf_rows()
    keys = np.concatenate([row + (r << 33) for r, row in enumerate(rows)])
    starts = np.cumsum([0] + [len(row) for row in rows[:-1]]).astype(np.int32)
    return torch.from_numpy(keys).to(device), torch.from_numpy(starts).to(device)


@functools.cache
def _guide_table() -> torch.Tensor:
    """``rows x 2**12`` int16 (flat, CPU): bucket ``j`` covers draws
    ``[j * 2**20, (j + 1) * 2**20)``; its entry is the count of every draw in
    it, or ``-1 - count`` of its first draw when some ``c_k`` falls inside it.

    The count of draw ``u`` is ``#{k : c_k <= u}``; at ``u = j * 2**20`` that
    is ``#{k : ceil(c_k / 2**20) <= j}`` and at ``u = (j + 1) * 2**20 - 1`` it
    is ``#{k : floor(c_k / 2**20) <= j}``: running sums of two histograms.
    """
    rows = _cdf_rows()
    buckets = 1 << _GUIDE_BITS
    width = 1 << (32 - _GUIDE_BITS)
    cdf = np.concatenate(rows)
    offsets = np.repeat(np.arange(len(rows)) * (buckets + 1), [len(row) for row in rows])

    def counts_at(bucket_of: np.ndarray) -> np.ndarray:
        hist = np.bincount(offsets + bucket_of, minlength=len(rows) * (buckets + 1))
        return hist.reshape(len(rows), buckets + 1).cumsum(axis=1, dtype=np.int16)[:, :buckets]

    first = counts_at(-(-cdf // width))  # ceil
    last = counts_at(cdf // width)
    stepped = first != last
    np.subtract(-1, first, out=first, where=stepped)
    return torch.from_numpy(first.ravel())


def _counts_by_search(rows: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Counts (int32) from one ``searchsorted`` over the shifted rows."""
    table, starts = _search_table(rows.device)
    keys = (rows.long() << 33).add_(draws)
    found = torch.searchsorted(table, keys, right=True, out_int32=True)
    return found.sub_(starts.index_select(0, rows))


def _counts_by_guide(rows: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Counts (int32) from the guide table, searching only the draws whose bucket holds a step."""
    buckets = (draws >> (32 - _GUIDE_BITS)).int()
    counts = _guide_table().index_select(0, (rows << _GUIDE_BITS).add_(buckets)).int()
    stepped = torch.nonzero(counts < 0).squeeze(1)
    counts[stepped] = _counts_by_search(rows[stepped], draws[stepped])
    return counts


def poisson_counts(
    levels: torch.Tensor, draws: torch.Tensor, exponents: torch.Tensor
) -> torch.Tensor:
    """Poisson counts of rate ``levels / 255 * 2**exponents`` at the 32-bit ``draws``.

    ``levels`` (0..255), ``draws`` (int64 in ``[0, 2**32)``) and ``exponents``
    (0..8) are integer tensors of one shape on one device; returns the int32
    counts, of that shape.
    """
    rows = (exponents.int() << 8).add_(levels.int()).reshape(-1)
    flat_draws = draws.reshape(-1)
    if rows.device.type == "cpu":
        return _counts_by_guide(rows, flat_draws).view(draws.shape)
    return _counts_by_search(rows, flat_draws).view(draws.shape)

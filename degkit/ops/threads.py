"""A small thread pool for per-sample work that releases the GIL.

OpenCV filters and codecs and NumPy's random fills release the GIL, so
per-sample loops over them run in parallel on torch's thread count. Results
are identical to a serial loop: each item writes only its own output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["map_in_threads"]

T = TypeVar("T")
R = TypeVar("R")

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per (process, size): a forked worker (DataLoader) must not reuse its
    parent's pool, whose threads do not exist in the child."""
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(max_workers=workers)
    return _POOLS[key]


def map_in_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, spread over ``torch.get_num_threads()`` threads.

    Each thread takes every ``workers``-th item (one task per thread, not per
    item: per-item tasks cost more than a small image's work).
    """
    items = list(items)
    workers = min(torch.get_num_threads(), len(items))
    if workers < 2:
        return [fn(item) for item in items]
    chunks = _pool(workers).map(lambda k: [fn(item) for item in items[k::workers]], range(workers))
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    for k, results in enumerate(chunks):
        out[k::workers] = results
    return out

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

    Thread ``k`` takes every ``workers``-th item from item ``k`` (one task per
    thread, not per item: per-item tasks cost more than a small image's work);
    the calling thread is thread 0.
    """
    items = list(items)
    workers = min(torch.get_num_threads(), len(items))
    if workers < 2:
        return [fn(item) for item in items]

    def run_share(k: int) -> list[R]:
        return [fn(item) for item in items[k::workers]]

    others = [_pool(workers - 1).submit(run_share, k) for k in range(1, workers)]
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    out[0::workers] = run_share(0)
    for k, future in enumerate(others, start=1):
        out[k::workers] = future.result()
    return out

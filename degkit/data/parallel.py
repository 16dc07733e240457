"""Ordered, bounded parallel map over worker processes (or inline with 0 workers).

Results come back in input order, and at most ``window`` tasks are in flight,
so memory stays bounded however long the input is. Workers are forked where
the platform allows (they inherit the imported modules, so starting them is
cheap) and run only NumPy / Pillow code; elsewhere they are spawned.

Workers never outlive the process that started them: if it dies (SIGKILL, the
OOM killer), each worker exits too instead of blocking forever on its task
queue. On Linux, when the pool is started from the main thread, the kernel
delivers SIGKILL to the worker as its parent dies (``PR_SET_PDEATHSIG``, which
fires when the *thread* that forked exits, hence main thread only); otherwise
a watchdog thread in the worker polls its parent pid. Either way a worker
whose parent died before the guard was set up exits at once.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

_PR_SET_PDEATHSIG = 1
WATCHDOG_PERIOD_S = 0.5


def _context() -> multiprocessing.context.BaseContext:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent thread exits; False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_PERIOD_S)
    os._exit(1)


def _start_guarded_worker(
    parent_pid: int,
    forked_by_main_thread: bool,
    initializer: Callable[..., None] | None,
    initargs: tuple,
) -> None:
    """Worker initializer: die with the parent, then run the caller's initializer."""
    guarded = forked_by_main_thread and sys.platform.startswith("linux")
    guarded = guarded and _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(1)
    if not guarded:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    window: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed by ``workers`` processes.

    ``workers=0`` runs everything in the calling process (``initializer`` is
    then not called). ``window`` (default ``4 * workers``) bounds the number of
    tasks submitted but not yet consumed; ``initializer(*initargs)`` runs once
    in each worker process.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    pending: deque[Future[R]] = deque()
    # The pool forks its workers on the first submit, in this thread.
    guard_args = (
        os.getpid(),
        threading.current_thread() is threading.main_thread(),
        initializer,
        initargs,
    )
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_start_guarded_worker,
        initargs=guard_args,
    ) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

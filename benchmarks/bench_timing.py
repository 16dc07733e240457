"""Wall-clock timing shared by the benchmarks: runs take turns, medians are reported.

On a shared machine the speed drifts by tens of percent within a minute. Timing
competing implementations in alternation (one run of each per round) spreads
that drift over all of them alike, so their ratios stay meaningful.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable


def interleaved_seconds(
    runs: dict[str, Callable[[], object]],
    repeats: int,
    sync: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Median wall seconds of each run over ``repeats`` rounds, after one warm-up round.

    ``sync``, if given, is called before and after each timed call
    (``torch.cuda.synchronize`` for GPU work).
    """
    wait = sync or (lambda: None)
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            wait()
            start = time.perf_counter()
            fn()
            wait()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def print_milliseconds(title: str, seconds: dict[str, float]) -> None:
    """Print ``title``, then each run's median in milliseconds, one per line."""
    print(title)
    width = max(map(len, seconds))
    for name, s in seconds.items():
        print(f"  {name:{width}s} {1000 * s:8.2f} ms")


def machine_load() -> str:
    """``uptime``'s line (load averages), to state how busy the machine was; ``n/a`` without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"

"""A training loop's step counter with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm

__all__ = ["run_steps"]


def run_steps(
    name: str,
    start: int,
    total: int,
    step: Callable[[int], dict[str, float]],
    progress: bool,
    on_step: Callable[[int], None] = lambda s: None,
) -> None:
    """Call ``step(s)`` for s in [start, total), then ``on_step(s + 1)``.

    A tqdm bar on stderr (when ``progress``) shows the numbers ``step`` returns.
    """
    bar = tqdm(
        total=total, initial=start, desc=name, unit="step", file=sys.stderr, disable=not progress
    )
    with bar:
        for s in range(start, total):
            numbers = step(s)
            bar.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
            bar.update()
            on_step(s + 1)

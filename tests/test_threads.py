"""The per-sample thread pool: same results, in order, as a plain loop."""

from __future__ import annotations

import threading

import pytest
import torch

from degkit.ops.threads import map_in_threads


@pytest.mark.parametrize("n_items", [0, 1, 2, 5, 16])
def test_results_come_back_in_order_with_several_threads(n_items: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        thread_of: dict[int, int] = {}

        def square(i: int) -> int:
            thread_of[i] = threading.get_ident()
            return i * i

        assert map_in_threads(square, range(n_items)) == [i * i for i in range(n_items)]
        # The calling thread takes the first share itself (items 0, 3, 6, ...).
        workers = min(3, n_items)
        for i in range(0, n_items, max(workers, 1)):
            assert thread_of[i] == threading.get_ident()
    finally:
        torch.set_num_threads(before)


def test_an_error_in_any_share_reaches_the_caller() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def fail_on_three(i: int) -> int:
            if i == 3:
                raise ValueError("item 3")
            return i

        with pytest.raises(ValueError, match="item 3"):
            map_in_threads(fail_on_three, range(6))
    finally:
        torch.set_num_threads(before)

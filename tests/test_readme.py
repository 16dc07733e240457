"""The README's Python examples run as written (those that need a built dataset excepted)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
RUNNABLE = [block for block in BLOCKS if "my-set" not in block]


def test_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs(block: str) -> None:
    module = types.ModuleType("readme_example")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(block, str(README), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    for name, value in list(module.__dict__.items()):
        if name.startswith("test_") and callable(value):
            value()  # the README's own property test of a user-defined op

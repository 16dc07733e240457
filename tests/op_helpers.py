"""Small helpers shared by the operator tests."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from degkit.ops import OpError, create_op


def f64(values: list[float]) -> torch.Tensor:
    """A float64 parameter tensor."""
    return torch.tensor(values, dtype=torch.float64)


def photo_crops() -> torch.Tensor:
    """Two real 64 x 64 photo crops (astronaut, coffee), N x 3 x H x W in [0, 1]."""
    crops = [skimage.data.astronaut()[40:104, 180:244], skimage.data.coffee()[150:214, 200:264]]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).contiguous()


def assert_config_error(name: str, config: dict, message: str) -> None:
    """Building op ``name`` with ``config`` raises an OpError whose text contains ``message``."""
    with pytest.raises(OpError) as err:
        create_op(name, **config)
    assert message in str(err.value)

"""Small helpers shared by the operator tests."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from degkit.ops import OpError, create_op
from degkit.ops.canvas import Canvas, ragged_batches


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


def assert_canvas_matches_groups(
    op, images: list[torch.Tensor], params: dict[str, torch.Tensor], atol: float = 0.0
) -> None:
    """``op`` on a canvas (the device code path) gives each sample what grouping by shape
    gives it, to ``atol`` (0: bit for bit), whatever the padding holds."""
    with ragged_batches("groups"):
        expected = op.apply(list(images), params)
    canvas = Canvas.from_images(images)
    noisy = canvas.with_data(torch.rand_like(canvas.data) * 7.0 - 3.0)
    noisy.data[canvas.valid_mask().expand_as(canvas.data)] = canvas.data[
        canvas.valid_mask().expand_as(canvas.data)
    ]
    with ragged_batches("canvas"):
        out = op.apply_batched(noisy, params)
    got = out.views() if isinstance(out, Canvas) else list(out)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.shape == e.shape, f"sample {i}: {tuple(g.shape)} != {tuple(e.shape)}"
        torch.testing.assert_close(g, e, atol=atol, rtol=0, msg=lambda m, i=i: f"sample {i}: {m}")


def without_host_waits(fn):
    """``fn()`` with CUDA's sync debug mode at ``error``: any wait of the host on the GPU raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")

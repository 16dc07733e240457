"""CUDA: every registered op runs on the GPU with per-sample parameters and agrees
with the CPU. Skipped cleanly where no GPU is present."""

from __future__ import annotations

import warnings

import pytest
import torch

from degkit.ops import create_op, registered_ops
from degkit.rng import BatchStreams
from degkit.testing import check_batch_equals_per_sample, check_contract

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Ops whose CPU and GPU outputs may differ by float rounding pushed through an
# 8-bit step (JPEG, quantise): compared by mean error instead of max error.
ROUNDING_OPS = {"jpeg", "quantize"}


def _batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(4, 3, 48, 48, generator=gen)
    return torch.nn.functional.avg_pool2d(base, 3, 1, 1)  # photo-like smoothness


@pytest.mark.parametrize("name", sorted(registered_ops()))
def test_op_on_cuda_matches_cpu(name: str) -> None:
    op = create_op(name)
    x = _batch()
    context = {"target_size": torch.tensor([[12, 12]] * x.shape[0])}
    params = op.sample(BatchStreams(0, range(x.shape[0])), x.shape[0], context)
    cpu = op.apply(x, params)
    gpu = op.apply(x.cuda(), params)
    cpu_list = list(cpu) if isinstance(cpu, list) else list(cpu.unbind(0))
    gpu_list = list(gpu) if isinstance(gpu, list) else list(gpu.unbind(0))
    for a, b in zip(cpu_list, gpu_list, strict=True):
        assert b.is_cuda and a.shape == b.shape
        err = (a - b.cpu()).abs()
        if name in ROUNDING_OPS:
            assert err.mean() < 2e-3, f"{name}: mean CPU/GPU difference {err.mean():.3g}"
        else:
            assert err.max() < 1e-4, f"{name}: max CPU/GPU difference {err.max():.3g}"
    check_contract(op, x.cuda(), seed=1, context=context, same_shape=False)
    check_batch_equals_per_sample(op, x.cuda(), seed=2, context=context, atol=1e-5)


def test_pipeline_recipe_on_cuda_matches_cpu() -> None:
    from degkit.recipes import load

    recipe = load("deplsr")
    hr = _batch()
    cpu = recipe.pipeline(hr, seed=3, indices=range(4), scale=4)
    gpu = recipe.pipeline(hr.cuda(), seed=3, indices=range(4), scale=4)
    assert gpu.lr.is_cuda and gpu.lr.shape == cpu.lr.shape
    assert cpu.records == gpu.records
    assert (gpu.lr.cpu() - cpu.lr).abs().mean() < 5e-3


def _host_waits(fn) -> int:
    """How many times ``fn`` makes the host wait for the GPU (torch's sync debug mode)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.parametrize("name", ["deplsr", "realesrgan", "bsrgan"])
def test_host_waits_per_batch_do_not_grow_with_the_batch(name: str) -> None:
    from degkit.recipes import load

    pipeline = load(name).pipeline
    waits = {}
    for n in (4, 16):
        hr = torch.nn.functional.avg_pool2d(torch.rand(n, 3, 64, 64), 3, 1, 1).cuda()
        pipeline(hr, 0, range(n), 4)  # warm-up: tables and caches are built once
        waits[n] = _host_waits(lambda hr=hr, n=n: pipeline(hr, 0, range(n), 4))
    assert waits[16] <= waits[4] + 2, f"{name}: host waits per batch {waits}"

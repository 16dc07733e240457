"""Canvases (ragged batches on one padded tensor): border indices, layout, noise ops on
canvases against the same ops on each sample alone, and pipelines that carry canvases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from op_helpers import assert_canvas_matches_groups, photo_crops, without_host_waits

from degkit.ops import create_op
from degkit.ops.canvas import (
    Canvas,
    clamped_index,
    concat,
    gather_columns,
    gather_rows,
    ragged_batches,
    reflect_index,
)
from degkit.rng import BatchStreams

lengths = st.lists(st.integers(1, 40), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(lengths=lengths, pad=st.integers(0, 30))
def test_reflect_index_is_numpys_reflect_padding(lengths: list[int], pad: int) -> None:
    sizes = torch.tensor(lengths)
    index = reflect_index(sizes, -pad, max(lengths) + 2 * pad)
    for i, length in enumerate(lengths):
        if length == 1:
            assert (index[i] == 0).all()
            continue
        expected = np.pad(np.arange(length), pad, mode="reflect")  # keeps reflecting past one fold
        assert index[i, : length + 2 * pad].tolist() == expected.tolist()


@settings(max_examples=60, deadline=None)
@given(lengths=lengths, pad=st.integers(0, 30))
def test_clamped_index_is_edge_padding(lengths: list[int], pad: int) -> None:
    index = clamped_index(torch.tensor(lengths), -pad, max(lengths) + 2 * pad)
    for i, length in enumerate(lengths):
        expected = np.pad(np.arange(length), pad, mode="edge")
        assert index[i, : length + 2 * pad].tolist() == expected.tolist()


def _ragged(sizes: list[tuple[int, int]], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g) for h, w in sizes]


def test_canvas_keeps_each_sample_and_gathers_rows() -> None:
    images = _ragged([(5, 7), (9, 3), (2, 2)])
    canvas = Canvas.from_images(images)
    assert canvas.data.shape == (3, 3, 9, 7)
    for view, image in zip(canvas.views(), images, strict=True):
        assert torch.equal(view, image)
    assert canvas.valid_mask().sum().item() == sum(h * w for h, w in [(5, 7), (9, 3), (2, 2)])
    picked = canvas.select([2, 0])
    assert torch.equal(picked.views()[0], images[2]) and torch.equal(picked.views()[1], images[0])
    merged = concat([picked, Canvas.from_images(_ragged([(11, 1)], seed=1))])
    assert merged.data.shape[-2:] == (11, 7) and merged.sizes.tolist()[-1] == [11, 1]
    rows = gather_rows(canvas.data, clamped_index(canvas.sizes[:, 0], 0, 9))
    assert torch.equal(rows[2, :, 5, :2], images[2][:, 1, :])
    cols = gather_columns(canvas.data, clamped_index(canvas.sizes[:, 1], 0, 7))
    assert torch.equal(cols[1, :, :, 6], images[1][:, :, 2])


def test_canvas_rejects_samples_larger_than_it() -> None:
    with pytest.raises(ValueError, match="exceeds the canvas"):
        Canvas(torch.zeros(1, 3, 4, 4), torch.tensor([[5, 4]]))


def test_ragged_mode_is_checked_and_scoped() -> None:
    with pytest.raises(ValueError, match="one of"):
        with ragged_batches("padded"):
            pass


def _noise_params(name: str, n: int) -> dict[str, torch.Tensor]:
    config = {"gaussian_noise": {"gray_prob": 0.5, "correlated_prob": 0.3}}.get(name, {})
    if name in ("gaussian_noise", "poisson_noise", "speckle_noise"):
        config.setdefault("gray_prob", 0.5)
    return create_op(name, **config).sample(BatchStreams(7, range(n)).child(name), n)


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "poisson_noise", "speckle_noise", "salt_pepper_noise"]
)
def test_noise_on_a_canvas_is_the_noise_of_each_sample(name: str) -> None:
    crops = photo_crops()
    sizes = [(64, 64), (17, 40), (1, 1), (33, 5), (2, 63), (40, 17)]
    images = [crops[i % 2][:, :h, :w] for i, (h, w) in enumerate(sizes)]
    params = _noise_params(name, len(images))
    if name == "gaussian_noise":
        assert params["gray"].any() and params["correlated"].any() and not params["gray"].all()
    assert_canvas_matches_groups(create_op(name), images, params)


def test_a_pipeline_carries_canvases_between_ops_and_branches() -> None:
    from degkit.pipeline import OneOf, Pipeline

    seen: list[str] = []

    class Spy:
        """Wraps an op's apply_batched to see what batch type it gets."""

        def __init__(self, op):
            self.op, self.original = op, op.apply_batched
            op.apply_batched = self

        def __call__(self, x, params):
            seen.append(f"{self.op.name}:{type(x).__name__}")
            return self.original(x, params)

    gauss = create_op("gaussian_noise", gray_prob=0.5)
    poisson = create_op("poisson_noise", gray_prob=0.5)
    salt = create_op("salt_pepper_noise")
    for op in (gauss, poisson, salt):
        Spy(op)
    pipe = Pipeline([gauss, OneOf(poisson, salt), create_op("final_resize")])
    crops = photo_crops()
    hr = [crops[0][:, :32, :24], crops[1][:, :20, :28], crops[0][:, :36, :36], crops[1][:, :8, :12]]
    with ragged_batches("groups"):
        expected = pipe(hr, seed=3, indices=range(4), scale=4)
    seen.clear()
    with ragged_batches("canvas"):
        got = pipe(hr, seed=3, indices=range(4), scale=4)
    assert got.records == expected.records
    # the noise ops are bit-identical on canvases; the final resize agrees to float rounding
    torch.testing.assert_close(got.lr, expected.lr, atol=5e-5, rtol=0)
    branches = {r["op"] for recs in got.records for r in recs} & {
        "poisson_noise",
        "salt_pepper_noise",
    }
    assert len(branches) == 2  # both branches took samples: rows were selected from one canvas
    assert seen == ["gaussian_noise:list", "poisson_noise:Canvas", "salt_pepper_noise:Canvas"]


def _op_runs(recipe: str, n: int, mode: str) -> int:
    """How many times ops of ``recipe`` run their batched kernels for one batch of ``n``."""
    from degkit.ops.base import registered_ops
    from degkit.recipes import load

    runs = 0
    originals = {}

    def counted(method):
        def run(self, *args, **kwargs):
            nonlocal runs
            runs += 1
            return method(self, *args, **kwargs)

        return run

    classes = set(registered_ops().values())
    for cls in classes:
        for name in ("_apply", "_apply_canvas"):
            if name in vars(cls):
                originals[(cls, name)] = vars(cls)[name]
                setattr(cls, name, counted(vars(cls)[name]))
    try:
        hr = torch.nn.functional.avg_pool2d(torch.rand(n, 3, 32, 32), 3, 1, 1)
        with ragged_batches(mode):
            load(recipe).pipeline(hr, 0, range(n), 4)
    finally:
        for (cls, name), method in originals.items():
            setattr(cls, name, method)
    return runs


@pytest.mark.parametrize("recipe", ["realesrgan", "bsrgan"])
def test_canvas_batches_stay_batches_after_per_sample_resizes(recipe: str) -> None:
    # with shape groups, every sample runs alone after its own resize; on canvases the
    # number of op runs per batch does not grow with the batch (bsrgan's shuffled orders
    # add a few runs as a larger batch covers more of them)
    few, many = _op_runs(recipe, 24, "canvas"), _op_runs(recipe, 96, "canvas")
    grouped = _op_runs(recipe, 96, "groups")
    assert many <= 1.25 * few, (few, many)
    assert grouped > 2 * many, (grouped, many)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["gaussian_noise", "poisson_noise", "jpeg", "resize"])
def test_canvas_ops_on_cuda_never_wait_and_match_the_cpu(name: str) -> None:
    crops = photo_crops()
    images = [crops[i % 2][:, : 64 - 9 * i, : 20 + 7 * i] for i in range(6)]
    canvas = Canvas.from_images(images)
    op = create_op(name)
    params = op.sample(BatchStreams(2, range(6)).child(name), 6, {"target_size": canvas.sizes})
    with ragged_batches("canvas"):
        cpu = op.apply_batched(canvas, params)
        on_gpu = canvas.with_data(canvas.data.cuda())
        op.apply_batched(on_gpu, params)  # warm-up: tables and libraries load once
        gpu = without_host_waits(lambda: op.apply_batched(on_gpu, params))
    for a, b in zip(cpu.views(), gpu.views(), strict=True):
        assert b.is_cuda and a.shape == b.shape
        # 8-bit steps (Poisson levels, JPEG) can turn float rounding into one level
        assert (a - b.cpu()).abs().max() <= 1 / 255 + 1e-5

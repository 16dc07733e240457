"""Kernels built on the images' device (the torch path: CUDA, autograd, canvases): one
computation at a size fixed by the op's configuration, equal to the host-built kernels,
and the same bits for a sample whatever its batch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from op_helpers import without_host_waits

from degkit.ops import create_op
from degkit.ops.blur import _blur_kernels_at, _separable_sigmas
from degkit.ops.canvas import Canvas, ragged_batches
from degkit.ops.filtering import kernels_at_fixed_sizes, kernels_by_size
from degkit.ops.kernels import (
    gaussian_kernels,
    gaussian_kernels_1d,
    generalized_gaussian_kernels,
    plateau_kernels,
    shifted_gaussian_kernels,
    sinc_kernels,
)
from degkit.rng import BatchStreams

# Built at a larger size, a kernel's float64 normalising sum adds the same taps (and exact
# zeros) in another order: the float32 kernels differ by at most one rounding (6e-8 at 1).
ROUNDING = 1e-7

BUILDERS = {
    "gaussian_1d": lambda k, p, s: gaussian_kernels_1d(k, p[0], sizes=s),
    "gaussian": lambda k, p, s: gaussian_kernels(k, p[0], p[1], p[2], sizes=s),
    "generalized": lambda k, p, s: generalized_gaussian_kernels(k, *p[:3], p[3], sizes=s),
    "plateau": lambda k, p, s: plateau_kernels(k, *p[:3], p[3], sizes=s),
    "sinc": lambda k, p, s: sinc_kernels(k, p[4], sizes=s),
    "shifted": lambda k, p, s: shifted_gaussian_kernels(k, p[0], p[5], sizes=s),
}


def _random_params(n: int, seed: int) -> list[torch.Tensor]:
    """sigma_x, sigma_y, theta, beta, cutoff and shift per sample (float64)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(6, n, generator=g, dtype=torch.float64)
    return [
        0.1 + 3 * u[0],
        0.1 + 3 * u[1],
        6 * u[2] - 3,
        0.5 + 3 * u[3],
        0.3 + 2.8 * u[4],
        2 * u[5],
    ]


@settings(max_examples=10, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 30).map(lambda h: 2 * h + 1), min_size=1, max_size=6),
    seed=st.integers(0, 1000),
)
def test_fixed_size_kernels_equal_host_kernels_built_at_each_size(sizes, seed) -> None:
    """Taps outside a sample's own size are zero; inside, its host kernel to one rounding
    (sizes up to 61 span every rung of ``BUILD_SIZES``)."""
    own = torch.tensor(sizes)
    params = _random_params(len(sizes), seed)
    for name, build in BUILDERS.items():
        host = kernels_by_size(own, lambda k, i, b=build: b(k, [p[i] for p in params], None))
        fixed = kernels_at_fixed_sizes(
            own, lambda k, i, b=build: b(k, [p[i] for p in params], own[i])
        )
        torch.testing.assert_close(fixed, host, atol=ROUNDING, rtol=0, msg=name)


def _blur_params(n: int, seed: int, sinc_prob: float = 0.3, sizes=(7, 21)) -> dict:
    op = create_op("blur", sinc_prob=sinc_prob, kernel_size=sizes)
    return op.sample(BatchStreams(seed, range(n)), n)


def _kinds(params: dict) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    separable, sigma_h, sigma_v = _separable_sigmas(params)
    return separable, (sigma_h, sigma_v)


@pytest.mark.parametrize("seed", [0, 1])
def test_blur_kernels_on_the_device_equal_the_host_build(seed: int) -> None:
    params = _blur_params(64, seed)
    separable, sigmas = _kinds(params)
    for kind in (False, True):
        positions = (separable == kind).nonzero().flatten()
        chosen = sigmas if kind else None
        host = _blur_kernels_at(params, positions, chosen)
        device = _blur_kernels_at(params, positions, chosen, "cpu")
        for h, d in zip(host, device, strict=True):
            torch.testing.assert_close(d, h, atol=ROUNDING, rtol=0)


def _own_kernels(params: dict, i: int, neighbours: dict) -> tuple[torch.Tensor, ...]:
    """Sample ``i``'s kernels built beside ``neighbours`` (of its kind), cropped to its size."""
    batch = {key: torch.cat([params[key][i : i + 1], neighbours[key]]) for key in params}
    separable, sigmas = _kinds(batch)
    positions = (separable == separable[0]).nonzero().flatten()
    chosen = sigmas if bool(separable[0]) else None
    kernels = _blur_kernels_at(batch, positions, chosen, "cpu")
    k, size = kernels[0].shape[-1], int(params["kernel_size"][i])
    window = slice((k - size) // 2, (k + size) // 2)
    return tuple(t[0, window] if t.ndim == 2 else t[0, window, window] for t in kernels)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 5),
    place=st.integers(0, 5),
    shape=st.tuples(st.integers(2, 30), st.integers(2, 30)),
)
def test_a_sample_gets_the_same_kernel_and_pixels_whatever_its_batch(
    seed, count, place, shape
) -> None:
    """Neighbours drawn up to size 31 (built at 25 or 51, the sample at 21) change no bit of a
    sample's kernel, nor of its output on a canvas or through the autograd path."""
    op = create_op("blur", sinc_prob=0.3)
    one = _blur_params(1, seed)
    others = _blur_params(count, seed + 1, sinc_prob=0.5, sizes=(7, 31))
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            _own_kernels(one, 0, others),
            _own_kernels(one, 0, {k: v[:0] for k, v in others.items()}),
            strict=True,
        )
    )
    place = min(place, count)
    batch = {k: torch.cat([others[k][:place], one[k], others[k][place:]]) for k in one}
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, *shape, generator=g)
    sizes = torch.randint(2, 30, (count, 2), generator=g).tolist()
    images = [torch.rand(3, h, w, generator=g) for h, w in sizes]
    images.insert(place, image)
    with ragged_batches("canvas"):
        alone = op.apply_batched(Canvas.from_images([image]), one).views()[0]
        crowded = op.apply_batched(Canvas.from_images(images), batch).views()[place]
    assert torch.equal(crowded, alone)
    same_shape = torch.stack([image] * (count + 1)).requires_grad_(True)
    with torch.enable_grad():
        grad_alone = op.apply(same_shape[:1], one)[0].detach()
        grad_crowded = op.apply(same_shape, batch)[place].detach()
    assert torch.equal(grad_crowded, grad_alone)


def test_a_record_gives_the_same_bits_whatever_the_op_configuration() -> None:
    """Replaying records through a differently configured op changes nothing."""
    params = _blur_params(8, 3)
    canvas = Canvas.from_images([torch.rand(3, 9 + 5 * i, 30 - 2 * i) for i in range(8)])
    with ragged_batches("canvas"):
        outs = [
            create_op("blur", kernel_size=sizes).apply(canvas, params)
            for sizes in [(7, 21), (3, 45), "auto"]
        ]
    for out in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(out, outs[0], strict=True))


# OpenCV (the CPU default) and conv2d round their sums differently.
OPENCV_ATOL = 2e-6


@pytest.mark.parametrize(
    ("name", "config", "replayed"),
    [
        ("blur", {"sinc_prob": 0.3}, 31),
        ("ringing", {}, 31),
        ("shifted_subsample", {"kernel_size": 15}, 25),
    ],
)
def test_the_autograd_path_matches_opencv(name: str, config: dict, replayed: int) -> None:
    """Device-built kernels (one of them replayed at a size above the configured range)
    filter as the host kernels do through OpenCV."""
    op = create_op(name, **config)
    params = op.sample(BatchStreams(2, range(6)), 6)
    params["kernel_size"][0] = replayed
    x = torch.rand(6, 3, 40, 36, generator=torch.Generator().manual_seed(2))
    expected = op.apply(x, params)
    with torch.enable_grad():
        got = op.apply(x.clone().requires_grad_(True), params).detach()
    torch.testing.assert_close(got, expected, atol=OPENCV_ATOL, rtol=0)


# -- CUDA -----------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("blur", {"sinc_prob": 0.1}),
        ("blur", {"kernel_size": "auto"}),
        ("ringing", {}),
        ("shifted_subsample", {}),
    ],
)
def test_device_kernels_on_cuda_never_wait_and_match_the_cpu(name: str, config: dict) -> None:
    """A canvas (ragged) and a plain batch on CUDA: kernels built there, no host wait."""
    op = create_op(name, **config)
    params = op.sample(BatchStreams(7, range(8)), 8)
    params["kernel_size"][0] = 31  # replayed above the drawn range: built at 51
    sizes = [(5, 40), (40, 3), (33, 47), (64, 50), (9, 12), (1, 30), (70, 64), (21, 21)]
    g = torch.Generator().manual_seed(7)
    canvas = Canvas.from_images([torch.rand(3, h, w, generator=g) for h, w in sizes])
    plain = torch.rand(8, 3, 48, 40, generator=g)
    for x in (canvas, plain):
        cpu = op.apply(x, params)
        on_gpu = x.with_data(x.data.cuda()) if isinstance(x, Canvas) else x.cuda()
        op.apply_batched(on_gpu, params)  # warm-up: libraries load once
        gpu = without_host_waits(lambda on_gpu=on_gpu: op.apply_batched(on_gpu, params))
        got = gpu.views() if isinstance(gpu, Canvas) else list(gpu)
        for a, b in zip(cpu, got, strict=True):
            torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=0)

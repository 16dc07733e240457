"""Analytic kernels: normalisation, formulas against independent numpy / scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit.ops.kernels import (
    auto_gaussian_size,
    disk_kernels,
    disk_size,
    gaussian_kernels,
    gaussian_kernels_1d,
    generalized_gaussian_kernels,
    motion_kernels,
    motion_size,
    plateau_kernels,
    sinc_kernels,
)
from degkit.testing import check_kernels_normalized

odd_sizes = st.integers(0, 12).map(lambda k: 2 * k + 1)
sigmas = st.floats(0.2, 6.0)
angles = st.floats(-math.pi, math.pi)
betas = st.floats(0.5, 4.0)


def _quadratic_form_reference(size: int, sx: float, sy: float, theta: float) -> np.ndarray:
    """``d^T Sigma^-1 d`` with Real-ESRGAN's explicit covariance, inverted by numpy."""
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    inv = np.linalg.inv(cov)
    ax = np.arange(size) - size // 2
    xx, yy = np.meshgrid(ax, ax)  # xx: column offset, yy: row offset
    d = np.stack([xx, yy], axis=-1).astype(np.float64)
    return np.einsum("hwi,ij,hwj->hw", d, inv, d)


def _normalized(k: np.ndarray) -> np.ndarray:
    return k / k.sum()


@settings(max_examples=15)
@given(size=odd_sizes, sx=sigmas, sy=sigmas, theta=angles, beta=betas)
def test_gaussian_family_matches_explicit_covariance(
    size: int, sx: float, sy: float, theta: float, beta: float
) -> None:
    q = _quadratic_form_reference(size, sx, sy, theta)
    cases = [
        (gaussian_kernels(size, [sx], [sy], [theta]), np.exp(-0.5 * q)),
        (generalized_gaussian_kernels(size, [sx], [sy], [theta], [beta]), np.exp(-0.5 * q**beta)),
        (plateau_kernels(size, [sx], [sy], [theta], [beta]), 1 / (1 + q**beta)),
    ]
    for kernel, reference in cases:
        assert kernel.shape == (1, size, size) and kernel.dtype == torch.float32
        check_kernels_normalized(kernel)
        np.testing.assert_allclose(kernel[0].numpy(), _normalized(reference), atol=1e-6)


@settings(max_examples=10)
@given(size=odd_sizes, sigma=sigmas)
def test_isotropic_gaussian_is_outer_product_of_1d(size: int, sigma: float) -> None:
    k1 = gaussian_kernels_1d(size, [sigma])
    check_kernels_normalized(k1.unsqueeze(1))
    ax = np.arange(size) - size // 2
    np.testing.assert_allclose(
        k1[0].numpy(), _normalized(np.exp(-(ax**2) / (2 * sigma**2))), atol=1e-7
    )
    np.testing.assert_allclose(
        gaussian_kernels(size, sigma)[0].numpy(), np.outer(k1[0], k1[0]), atol=1e-7
    )


@settings(max_examples=15)
@given(size=odd_sizes, cutoff=st.floats(0.05, math.pi))
def test_sinc_matches_bessel_formula(size: int, cutoff: float) -> None:
    ax = np.arange(size) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = cutoff * scipy.special.j1(cutoff * r) / (2 * np.pi * r)
    ref[size // 2, size // 2] = cutoff**2 / (4 * np.pi)
    kernel = sinc_kernels(size, [cutoff])
    check_kernels_normalized(kernel)
    np.testing.assert_allclose(kernel[0].numpy(), _normalized(ref), atol=1e-6)


def test_sinc_rings_with_negative_taps() -> None:
    assert float(sinc_kernels(21, [math.pi / 4]).min()) < 0


def _tent_integral(u: np.ndarray) -> np.ndarray:
    """Antiderivative of the unit tent ``max(0, 1 - |u|)`` from minus infinity."""
    u = np.clip(u, -1, 1)
    return np.where(u < 0, (u + 1) ** 2 / 2, 1 - (1 - u) ** 2 / 2)


@settings(max_examples=15)
@given(length=st.floats(0.5, 30.0))
def test_horizontal_motion_is_exact_box_integral(length: float) -> None:
    size = int(motion_size(torch.tensor([length]))[0])
    kernel = motion_kernels(size, [length], [0.0])[0].numpy()
    j = np.arange(size) - size // 2
    row = _tent_integral(length / 2 - j) - _tent_integral(-length / 2 - j)
    expected = np.zeros((size, size))
    expected[size // 2] = row / row.sum()
    np.testing.assert_allclose(kernel, expected, atol=1e-5)
    vertical = motion_kernels(size, [length], [90.0])[0].numpy()
    np.testing.assert_allclose(vertical, expected.T, atol=1e-5)


@settings(max_examples=15)
@given(length=st.floats(6.0, 30.0), angle=st.floats(-180.0, 180.0))
def test_motion_segment_moments(length: float, angle: float) -> None:
    """Centroid at the centre; spread along the direction of a uniform segment (L^2 / 12)."""
    size = int(motion_size(torch.tensor([length]))[0])
    kernel = motion_kernels(size, [length], [angle])[0].double().numpy()
    ax = np.arange(size) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    assert abs((kernel * xx).sum()) < 1e-5 and abs((kernel * yy).sum()) < 1e-5
    a = math.radians(angle)
    along = xx * math.cos(a) - yy * math.sin(a)  # rows grow downwards: screen angle
    across = xx * math.sin(a) + yy * math.cos(a)
    assert abs((kernel * along**2).sum() - length**2 / 12) < 0.4
    assert (kernel * across**2).sum() < 0.4


@settings(max_examples=15)
@given(length=st.floats(0.0, 40.0), angle=st.floats(-180.0, 180.0), radius=st.floats(0.0, 15.0))
def test_size_rules_hold_the_whole_support(length: float, angle: float, radius: float) -> None:
    """Built two pixels larger than the rule says, a kernel has an empty outer ring."""
    for kernel_fn, size in (
        (lambda s: motion_kernels(s, [length], [angle]), motion_size(torch.tensor([length]))),
        (lambda s: disk_kernels(s, [radius]), disk_size(torch.tensor([radius]))),
    ):
        k = kernel_fn(int(size[0]) + 2)[0]
        ring = torch.cat([k[0], k[-1], k[:, 0], k[:, -1]])
        assert float(ring.abs().max()) == 0.0


@pytest.mark.parametrize("radius", [2.0, 3.5, 6.0])
def test_disk_has_the_area_of_a_disk(radius: float) -> None:
    size = int(disk_size(torch.tensor([radius]))[0])
    kernel = disk_kernels(size, [radius])[0]
    check_kernels_normalized(kernel.unsqueeze(0))
    centre = float(kernel[size // 2, size // 2])
    assert centre == pytest.approx(1 / (math.pi * radius**2), rel=0.005)
    assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))


def _delta(size: int) -> torch.Tensor:
    d = torch.zeros(1, size, size)
    d[0, size // 2, size // 2] = 1.0
    return d


@pytest.mark.parametrize("size", [1, 7, 21])
def test_zero_strength_gives_an_exact_delta(size: int) -> None:
    kernels = [
        gaussian_kernels(size, [0.0]),
        gaussian_kernels(size, [0.0], [0.0], [0.7]),
        generalized_gaussian_kernels(size, [0.0], [0.0], [0.3], [0.5]),
        plateau_kernels(size, [0.0], [0.0], [0.3], [1.0]),
        motion_kernels(size, [0.0], [33.0]),
        disk_kernels(size, [0.0]),
        sinc_kernels(1, [1.0]),
    ]
    for kernel in kernels:
        assert torch.isfinite(kernel).all()
        assert torch.equal(kernel, _delta(kernel.shape[-1]))
    assert torch.equal(gaussian_kernels_1d(size, [0.0])[0], _delta(size)[0, size // 2])


def test_one_zero_sigma_gives_a_line() -> None:
    kernel = gaussian_kernels(9, [0.0], [1.5], [0.0])[0]
    assert float(kernel[:, [0, 1, 2, 3, 5, 6, 7, 8]].abs().max()) == 0.0
    np.testing.assert_allclose(
        kernel[:, 4].numpy(), gaussian_kernels_1d(9, [1.5])[0].numpy(), atol=1e-7
    )


def test_tiny_cutoff_tends_to_a_box_without_nans() -> None:
    kernel = sinc_kernels(5, [0.0])
    np.testing.assert_allclose(kernel.numpy(), np.full((1, 5, 5), 1 / 25), atol=1e-6)


def test_batch_of_kernels_equals_kernels_built_alone() -> None:
    gen = torch.Generator().manual_seed(0)
    sx, sy = 0.1 + 3 * torch.rand(6, generator=gen), 0.1 + 3 * torch.rand(6, generator=gen)
    theta, beta = torch.rand(6, generator=gen) * 3, 0.5 + torch.rand(6, generator=gen)
    length, angle = 20 * torch.rand(6, generator=gen), 180 * torch.rand(6, generator=gen)
    builders = [
        lambda i: gaussian_kernels(21, sx[i], sy[i], theta[i]),
        lambda i: generalized_gaussian_kernels(21, sx[i], sy[i], theta[i], beta[i]),
        lambda i: plateau_kernels(21, sx[i], sy[i], theta[i], beta[i]),
        lambda i: sinc_kernels(21, theta[i]),
        lambda i: motion_kernels(21, length[i], angle[i]),
        lambda i: disk_kernels(21, length[i] / 2),
    ]
    for build in builders:
        batch = build(slice(None))
        for i in range(6):
            assert torch.equal(batch[i], build(slice(i, i + 1))[0])


@pytest.mark.parametrize(
    ("sigma", "size"),
    [(0.0, 1), (0.1, 3), (0.3, 3), (0.7, 7), (1.0, 7), (2.0, 13), (2.9, 19), (3.4, 21), (9.0, 21)],
)
def test_auto_size_rule(sigma: float, size: int) -> None:
    assert int(auto_gaussian_size(torch.tensor([sigma]))[0]) == size


@pytest.mark.parametrize("size", [0, 2, 4, -1, 3.5])
def test_invalid_size_raises(size: float) -> None:
    with pytest.raises(ValueError, match="kernel size must be a positive odd integer"):
        gaussian_kernels(size, [1.0])  # type: ignore[arg-type]

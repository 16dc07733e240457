"""The reusable checkers catch broken operators (a user-defined op, as in the README)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given

from degkit.ops.base import Op, Params
from degkit.rng import BatchStreams
from degkit.testing import (
    check_batch_equals_per_sample,
    check_batch_size_invariance,
    check_contract,
    check_gradients,
    check_identity,
    check_kernels_normalized,
    check_monotone_severity,
    image_batches,
    seeds,
)


@dataclasses.dataclass
class Brighten(Op):
    """A well-behaved user op: add a per-sample offset."""

    name = "test_brighten"
    param_limits = {"amount": (0.0, 1.0)}
    amount: tuple[float, float] = (0.0, 0.3)

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        return {"amount": rng.uniform(*self.amount)}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return (x + params["amount"].to(x).view(-1, 1, 1, 1)).clamp(0, 1)


@dataclasses.dataclass
class GlobalNoise(Brighten):
    """Broken: draws from torch's global RNG, so the output depends on the batch."""

    name = "test_global_noise"

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return (x + 0.1 * torch.rand(x.shape[0], 1, 1, 1)).clamp(0, 1)


@dataclasses.dataclass
class Overshoot(Brighten):
    """Broken: leaves the [0, 1] range."""

    name = "test_overshoot"

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return x * 2 - 0.5


@dataclasses.dataclass
class BatchMean(Brighten):
    """Broken: mixes samples of the batch."""

    name = "test_batch_mean"

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return (x + x.mean(0, keepdim=True)) / 2


@dataclasses.dataclass
class InPlace(Brighten):
    """Broken: writes its result into the input batch."""

    name = "test_in_place"

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return x.mul_(0.5)


@given(x=image_batches(min_n=2), seed=seeds())
def test_a_good_op_passes_every_check(x: torch.Tensor, seed: int) -> None:
    op = Brighten()
    check_contract(op, x, seed)
    check_batch_equals_per_sample(op, x, seed)
    check_batch_size_invariance(op, x, seed)
    check_identity(op, x, {"amount": torch.zeros(x.shape[0], dtype=torch.float64)})
    x_mid = x * 0.5
    check_monotone_severity(
        op, x_mid, lambda a: {"amount": torch.full((x.shape[0],), a)}, [0.0, 0.1, 0.2]
    )
    check_gradients(op, x_mid, {"amount": torch.full((x.shape[0],), 0.1)})


def test_global_rng_fails_batch_size_invariance() -> None:
    x = torch.rand(3, 3, 8, 8) * 0.5
    with pytest.raises(AssertionError, match="test_global_noise"):
        check_batch_size_invariance(GlobalNoise(), x)


def test_out_of_range_fails_contract() -> None:
    with pytest.raises(AssertionError, match=r"not in \[0, 1\]"):
        check_contract(Overshoot(), torch.rand(2, 3, 8, 8))


def test_writing_to_the_input_fails_contract() -> None:
    with pytest.raises(AssertionError, match="wrote to its input"):
        check_contract(InPlace(), torch.rand(2, 3, 8, 8))


def test_mixing_samples_fails_batch_check() -> None:
    with pytest.raises(AssertionError, match="batch vs per-sample"):
        check_batch_equals_per_sample(BatchMean(), torch.rand(3, 3, 8, 8))


def test_identity_and_monotone_checks_fail_when_violated() -> None:
    x = torch.rand(2, 3, 8, 8) * 0.5
    with pytest.raises(AssertionError, match="identity at zero strength"):
        check_identity(Brighten(), x, {"amount": torch.full((2,), 0.2)})
    with pytest.raises(AssertionError, match="distance fell"):
        check_monotone_severity(
            Brighten(), x, lambda a: {"amount": torch.full((2,), a)}, [0.2, 0.1, 0.3]
        )


def test_kernel_normalisation_check() -> None:
    check_kernels_normalized(torch.full((2, 3, 3), 1 / 9))
    with pytest.raises(AssertionError, match="kernel sums deviate"):
        check_kernels_normalized(torch.full((1, 3, 3), 1 / 8))

"""Reusable property tests for degradation operators.

``degkit.testing.strategies`` has hypothesis strategies (image batches, seeds,
indices); ``degkit.testing.invariants`` has checkers (contract, identity at zero
strength, batch equals per-sample, batch-size invariance, monotone severity,
gradients, normalised kernels) that work on any op following the
:class:`degkit.ops.Op` contract, yours included.
"""

from degkit.testing.invariants import (
    check_batch_equals_per_sample,
    check_batch_size_invariance,
    check_contract,
    check_gradients,
    check_identity,
    check_kernels_normalized,
    check_monotone_severity,
    mse,
)
from degkit.testing.strategies import image_batches, indices, seeds

__all__ = [
    "check_batch_equals_per_sample",
    "check_batch_size_invariance",
    "check_contract",
    "check_gradients",
    "check_identity",
    "check_kernels_normalized",
    "check_monotone_severity",
    "image_batches",
    "indices",
    "mse",
    "seeds",
]

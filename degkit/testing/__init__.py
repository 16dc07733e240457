"""Reusable property tests for degradation operators.

``degkit.testing.strategies`` has hypothesis strategies (image batches, seeds,
indices); ``degkit.testing.invariants`` has checkers that work on any op
following the :class:`degkit.ops.Op` contract, yours included: contract,
batch equals per-sample, batch-size invariance (``check_op`` runs these
three), identity at zero strength, monotone severity, gradients and
normalised kernels.
"""

from degkit.extras import require

require("hypothesis", "testing", "degkit.testing")

from degkit.testing.invariants import (  # noqa: E402  (after the check above)
    check_batch_equals_per_sample,
    check_batch_size_invariance,
    check_contract,
    check_gradients,
    check_identity,
    check_kernels_normalized,
    check_monotone_severity,
    check_op,
    mse,
)
from degkit.testing.strategies import image_batches, indices, seeds  # noqa: E402

__all__ = [
    "check_batch_equals_per_sample",
    "check_batch_size_invariance",
    "check_contract",
    "check_gradients",
    "check_identity",
    "check_kernels_normalized",
    "check_monotone_severity",
    "check_op",
    "image_batches",
    "indices",
    "mse",
    "seeds",
]

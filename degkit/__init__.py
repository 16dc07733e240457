"""degkit: seeded, batched, per-sample image degradation with captions for
real-world super-resolution research.

Subpackages: :mod:`degkit.rng` (counter-based randomness), :mod:`degkit.ops`
(operators), :mod:`degkit.pipeline`, :mod:`degkit.captions`,
:mod:`degkit.recipes`, :mod:`degkit.data` (parquet datasets) and
:mod:`degkit.testing` (property tests for operators).
"""

__version__ = "0.1.0"

"""Counter-based randomness: every sample owns its own random streams.

A stream is identified by the triple ``(seed, sample index, op path)``: its
key is the BLAKE2b hash of that triple, and its ``k``-th 64-bit draw is the
keyed BLAKE2b hash of the counter ``k`` (a counter-mode generator, like Philox
but with a cryptographic mixing function). Nothing else enters the key, so
what a sample draws depends only on the dataset seed, the sample's global
index and where the op sits in the pipeline (its *path*, e.g.
``"stage1/blur"``), never on batch size, batch position, worker count, device
or the order in which samples are processed. Opening a stream costs one hash,
which keeps per-sample streams cheap at any batch size.

``BatchStreams`` bundles the streams of the samples in one batch for one op
path. Ops draw their per-sample parameters from it (``uniform``, ``integers``,
``grid``, ``choice``, ``bernoulli``, ``permutation``, ``field_seeds``), always one value
per sample from that sample's own stream, so drawing for a batch equals
drawing for each sample alone. Uniform floats take the top 53 bits of a draw;
integers are unbiased (draws past the largest multiple of the range are
rejected). Noise fields are not drawn here: an op draws a 63-bit *field seed*
per sample, records it, and later regenerates the field from it, which keeps
``apply`` pure and every record replayable. The noise ops regenerate theirs on
the image's device with :mod:`degkit.ops.fields` (counter-based SplitMix64 in
tensor arithmetic); the weather ops draw theirs on the CPU with
:func:`field_generator` (a NumPy ``SFC64`` generator seeded with a hash of the
field seed: the same bits on every platform).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["STREAM_VERSION", "BatchStreams", "SampleStream", "field_generator", "derive_key"]

# Raised whenever what a seed draws changes (2: keyed-BLAKE2b streams and SFC64
# fields, replacing NumPy Philox for both; 3: noise fields drawn on the image's
# device by degkit.ops.fields). Builds record it and refuse to resume a dataset
# begun under another version.
STREAM_VERSION = 3

_TWO_64 = 1 << 64


def derive_key(*parts: object) -> int:
    """Hash the parts (seed, index, path, ...) into a 128-bit integer key."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "little")


class SampleStream:
    """The draws of one sample at one op path: keyed BLAKE2b of a counter."""

    __slots__ = ("_key", "_counter")

    def __init__(self, seed: int, index: int, path: str) -> None:
        self._key = derive_key("degkit", seed, index, path).to_bytes(16, "little")
        self._counter = 0

    def bits(self) -> int:
        """The next 64 random bits, as an int in ``[0, 2**64)``."""
        counter = self._counter.to_bytes(8, "little")
        self._counter += 1
        digest = hashlib.blake2b(counter, digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little")

    def random(self) -> float:
        """A float in ``[0, 1)`` with 53 random bits."""
        return (self.bits() >> 11) * 2.0**-53

    def below(self, n: int) -> int:
        """An unbiased integer in ``[0, n)``."""
        limit = _TWO_64 - _TWO_64 % n
        while (draw := self.bits()) >= limit:
            pass
        return draw % n


def field_generator(field_seed: int) -> np.random.Generator:
    """Return the generator of a recorded noise-field seed (a signed 64-bit int)."""
    return np.random.Generator(np.random.SFC64(derive_key("field", int(field_seed))))


class BatchStreams:
    """The random streams of a batch of samples at one op path.

    Args:
        seed: dataset seed.
        indices: the global index of each sample in the batch.
        path: the op path; :meth:`child` extends it.
    """

    def __init__(self, seed: int, indices: Sequence[int] | torch.Tensor, path: str = "") -> None:
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        self.seed = int(seed)
        self.indices = [int(i) for i in indices]
        self.path = path
        self._streams: list[SampleStream] | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.indices)

    def __len__(self) -> int:
        return self.n

    @property
    def streams(self) -> list[SampleStream]:
        """One stream per sample, created on first use."""
        if self._streams is None:
            self._streams = [SampleStream(self.seed, i, self.path) for i in self.indices]
        return self._streams

    def child(self, name: str | int) -> BatchStreams:
        """Streams of the same samples at the sub-path ``path/name``."""
        path = f"{self.path}/{name}" if self.path else str(name)
        return BatchStreams(self.seed, self.indices, path)

    def subset(self, positions: Sequence[int] | torch.Tensor) -> BatchStreams:
        """Streams of some of the samples (by position in this batch), same path.

        The selected samples keep the exact state of their streams, so a branch
        that only some samples take draws what those samples would draw alone.
        """
        if isinstance(positions, torch.Tensor):
            positions = positions.tolist()
        out = BatchStreams(self.seed, [self.indices[p] for p in positions], self.path)
        if self._streams is not None:
            out._streams = [self._streams[p] for p in positions]
        return out

    # -- per-sample draws -------------------------------------------------
    def uniform(self, low: float, high: float) -> torch.Tensor:
        """One float64 draw in ``[low, high)`` per sample."""
        span = high - low
        return torch.tensor([low + span * g.random() for g in self.streams], dtype=torch.float64)

    def integers(self, low: int, high: int) -> torch.Tensor:
        """One int64 draw in ``[low, high]`` (inclusive) per sample."""
        return torch.tensor([low + g.below(high - low + 1) for g in self.streams])

    def grid(self, low: float, high: float, step: float) -> torch.Tensor:
        """One float64 draw per sample, uniform over ``{low, low + step, ..., <= high}``
        (rounded to 9 decimals, so a step of 0.1 gives 0.3, not 0.30000000000000004)."""
        steps = math.floor((high - low) / step + 1e-9)
        return torch.round(low + self.integers(0, steps).double() * step, decimals=9)

    def bernoulli(self, p: float) -> torch.Tensor:
        """One boolean per sample, True with probability ``p``."""
        return torch.tensor([bool(g.random() < p) for g in self.streams], dtype=torch.bool)

    def choice(self, n_options: int, weights: Sequence[float] | None = None) -> torch.Tensor:
        """One option index in ``[0, n_options)`` per sample (optionally weighted)."""
        if weights is None:
            return self.integers(0, n_options - 1)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_options,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {n_options} non-negative numbers, got {weights}")
        cdf = np.cumsum(w / w.sum())
        picks = [int(np.searchsorted(cdf, g.random(), side="right")) for g in self.streams]
        return torch.tensor([min(p, n_options - 1) for p in picks])

    def permutation(self, n_items: int) -> list[list[int]]:
        """One random permutation of ``range(n_items)`` per sample (Fisher-Yates)."""
        orders = []
        for g in self.streams:
            order = list(range(n_items))
            for i in range(n_items - 1, 0, -1):
                j = g.below(i + 1)
                order[i], order[j] = order[j], order[i]
            orders.append(order)
        return orders

    def field_seeds(self) -> torch.Tensor:
        """One signed 64-bit seed per sample for regenerating a noise field."""
        return torch.tensor([g.bits() >> 1 for g in self.streams], dtype=torch.int64)

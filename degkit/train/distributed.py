"""Data-parallel training under ``torchrun``: process group, gradient averaging.

Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), a run joins
the process group (gloo on the CPU, NCCL on CUDA); each rank reads its own,
disjoint part of every epoch, and after each backward pass the gradients of
the trained parameters are averaged over the ranks, so all ranks keep equal
weights. Contrastive losses see the whole global batch: :func:`gather_rows`
concatenates the ranks' embeddings in rank order (gradients flow back to each
rank's own rows) and :func:`gather_list` their captions, so every rank computes
the loss of the concatenated batch, and after :func:`average_gradients` the
gradients equal those of one process on that batch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "SINGLE",
    "World",
    "average_gradients",
    "gather_list",
    "gather_rows",
    "join_world",
    "rank_device",
]


@dataclasses.dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` data-parallel processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = World()
"""A run in one process."""


def join_world(device: torch.device) -> World:
    """Join ``torchrun``'s process group when ``WORLD_SIZE`` > 1; a single process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return SINGLE
    if not dist.is_initialized():
        if device.type == "cuda":  # object collectives use the current device
            torch.cuda.set_device(rank_device(device))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def rank_device(device: torch.device) -> torch.device:
    """``cuda`` without an index means this process's GPU: ``cuda:$LOCAL_RANK`` (0 alone)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def average_gradients(parameters: Iterable[torch.nn.Parameter], world: World) -> None:
    """All-reduce and average gradients over the ranks (a missing gradient counts as zero)."""
    if world.size == 1:
        return
    for param in parameters:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad)
        param.grad /= world.size


def gather_rows(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's rows of ``tensor``, concatenated in rank order (ranks may hold different
    numbers of rows); the gradient of each rank's own rows flows back to it.

    The backward pass sums, over the ranks, the gradients of a rank's rows, so
    when every rank computes the same loss of the gathered rows, the averaged
    gradients (:func:`average_gradients`) are that loss's gradients.
    """
    if world.size == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    counts = [torch.zeros((), dtype=torch.long, device=tensor.device) for _ in range(world.size)]
    dist.all_gather(counts, torch.tensor(len(tensor), device=tensor.device))
    counts = [int(c) for c in counts]
    if max(counts) == 0:
        return tensor
    padding = (0, 0) * (tensor.ndim - 1) + (0, max(counts) - len(tensor))
    parts = all_gather(torch.nn.functional.pad(tensor, padding))
    return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])


def gather_list(items: Sequence[Any], world: World) -> list[Any]:
    """Every rank's ``items`` (picklable), concatenated in rank order."""
    if world.size == 1:
        return list(items)
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]

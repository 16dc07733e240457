"""Data-parallel training under ``torchrun``: process group, gradient averaging.

Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), a run joins
the process group (gloo on the CPU, NCCL on CUDA); each rank reads its own,
disjoint part of every epoch, and after each backward pass the gradients of
the trained parameters are averaged over the ranks, so all ranks keep equal
weights. Contrastive batches are per rank (no feature gathering across ranks).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist

__all__ = ["SINGLE", "World", "average_gradients", "join_world", "rank_device"]


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

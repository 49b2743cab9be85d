"""The little the trainer needs of torch.distributed: set-up from torchrun's environment, rank, reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """Whether ``init_world`` created the process group (and ``leave_world`` should end it)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_type: str) -> World:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns_group)


def leave_world(world: World) -> None:
    """End the process group ``init_world`` created, so that no communication thread outlives it at
    exit (which aborts the process: "terminate called without an active exception")."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def average_(tensors: list[torch.Tensor], world: World) -> None:
    """Replace each tensor by its mean over all processes (no-op when not distributed)."""
    if not world.distributed or not tensors:
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world.size)


def any_true(flag: torch.Tensor, world: World) -> bool:
    """Whether ``flag`` is set on any process."""
    if world.distributed:
        flag = flag.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def barrier(world: World) -> None:
    """Wait for every process (no-op when not distributed)."""
    if world.distributed:
        dist.barrier()


def average_float_buffers_(module: torch.nn.Module, world: World) -> None:
    """Average ``module``'s floating-point buffers (BatchNorm statistics) over processes, so every
    process holds the same network (no-op when not distributed)."""
    average_([b for b in module.buffers() if b.is_floating_point()], world)


def rank_spread(module: torch.nn.Module, world: World) -> float:
    """Largest difference between processes of ``module``'s parameter checksum (0 when identical)."""
    checksum = torch.stack([p.double().sum() for p in module.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(checksum) for _ in range(world.size)]
    dist.all_gather(gathered, checksum)
    values = torch.cat(gathered)
    return float(values.max() - values.min())

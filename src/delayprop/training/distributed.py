"""Data parallelism with torch.distributed (DDP-style): one process per GPU or CPU group.

Started by ``torchrun``: every rank sees the same global batch order, takes its own slice of each
batch, and the gradients are summed across ranks after backward (the local loss is scaled by
local / global batch size, so the sum is the gradient of the global-batch mean).  NCCL on GPUs,
gloo on CPUs.  Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init_distributed", "shutdown_distributed"]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, idx):
        """This rank's part of a global batch of sample indices."""
        return idx[self.rank :: self.world_size] if self.enabled else idx

    def all_reduce_grads(self, model: nn.Module) -> None:
        """Sum the gradients of all ranks (one flat buffer, one collective)."""
        if not self.enabled:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def sum(self, values: list[float]) -> list[float]:
        """Sum a few scalars over ranks (evaluation counts, losses)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group described by torchrun's environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size())


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Spike-count regularisation of the EventProp papers (Nowotny et al. 2025; Meszaros et al. 2025).

For a hidden neuron j whose spike count summed over the batch (of size B) is n_j, each of its
spikes kicks the adjoint in backward:

    lambda_V -= (k / B^2) (n_j - nu B)       k = strength_upper if n_j > nu B else strength_lower

This is the gradient of a quadratic penalty on the batch-mean spike count pulling it towards
``target`` (nu, spikes per neuron per example).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["SpikeCountRegularizer"]


@dataclass(frozen=True)
class SpikeCountRegularizer:
    """Target ``target`` spikes per neuron per example; strengths for counts above / below it."""

    target: float = 14.0
    strength_upper: float = 5e-11
    strength_lower: float = 0.0

    def __post_init__(self) -> None:
        values = (self.target, self.strength_upper, self.strength_lower)
        if not all(0 <= v < math.inf for v in values):
            raise ValueError(f"regulariser target and strengths must be finite and >= 0, got "
                             f"{values}")  # fmt: skip

    def kick(self, counts: Tensor, batch_size: int) -> Tensor:
        """Per-neuron lambda_V kick for batch-summed spike ``counts`` [n_neurons].

        Under torch.distributed the counts and the batch size are summed over all processes
        first, so data-parallel training regularises the global batch.
        """
        counts = counts.to(torch.float64)
        if dist.is_available() and dist.is_initialized():
            totals = torch.cat([counts, torch.tensor([float(batch_size)], dtype=torch.float64)])
            dist.all_reduce(totals)
            counts, batch_size = totals[:-1], int(totals[-1])
        excess = counts - self.target * batch_size
        k = torch.where(excess > 0, self.strength_upper, self.strength_lower)
        return k * excess / float(batch_size) ** 2

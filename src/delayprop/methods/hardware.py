"""Hardware-aware training (DelGrad's chip-in-the-loop experiments, Goltz et al. 2025).

A neuromorphic chip differs from the ideal model: thresholds vary from neuron to neuron (fixed
pattern) and from trial to trial, delays jitter, weights are clipped and quantised, delays live on
a grid, and inputs are often fed several times (multiplexed) to raise their effect.  Training
through a model of these imperfections makes the network robust to them.  Quantisation uses the
straight-through estimator (the forward pass sees the rounded value, the gradient passes as if
unrounded).  Noise is drawn in every forward pass, at evaluation too: it is part of the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HardwareModel", "straight_through_round", "clip_and_round"]


def straight_through_round(x: Tensor, step: float | Tensor) -> Tensor:
    """round(x / step) * step in the forward pass, identity in the backward pass.

    Rounds to the nearest multiple (ties to even, as ``torch.round``); ``step`` is a number or
    a tensor that broadcasts against ``x`` (e.g. one step per neuron).
    """
    return x + (torch.round(x / step) * step - x).detach()


def clip_and_round(
    x: Tensor,
    step: float | Tensor | None,
    low: float | Tensor | None = None,
    high: float | Tensor | None = None,
) -> Tensor:
    """Clip ``x`` to [low, high] (gradient zero outside, as ``clamp``), then round it to the
    grid ``step`` with the straight-through estimator.  None skips the part."""
    if low is not None or high is not None:
        x = x.clamp(low, high)
    if step is not None:
        x = straight_through_round(x, step)
    return x


@dataclass(frozen=True)
class HardwareModel:
    """Imperfections of a neuromorphic substrate (times in ms, weights in model units).

    DelGrad's simulated BrainScaleS-2 values (in units of tau_syn and its weight scale):
    threshold_fixed_sd=0.08, threshold_trial_sd=0.04, delay_jitter_sd=0.01 tau_syn,
    weight_clip=2.1, weight_step=1/30, multiplex=5.
    """

    threshold_fixed_sd: float = 0.0
    threshold_trial_sd: float = 0.0
    delay_jitter_sd: float = 0.0
    weight_clip: float | None = None
    weight_step: float | None = None
    delay_step: float | None = None
    multiplex: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("threshold_fixed_sd", "threshold_trial_sd", "delay_jitter_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("weight_clip", "weight_step", "delay_step"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None")
        if self.multiplex < 1:
            raise ValueError("multiplex must be >= 1")

    def fixed_pattern(self, n: int, dtype: torch.dtype) -> Tensor:
        """Per-neuron threshold offsets, drawn once (seeded)."""
        g = torch.Generator().manual_seed(self.seed)
        return torch.randn(n, generator=g, dtype=dtype) * self.threshold_fixed_sd

    def thresholds(self, threshold: float, offset: Tensor, batch: int) -> Tensor:
        """[batch, n] thresholds: nominal + fixed pattern + trial-to-trial noise."""
        noise = torch.randn(batch, offset.numel(), dtype=offset.dtype, device=offset.device)
        return threshold + offset.unsqueeze(0) + noise * self.threshold_trial_sd

    def weights(self, weight: Tensor) -> Tensor:
        clip = self.weight_clip
        return clip_and_round(weight, self.weight_step, None if clip is None else -clip, clip)

    def delays(self, delay: Tensor | None, batch: int) -> Tensor | None:
        """Quantised delays, with per-trial jitter ([batch, n_out, n_in] when jittered)."""
        if delay is None:
            return None
        if self.delay_step is not None:
            delay = straight_through_round(delay, self.delay_step)
        if self.delay_jitter_sd > 0:
            noise = torch.randn((batch, *delay.shape), dtype=delay.dtype, device=delay.device)
            delay = (delay.unsqueeze(0) + noise * self.delay_jitter_sd).clamp(min=0.0)
        return delay

    def multiplex_inputs(self, t_in: Tensor) -> Tensor:
        """[batch, n] -> [batch, n * multiplex]: every channel repeated ``multiplex`` times."""
        return t_in.repeat_interleave(self.multiplex, dim=1) if self.multiplex > 1 else t_in

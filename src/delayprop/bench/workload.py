"""What the benchmark runs: SHD-shaped input, activity calibration, timed training steps, RSS.

Everything here runs inside one benchmark process (``worker``); nothing is timed that is not a
full training step (forward, backward, Adam, delay clamping).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import losses
from ..init import Normal
from ..nn import LIF, constrain_, split_parameters
from ..spikes import Spikes

__all__ = [
    "synthetic_shd",
    "shd_weight_init",
    "calibrate_rates",
    "hidden_rates",
    "Timing",
    "time_training_steps",
    "current_rss_mb",
    "peak_rss_mb",
]


def synthetic_shd(
    batch: int, *, n_in: int = 700, n_classes: int = 20, duration: float = 1000.0,
    spikes_per_sample: int = 5000, seed: int = 0,
) -> tuple[Spikes, torch.Tensor]:  # fmt: skip
    """SHD-shaped random input: ``spikes_per_sample`` spikes per sample at uniform times in
    [0, duration) ms on uniform channels of ``n_in``, and uniform labels in [0, n_classes).

    The Spiking Heidelberg Digits have 700 channels, ~1 s trials and a few thousand spikes per
    sample; for timing and memory only these sizes matter, not the structure of speech.
    """
    if batch <= 0 or n_in <= 0 or spikes_per_sample < 0 or not duration > 0:
        raise ValueError("batch, n_in and duration must be positive, spikes_per_sample >= 0")
    rng = np.random.default_rng(seed)
    n = batch * spikes_per_sample
    spikes = Spikes.from_arrays(
        rng.uniform(0.0, duration, n), rng.integers(0, n_in, n),
        np.repeat(np.arange(batch), spikes_per_sample), batch, n_in, duration,
    )  # fmt: skip
    labels = torch.from_numpy(rng.integers(0, n_classes, batch))
    return spikes, labels


def shd_weight_init(n_hidden_layers: int) -> tuple[list[Normal], Normal]:
    """Initial weights of the published SHD/SSC configurations (Meszaros et al. 2025): input
    N(0.03, 0.01), hidden N(0.02, 0.03), readout N(0, 0.03); recurrent N(0, 0.02).  Returns
    (feed-forward initialisers, one per projection, recurrent initialiser)."""
    hidden = [Normal(0.03, 0.01)] + [Normal(0.02, 0.03)] * (n_hidden_layers - 1)
    return [*hidden, Normal(0.0, 0.03)], Normal(0.0, 0.02)


def hidden_rates(spike_counts: list[torch.Tensor], batch: int) -> list[float]:
    """Spikes per neuron per sample of each layer, from its per-neuron spike counts summed over
    a batch of ``batch`` samples (as ``SpikeRecorder`` and the baselines record them)."""
    return [float(c.sum()) / c.numel() / batch for c in spike_counts]


@torch.no_grad()
def calibrate_rates(
    model: nn.Sequential, spikes: Spikes, target: float, *, tolerance: float = 0.05,
    max_iter: int = 30,
) -> list[float]:  # fmt: skip
    """Scale the incoming weights (feed-forward and recurrent) of each hidden LIF layer of an
    eventprop network, first layer first, so that it emits ``target`` spikes per neuron per
    sample (within ``tolerance`` relative) on ``spikes``.  Bisection on log(scale); returns the
    scale factors.  Raises ``RuntimeError`` if a layer cannot reach the target."""
    scales = []
    x = spikes
    for layer in model[:-1]:
        if not isinstance(layer, LIF):
            raise TypeError(f"hidden layers must be delayprop.LIF, got {type(layer).__name__}")
        params = [p for p in (layer.weight, layer.rec_weight) if p is not None]
        base = [p.detach().clone() for p in params]

        def rate(scale: float, layer=layer, params=params, base=base, x=x) -> float:
            for p, b in zip(params, base):
                p.copy_(b * scale)
            return layer(x).units.numel() / layer.n_out / x.batch_size

        lo, hi = 0.0, 1.0
        while rate(hi) < target:  # grow until the target is bracketed
            lo, hi = hi, hi * 4
            if hi > 1e6:
                raise RuntimeError(f"layer of {layer.n_out} neurons stays below {target} spikes")
        scale = hi
        for _ in range(max_iter):
            r = rate(scale)
            if abs(r - target) <= tolerance * target:
                break
            lo, hi = (scale, hi) if r < target else (lo, scale)
            scale = np.sqrt(lo * hi) if lo > 0 else hi / 2
        scales.append(float(scale))
        x = layer(x)
    return scales


@dataclass
class Timing:
    """Seconds per training step: warm-up steps (not counted) and timed steps; the number of
    steps whose gradients had non-finite entries (zeroed before the optimiser step)."""

    warmup: list[float]
    timed: list[float]
    nonfinite_steps: int = 0

    @property
    def cold(self) -> bool:
        """True when the only timed step was the first one (a very slow configuration)."""
        return not self.warmup

    @property
    def median(self) -> float:
        return statistics.median(self.timed)

    @property
    def minimum(self) -> float:
        return min(self.timed)


def time_training_steps(
    model: nn.Module, spikes: Spikes, labels: torch.Tensor, *, warmup: int, max_timed: int,
    budget_s: float, slow_s: float = 5.0, single_step_s: float = 30.0,
) -> Timing:  # fmt: skip
    """Run full training steps (forward, exp-weighted-mean cross-entropy, backward, Adam with
    separate delay group, delay clamping) and time each with ``time.perf_counter``.

    ``warmup`` steps are run first (only one if a step takes longer than ``slow_s``); then timed
    steps until ``max_timed`` are done or their total exceeds ``budget_s`` (at least one).
    If the very first step takes longer than ``single_step_s`` it is the only one, reported as
    the timed step (``Timing.cold``): its first-call overhead is small against such a step.
    Non-finite gradient entries are counted and zeroed (inside the timed step, a negligible
    cost) so that one overflow does not end the measurement with NaN parameters.
    """
    weights, delays = split_parameters(model)
    groups = [{"params": weights, "lr": 1e-3}]
    if delays:
        groups.append({"params": delays, "lr": 0.1})
    opt = torch.optim.Adam(groups)

    params = weights + delays
    nonfinite = 0

    def step() -> float:
        nonlocal nonfinite
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        v = model(spikes)
        loss = losses.cross_entropy(losses.exp_weighted_mean(v), labels)
        loss.backward()
        grads = [p.grad for p in params if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            nonfinite += 1
            for g in grads:
                torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()
        constrain_(model)
        elapsed = time.perf_counter() - start
        if not torch.isfinite(loss):
            raise FloatingPointError("training step produced a non-finite loss")
        return elapsed

    first = step()
    if first > single_step_s:
        return Timing([], [first], nonfinite)
    warm = [first]
    while len(warm) < warmup and warm[-1] <= slow_s:
        warm.append(step())
    timed = [step()]
    while len(timed) < max_timed and sum(timed) < budget_s:
        timed.append(step())
    return Timing(warm, timed, nonfinite)


def current_rss_mb() -> float:
    """Resident set size of this process now, MB (from /proc; peak RSS where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""Named tiny problems shared by the tests: random spike batches and small networks."""

from __future__ import annotations

import numpy as np
import torch

from delayprop import Spikes


def random_spikes(
    batch: int, n_units: int, duration: float, per_sample: int, seed: int, *, on_grid: float = 0,
    span: float = 0.8,
) -> Spikes:
    """``per_sample`` spikes per sample at uniform random times in [0, span x duration) ms
    (rounded to ``on_grid`` ms if > 0) and units; float64 times."""
    rng = np.random.default_rng(seed)
    trains = []
    for _ in range(batch):
        t = rng.uniform(0, duration * span, per_sample)
        if on_grid:
            t = np.round(t / on_grid) * on_grid
        trains.append((t, rng.integers(0, n_units, per_sample)))
    return Spikes.from_lists(trains, n_units, duration, dtype=torch.float64)


def spike_loss_weights(seed: int, batch: int, n_units: int):
    """A deterministic dL/dt for every output spike: R[b, j] cos(0.1 step)."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, n_units)))

    def grad_fn(steps, units, samples):
        return r[samples.long(), units.long()] * torch.cos(0.1 * steps.double())

    return grad_fn

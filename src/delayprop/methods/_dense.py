"""Shared parts of the dense time-stepped baselines: rasterised input, projections, network.

A dense network runs on rasters [batch, channels, n_steps] (time innermost, the layout of
``conv1d``): the input spikes are binned to the engine's grid, each projection turns a raster into
the input current of the next layer, and the neurons run through ``_scan``.  The network returns
the readout voltage trace [batch, n_steps, n_out] exactly like ``delayprop.LIReadout``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..functional import n_steps_for
from ..init import Init, Normal, apply_init
from ..spikes import Spikes
from ._scan import ScanSettings, li_scan, lif_scan

__all__ = ["rasterise", "per_projection", "DenseProjection", "DenseNetwork"]


def rasterise(spikes: Spikes, dt: float, dtype: torch.dtype) -> Tensor:
    """Spike counts [batch, n_units, n_steps] on the engine's grid.

    A spike at t ms lands in step round(t / dt) (computed in ``dtype``, as the engine does);
    n_steps = ceil(duration / dt); spikes at or after the last step are dropped, as in the engine.
    """
    n_steps = n_steps_for(spikes.duration, dt)
    steps = torch.round(spikes.times.detach().to(dtype) / dt).long()
    keep = steps < n_steps
    flat = (spikes.samples.long()[keep] * spikes.n_units + spikes.units.long()[keep]) * n_steps
    flat = flat + steps[keep]
    out = torch.zeros(spikes.batch_size * spikes.n_units * n_steps, dtype=dtype)
    out.index_add_(0, flat.cpu(), torch.ones(flat.numel(), dtype=dtype))
    return out.view(spikes.batch_size, spikes.n_units, n_steps)


def per_projection(weight_init: list[Init | None] | None, n: int) -> list[Init | None]:
    """One weight initialiser per projection (None: the default N(0, 1/n_in))."""
    if weight_init is None:
        return [None] * n
    if len(weight_init) != n:
        raise ValueError(
            f"weight_init needs one entry per projection ({n}), got {len(weight_init)}"
        )
    return list(weight_init)


class DenseProjection(nn.Module):
    """All-to-all weights without delays: raster [batch, n_in, T] -> current [batch, n_out, T].

    ``weight`` is [n_out, n_in] (torch convention, as in the engine's layers); a spike makes the
    target's synaptic current jump by the weight in the step it arrives.
    """

    def __init__(self, n_in: int, n_out: int, weight_init: Init | None, dtype: torch.dtype):
        super().__init__()
        if n_in <= 0 or n_out <= 0:
            raise ValueError(f"n_in and n_out must be positive, got {n_in}, {n_out}")
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
        default = Normal(0.0, 1.0 / n_in**0.5)
        apply_init(self.weight, default if weight_init is None else weight_init)
        self.delay = None

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(self.weight, x)

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}"


class DenseNetwork(nn.Module):
    """input -> [projection -> LIF] x len(hidden) -> projection -> LI readout, on a dense grid.

    Subclasses supply the projections.  After each forward pass every hidden layer's spike
    count per neuron, summed over the batch, is in ``spike_counts[k]`` (int64 [n_hidden_k]), and
    the batch size in ``last_batch_size`` (for logging activity; ``run`` returns the rasters).

    Args:
        projections: one per layer (input -> first hidden, ..., last hidden -> readout).
        dt: time step, ms.  tau_mem, tau_syn: time constants, ms.  threshold: firing threshold.
        surrogate_alpha: steepness of the ATan surrogate derivative (see ``_scan``).
    """

    def __init__(
        self,
        projections: list[nn.Module],
        *,
        dt: float,
        tau_mem: float,
        tau_syn: float,
        threshold: float,
        surrogate_alpha: float,
    ) -> None:
        super().__init__()
        for name, value in dict(dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
                                surrogate_alpha=surrogate_alpha).items():  # fmt: skip
            if not (value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        self.projections = nn.ModuleList(projections)
        self.n_in = projections[0].n_in
        self.n_out = projections[-1].n_out
        self.dt = float(dt)
        self.settings = ScanSettings(dt, tau_mem, tau_syn, threshold, surrogate_alpha)
        self.spike_counts: list[Tensor] = []
        self.last_batch_size = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.projections[0].weight.dtype

    def run(self, spikes: Spikes) -> tuple[list[Tensor], Tensor]:
        """Hidden spike rasters (each [batch, n_hidden, n_steps]) and the readout voltage
        [batch, n_steps, n_out]."""
        if not isinstance(spikes, Spikes):
            raise TypeError(f"expected a Spikes batch, got {type(spikes).__name__}")
        if spikes.n_units != self.n_in:
            raise ValueError(f"input has {spikes.n_units} units, the network expects {self.n_in}")
        x = rasterise(spikes, self.dt, self.dtype)
        hidden = []
        for proj in self.projections[:-1]:
            x = lif_scan(proj(x), self.settings)
            hidden.append(x)
        v = li_scan(self.projections[-1](x), self.settings)
        with torch.no_grad():
            self.spike_counts = [h.sum(dim=(0, 2)).long() for h in hidden]
        self.last_batch_size = spikes.batch_size
        return hidden, v.transpose(1, 2)

    def forward(self, spikes: Spikes) -> Tensor:
        """Readout voltage trace [batch, n_steps, n_out] (V at t = n dt, n = 0 .. n_steps-1)."""
        return self.run(spikes)[1]

"""BPTT baseline: surrogate-gradient LIF network without delays, dense in time.

The standard way of training SNNs (Neftci, Mostafa, Zenke, "Surrogate gradient learning in
spiking neural networks", IEEE Signal Process. Mag. 2019): simulate on a time grid, replace the
derivative of the spike nonlinearity by a smooth surrogate, and backpropagate through time.
Same neuron model, discretisation and readout as the engine (see ``_scan``: ATan surrogate,
reset detached as in the DCLS code); no delays, so that it is the cost floor of dense-time
training: one matrix product per projection and a scan per layer.
"""

from __future__ import annotations

import torch

from ..init import Init
from ._dense import DenseNetwork, DenseProjection, per_projection

__all__ = ["BPTTNetwork"]


class BPTTNetwork(DenseNetwork):
    """input -> LIF hidden layers -> LI readout, trained by BPTT with a surrogate gradient.

    Forward takes ``Spikes`` and returns the voltage trace [batch, n_steps, n_out] like
    ``delayprop.LIReadout``.

    Args:
        n_in, hidden, n_out: layer sizes.
        dt: time step, ms.
        tau_mem, tau_syn: ms.
        threshold: firing threshold.
        weight_init: one initialiser per projection (default N(0, 1/n_in) each).
        surrogate_alpha: ATan surrogate steepness.
        dtype: float32/float64.
    """

    def __init__(
        self,
        n_in: int,
        hidden: list[int],
        n_out: int,
        *,
        dt: float = 1.0,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        threshold: float = 1.0,
        weight_init: list[Init | None] | None = None,
        surrogate_alpha: float = 5.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        sizes = [n_in, *hidden, n_out]
        inits = per_projection(weight_init, len(sizes) - 1)
        projections = [
            DenseProjection(a, b, inits[k], dtype)
            for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]
        super().__init__(projections, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn,
                         threshold=threshold, surrogate_alpha=surrogate_alpha)  # fmt: skip

"""DCLS delay baseline: per-synapse delays as a temporal convolution with Gaussian-interpolated
learnable tap positions.

Hammouamri, Khalfaoui-Hassani, Masquelier, "Learning delays in spiking neural networks using
dilated convolutions with learnable spacings", ICLR 2024 (arXiv 2306.17670).

Each projection is a ``conv1d`` over time with kernel length D = max_delay / dt + 1 steps.
Synapse (j, i) with weight w_ji and continuous delay d_ji (steps) contributes, at kernel tap
k = 0 .. D-1 (tap k delays by D-1-k steps, the input being padded by D-1 steps on the left)::

    K[j, i, k] = w_ji g(k) / (sum_k g(k) + 1e-7),   g(k) = exp(-1/2 ((k - (D-1-d_ji)) / s)^2)
    s = |sigma| + 0.27

sigma is not learned: it starts at floor(D/2) and shrinks geometrically every epoch to 0.23
(s = 0.5) over the first quarter of the epochs, then stays (``sigma_schedule``).  In eval mode
the delays are rounded (as the engine rounds them) and the kernel is one-hot, so the network
computes exactly what the time-stepped engine computes with the same integer delays.

Delays are ``delayprop.SynapticDelay`` modules in ms with the ``"clamp"`` bound, so
``delayprop.split_parameters`` puts them in their own optimiser group (the paper uses Adam with
100x the weight learning rate for positions) and ``delayprop.constrain_`` clamps them to
[0, max_delay] after each step, as the paper clamps positions to the kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..delays import SynapticDelay
from ..init import Init
from ._dense import DenseNetwork, DenseProjection, per_projection

__all__ = ["DCLSProjection", "DCLSNetwork", "sigma_schedule", "SIGMA_FINAL", "SIGMA_OFFSET"]

#: final sigma of the schedule (s = 0.5 step) and the constant added to |sigma|, as in [H]'s code.
SIGMA_FINAL = 0.23
SIGMA_OFFSET = 0.27


def sigma_schedule(epoch: int, n_epochs: int, kernel_size: int) -> float:
    """sigma during ``epoch`` (0-based) of ``n_epochs``: floor(D/2) * a^min(epoch, E) with
    E = n_epochs // 4 and a = (0.23 / floor(D/2))^(1/E); 0.23 from epoch E on."""
    if n_epochs <= 0 or not 0 <= epoch:
        raise ValueError(f"need n_epochs > 0 and epoch >= 0, got {epoch=}, {n_epochs=}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    sigma0 = float(kernel_size // 2)
    final_epoch = n_epochs // 4
    if final_epoch == 0 or sigma0 <= SIGMA_FINAL or epoch >= final_epoch:
        return SIGMA_FINAL
    return sigma0 * (SIGMA_FINAL / sigma0) ** (epoch / final_epoch)


class DCLSProjection(DenseProjection):
    """Weights [n_out, n_in] and synaptic delays (ms) realised as a Gaussian-tap convolution.

    Args:
        n_in, n_out: sizes.
        dt: time step, ms.
        max_delay: largest delay, ms (a multiple of dt; kernel length max_delay / dt + 1).
        delay_init: initial delays, ms (default uniform over [0, max_delay], the paper's
            uniform positions).
        learn_delays: train the delays.
        weight_init: initial weights (default N(0, 1/n_in)).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        dt: float,
        max_delay: float,
        delay_init: Init | None = None,
        learn_delays: bool = True,
        weight_init: Init | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(n_in, n_out, weight_init, dtype)
        steps = max_delay / dt
        if not (max_delay > 0 and math.isfinite(max_delay)) or abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"max_delay must be a positive multiple of dt={dt} ms, got {max_delay} ms"
            )
        self.dt = float(dt)
        self.kernel_size = int(round(steps)) + 1
        init = (0.0, float(max_delay)) if delay_init is None else delay_init
        self.delay = SynapticDelay(
            n_out, n_in, max_delay, init, learn=learn_delays, bound="clamp", dtype=dtype
        )
        self.register_buffer("sigma", torch.tensor(float(self.kernel_size // 2), dtype=dtype))

    def set_epoch(self, epoch: int, n_epochs: int) -> None:
        self.sigma.fill_(sigma_schedule(epoch, n_epochs, self.kernel_size))

    def kernel(self) -> Tensor:
        """Convolution kernel [n_out, n_in, D]: Gaussian taps in training mode, one-hot taps at
        the rounded delays in eval mode."""
        steps = self.delay() / self.dt  # [n_out, n_in], continuous
        last = self.kernel_size - 1
        if not self.training:
            tap = last - torch.round(steps.detach()).clamp(0, last).long()
            zeros = self.weight.new_zeros(self.n_out, self.n_in, self.kernel_size)
            return zeros.scatter(2, tap.unsqueeze(-1), self.weight.unsqueeze(-1))
        taps = torch.arange(self.kernel_size, dtype=steps.dtype, device=steps.device)
        s = self.sigma.abs() + SIGMA_OFFSET
        z = (taps - (last - steps).unsqueeze(-1)) / s
        g = torch.exp(-0.5 * z * z)
        return g * (self.weight / (g.sum(dim=-1) + 1e-7)).unsqueeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, (self.kernel_size - 1, 0)), self.kernel())

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, kernel_size={self.kernel_size}"


class DCLSNetwork(DenseNetwork):
    """Feed-forward SNN with DCLS delays on every projection that has max_delay > 0.

    Same neuron model, discretisation and readout as the engine (``delayprop.LIF`` layers and a
    ``delayprop.LIReadout``); forward takes ``Spikes`` and returns the voltage trace
    [batch, n_steps, n_out].  Train with surrogate gradients (ATan, reset detached); call
    ``set_epoch(epoch, n_epochs)`` at the start of every epoch to anneal sigma, and
    ``delayprop.constrain_(model)`` after every optimiser step.

    Args:
        n_in, hidden, n_out: layer sizes.
        dt: time step, ms.
        tau_mem, tau_syn: ms.
        threshold: firing threshold.
        max_delay: largest delay of the hidden projections, ms.
        readout_max_delay: the same for the projection into the readout (0: no delays there).
        delay_init, readout_delay_init: initial delays, ms (default uniform over the kernel).
        weight_init: one initialiser per projection (default N(0, 1/n_in) each).
        surrogate_alpha: ATan surrogate steepness.
        dtype: float32 (default) or float64.
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
        max_delay: float,
        readout_max_delay: float = 0.0,
        delay_init: Init | None = None,
        readout_delay_init: Init | None = None,
        learn_delays: bool = True,
        weight_init: list[Init | None] | None = None,
        surrogate_alpha: float = 5.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        sizes = [n_in, *hidden, n_out]
        inits = per_projection(weight_init, len(sizes) - 1)
        projections = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if k == len(sizes) - 2:
                d_max, d_init = readout_max_delay, readout_delay_init
            else:
                d_max, d_init = max_delay, delay_init
            if d_max > 0:
                projections.append(DCLSProjection(
                    a, b, dt=dt, max_delay=d_max, delay_init=d_init, learn_delays=learn_delays,
                    weight_init=inits[k], dtype=dtype,
                ))  # fmt: skip
            else:
                projections.append(DenseProjection(a, b, inits[k], dtype))
        super().__init__(projections, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn,
                         threshold=threshold, surrogate_alpha=surrogate_alpha)  # fmt: skip

    def set_epoch(self, epoch: int, n_epochs: int) -> None:
        """Anneal sigma of every projection to its value for ``epoch`` of ``n_epochs``."""
        for proj in self.projections:
            if isinstance(proj, DCLSProjection):
                proj.set_epoch(epoch, n_epochs)

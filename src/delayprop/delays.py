"""Delay parametrisations: modules that produce the synaptic delay matrix of a projection.

Every parametrisation returns, from ``forward()``, a delay matrix ``[n_out, n_in]`` in ms that the
layer uses as its synaptic delays.  Axonal (one delay per presynaptic neuron) and dendritic (one
per postsynaptic neuron) delays broadcast into that matrix, so their gradients are sums of the
synaptic ones (autograd does this).

Bounds:

* ``"clamp"``  (EventProp with delays, Meszaros et al. 2025): the parameter is the delay in ms;
  ``constrain_()`` clamps it to [0, max_delay] and is called after every optimiser step.
* ``"sigmoid"`` (DelGrad, Goltz et al. 2024): delay = max_delay * sigmoid(raw); always in range,
  nothing to clamp.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .init import Init, apply_init

__all__ = ["Delay", "SynapticDelay", "AxonalDelay", "DendriticDelay", "make_delay",
           "DELAY_KINDS", "DELAY_BOUNDS"]  # fmt: skip

#: how a parametrisation keeps its delays in [0, max_delay] (see above)
DELAY_BOUNDS = ("clamp", "sigmoid")


class Delay(nn.Module):
    """Base class: a learnable (or fixed) delay parametrisation of one projection.

    Args:
        n_out, n_in: size of the projection (delay matrix ``[n_out, n_in]``).
        max_delay: largest delay, ms.
        init: initial delays in ms (a constant, a ``(low, high)`` uniform range, or a callable
            filling a tensor in place; see ``delayprop.init``).
        learn: whether the delays are trained.
        bound: ``"clamp"`` or ``"sigmoid"``.
    """

    kind: str = ""

    def __init__(
        self,
        n_out: int,
        n_in: int,
        max_delay: float,
        init: Init = 0.0,
        *,
        learn: bool = True,
        bound: str = "clamp",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not (0 <= max_delay <= torch.finfo(dtype).max):
            raise ValueError(
                f"max_delay must be a finite number of ms >= 0 that {dtype} can hold, got "
                f"{max_delay}"
            )
        if bound not in DELAY_BOUNDS:
            raise ValueError(f"bound must be one of {DELAY_BOUNDS}, got {bound!r}")
        if bound == "sigmoid" and max_delay <= 0:
            raise ValueError("a sigmoid-bounded delay needs max_delay > 0")
        self.n_out, self.n_in = n_out, n_in
        self.max_delay = float(max_delay)
        self.bound = bound
        delays = torch.empty(self._shape(), dtype=dtype)
        apply_init(delays, init)
        if bool(torch.isnan(delays).any()):
            raise ValueError("delay initialiser produced NaN")
        if delays.numel() and (float(delays.min()) < 0 or float(delays.max()) > max_delay):
            raise ValueError(
                f"initial delays must lie in [0, max_delay={max_delay}] ms, got range "
                f"[{float(delays.min())}, {float(delays.max())}]"
            )
        self.raw = nn.Parameter(self._to_raw(delays), requires_grad=learn)

    # -- subclasses define the shape of the parameter and how it broadcasts
    def _shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _broadcast(self, values: Tensor) -> Tensor:
        raise NotImplementedError

    # -- common machinery
    def _to_raw(self, delays: Tensor) -> Tensor:
        if self.bound == "clamp":
            return delays.clone()
        frac = (delays / self.max_delay).clamp(1e-4, 1 - 1e-4)
        return torch.log(frac) - torch.log1p(-frac)

    def values(self) -> Tensor:
        """The delays in ms, in the parametrisation's own shape."""
        if self.bound == "clamp":
            return self.raw
        return self.max_delay * torch.sigmoid(self.raw)

    def forward(self) -> Tensor:
        """Synaptic delay matrix [n_out, n_in], ms."""
        return self._broadcast(self.values())

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the parameter back into [0, max_delay] (no-op for sigmoid bounds)."""
        if self.bound == "clamp":
            self.raw.clamp_(0.0, self.max_delay)

    def extra_repr(self) -> str:
        return (
            f"n_out={self.n_out}, n_in={self.n_in}, max_delay={self.max_delay} ms, "
            f"bound={self.bound!r}, learn={self.raw.requires_grad}"
        )


class SynapticDelay(Delay):
    """One delay per synapse: parameter [n_out, n_in]."""

    kind = "synaptic"

    def _shape(self) -> tuple[int, ...]:
        return (self.n_out, self.n_in)

    def _broadcast(self, values: Tensor) -> Tensor:
        return values


class AxonalDelay(Delay):
    """One delay per presynaptic neuron, shared by all its targets: parameter [n_in]."""

    kind = "axonal"

    def _shape(self) -> tuple[int, ...]:
        return (self.n_in,)

    def _broadcast(self, values: Tensor) -> Tensor:
        return values.unsqueeze(0).expand(self.n_out, self.n_in)


class DendriticDelay(Delay):
    """One delay per postsynaptic neuron, shared by all its inputs: parameter [n_out]."""

    kind = "dendritic"

    def _shape(self) -> tuple[int, ...]:
        return (self.n_out,)

    def _broadcast(self, values: Tensor) -> Tensor:
        return values.unsqueeze(1).expand(self.n_out, self.n_in)


_KINDS: dict[str, Callable[..., Delay]] = {
    "synaptic": SynapticDelay,
    "axonal": AxonalDelay,
    "dendritic": DendriticDelay,
}
#: names of the delay parametrisations (``make_delay``)
DELAY_KINDS: tuple[str, ...] = tuple(_KINDS)


def make_delay(kind: str | Delay | None, n_out: int, n_in: int, **kwargs) -> Delay | None:
    """Build a delay parametrisation by name (``"synaptic"``, ``"axonal"``, ``"dendritic"``),
    pass an instance through, or return None for ``None`` (no delays)."""
    if kind is None or isinstance(kind, Delay):
        if isinstance(kind, Delay) and (kind.n_out, kind.n_in) != (n_out, n_in):
            raise ValueError(
                f"delay module is for a [{kind.n_out}, {kind.n_in}] projection, "
                f"layer needs [{n_out}, {n_in}]"
            )
        return kind
    if kind not in _KINDS:
        raise ValueError(f"unknown delay kind {kind!r}; choose one of {sorted(_KINDS)}")
    return _KINDS[kind](n_out, n_in, **kwargs)

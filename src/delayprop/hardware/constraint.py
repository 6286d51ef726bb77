"""Constraint-aware training: the forward pass sees what the target can represent.

``apply_profile(model, profile)`` attaches a ``ProjectionConstraint`` to every ``LIF`` and
``LIReadout`` of ``model``; each layer passes its weights and delays through it before the
engine runs.  Rounding uses the straight-through estimator (the forward pass sees the rounded
value, the backward pass treats the rounding as the identity), as DelGrad's hardware-aware
training does and as the time-stepped engine already does for delays (rounded at arrival
placement, gradient with respect to the continuous delay).  Clipping to the allowed range has
the gradient of ``clamp`` (zero outside), and ``constrain_`` projects the delay parameters back
into the range after every optimiser step.

Weights: signed integers of ``weight_bits`` bits times a scale chosen per matrix or per
postsynaptic neuron so that the largest magnitude maps to 2^(b-1) - 1 (the scale is part of the
target's configuration, not learned; its gradient is not propagated).  Delays: whole steps of
the profile's dt, rounded to the nearest step (ties to even, as the engine), clipped to
[delay_min_steps, delay_max_steps].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..methods.hardware import clip_and_round
from ..nn import LIF, LIReadout
from .profiles import HardwareProfile, get_profile

__all__ = ["ProjectionConstraint", "apply_profile", "quantise_weight", "quantise_delay"]


def weight_step(weight: Tensor, levels: int, per_neuron: bool) -> Tensor:
    """Quantisation step of ``weight`` [n_out, n_in]: max |w| / levels, per matrix (a scalar
    tensor) or per postsynaptic neuron ([n_out, 1]); never zero, never differentiated."""
    w = weight.detach().abs()
    top = w.amax(dim=1, keepdim=True) if per_neuron else w.max()
    return torch.where(top > 0, top / levels, torch.ones_like(top))


def quantise_weight(weight: Tensor, profile: HardwareProfile) -> Tensor:
    """``weight`` as the target stores it (in model units): integer multiples of its step,
    in [-(levels + 1), levels] steps; unchanged for float weights."""
    levels = profile.weight_levels
    if levels is None:
        return weight
    step = weight_step(weight, levels, profile.weight_scale == "neuron")
    return clip_and_round(weight, step, -(levels + 1) * step, levels * step)


def quantise_delay(delay: Tensor, profile: HardwareProfile, dt: float | None,
                   high: float) -> Tensor:  # fmt: skip
    """Delays [n_out, n_in] in ms as the target holds them: clipped to [delay_min_steps dt,
    min(high, delay_max_steps dt)] and, for integer delays, rounded to whole steps of ``dt``."""
    if not profile.integer_delays or dt is None:
        return delay.clamp(0.0, high)
    if profile.delay_max_steps is not None:
        high = min(high, profile.delay_max_steps * dt)
    return clip_and_round(delay, dt, profile.delay_min_steps * dt, high)


class ProjectionConstraint(nn.Module):
    """The constraint one layer's weights and delays pass through (see module docstring).

    Args:
        profile: the target.
        dt: the layer's time step, ms (None: exact engine, only for targets without a grid).
    """

    def __init__(self, profile: HardwareProfile, dt: float | None) -> None:
        super().__init__()
        self.profile, self.dt = profile, dt

    def max_delay(self, layer_max: float) -> float:
        """Largest delay allowed where the layer allows ``layer_max`` ms, ms."""
        top = self.profile.delay_max_steps
        return layer_max if top is None or self.dt is None else min(layer_max, top * self.dt)

    def forward(self, weight: Tensor | None, delay: Tensor | None, max_delay: float
                ) -> tuple[Tensor | None, Tensor | None]:  # fmt: skip
        """(weight [n_out, n_in], delay [n_out, n_in] ms) as the target runs them, for a delay
        parametrisation bounded by ``max_delay`` ms; None passes through."""
        if weight is not None:
            noise_sd = self.profile.weight_noise_sd
            weight = quantise_weight(weight, self.profile)
            if noise_sd > 0:
                scale = weight.detach().abs().max()
                weight = weight + torch.randn_like(weight) * (noise_sd * scale)
        if delay is not None:
            delay = quantise_delay(delay, self.profile, self.dt, max_delay)
        return weight, delay

    @torch.no_grad()
    def constrain_(self, layer: nn.Module) -> None:
        """Project the clamp-bounded delay parameters of ``layer`` into the allowed range."""
        low = self.profile.delay_min_steps * (self.dt or 0.0)
        for delay in (getattr(layer, "delay", None), getattr(layer, "rec_delay", None)):
            if delay is not None and delay.bound == "clamp":
                delay.max_delay = self.max_delay(delay.max_delay)
                delay.raw.clamp_(low, delay.max_delay)

    def extra_repr(self) -> str:
        return f"profile={self.profile.name!r}, dt={self.dt}"


def _to_grid(layer: LIF | LIReadout, dt: float, profile: HardwareProfile) -> None:
    """Switch an exact-engine layer to the time-stepped engine at ``dt`` ms."""
    if layer.backward != "eventprop":
        raise ValueError(
            f"profile {profile.name!r} runs the time-stepped engine (dt={dt} ms), which has the "
            f"EventProp backward only; the layer uses backward={layer.backward!r}"
        )
    if isinstance(layer, LIF) and (layer.refractory != 0 or layer.max_spikes is not None):
        raise ValueError(
            f"profile {profile.name!r} runs the time-stepped engine (dt={dt} ms), which has no "
            "refractory period or spike limit; the layer sets one"
        )
    layer.dt = float(dt)
    if isinstance(layer, LIReadout):
        layer.sample_dt = None


def apply_profile(model: nn.Module, profile: str | HardwareProfile, **changes) -> nn.Module:
    """Constrain every ``LIF`` and ``LIReadout`` of ``model`` to ``profile`` (in place).

    Layers on the exact engine move to the time-stepped engine at the profile's time step when
    the target has integer delays; a layer on a grid other than the profile's ``dt`` is an
    error.  A delay parametrisation whose ``max_delay`` exceeds the target's range gets the
    target's maximum (and its parameters are clamped into it).  Returns ``model``.
    """
    profile = get_profile(profile, **changes)
    layers = [m for m in model.modules() if isinstance(m, (LIF, LIReadout))]
    if not layers:
        raise ValueError("apply_profile: the model has no LIF or LIReadout layer")
    for layer in layers:
        dt = profile.time_step(layer.dt)
        if dt is not None and layer.dt is None:
            _to_grid(layer, dt, profile)
        elif dt is not None and abs(dt - layer.dt) > 1e-12 * dt:
            raise ValueError(
                f"profile {profile.name!r} has dt={dt} ms but a layer runs at dt={layer.dt} ms; "
                "build the model at the profile's time step"
            )
        layer.constraint = ProjectionConstraint(profile, dt)
        layer.constraint.constrain_(layer)
    return model

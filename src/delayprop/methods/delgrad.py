"""DelGrad (Goltz et al., Nat. Commun. 2025): time-to-first-spike networks with closed-form spike
times and exact gradients for weights and synaptic / axonal / dendritic delays.

Every neuron fires at most once.  With effective input times t_i = (input spike time) + delay,
sorted, the output spike T lies after the inputs of a causal prefix C and before the next input;
the prefix is found by computing the candidate crossing of every prefix and keeping the first
consistent one.  Times in ms; our membrane (tau_mem dV/dt = -V + I, I jumps by w) is DelGrad's with
g_L = 1, so its threshold term is simply the threshold theta.

* tau_mem = tau_syn = tau:  a1 = sum_C w e^{t_i/tau},  b = sum_C w (t_i/tau) e^{t_i/tau},
  T = tau (b/a1 - W0(-(theta/a1) e^{b/a1}))      (principal Lambert W; no spike if z < -1/e)
* tau_mem = 2 tau_syn:  a1 = sum_C w e^{t_i/tau_syn},  a2 = sum_C w e^{t_i/tau_mem},
  T = tau_mem ln(2 a1 / (a2 + sqrt(a2^2 - 4 a1 theta)))   (no spike if the root is negative)

``ttfs_times`` evaluates these in torch, so autograd differentiates the closed forms (the analytic
derivatives of the paper).  ``observed_ttfs`` instead takes spike times measured elsewhere (a
chip, another simulator) and computes exact gradients from them by implicit differentiation of
the threshold condition, dT/dp = -(dV/dp) / (dV/dt) at T; it works for any tau ratio.  All times
are shifted per neuron by its earliest input before exponentiation, which keeps the sums finite.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..delays import make_delay
from ..init import Init, Normal, apply_init
from ..kernels.formulas import equal_time_constants, rate_difference
from ..losses import first_spike_times
from ..spikes import Spikes
from .hardware import HardwareModel

__all__ = [
    "lambert_w0",
    "ttfs_times",
    "observed_ttfs",
    "psp_kernel",
    "TTFSLayer",
    "TTFSNetwork",
    "spikes_from_times",
]

_INF = math.inf


class _LambertW0(torch.autograd.Function):
    """Principal branch W0 on [-1/e, inf), float64; dW/dz = e^{-W} / (1 + W)."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        if bool((z < -math.exp(-1.0) - 1e-12).any()):
            raise ValueError("lambert_w0 is real only for z >= -1/e")
        p = torch.sqrt(torch.clamp(2.0 * (math.e * z + 1.0), min=0.0))
        near_branch = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p**3
        large = torch.log(torch.clamp(z, min=1.0)) - torch.log(torch.log(torch.clamp(z, min=3.0)))
        w = torch.where(z < -0.25, near_branch, torch.where(z > 3.0, large, torch.log1p(z)))
        for _ in range(12):  # Halley iterations; quadratic-to-cubic convergence
            ew = torch.exp(w)
            f = w * ew - z
            wp1 = w + 1.0
            denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
            step = torch.where(wp1.abs() > 1e-12, f / denom, torch.zeros_like(w))
            w = w - step
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * torch.exp(-w) / torch.clamp(1.0 + w, min=1e-300)


def lambert_w0(z: Tensor) -> Tensor:
    """Principal branch of the Lambert W function (differentiable)."""
    return _LambertW0.apply(z)


def psp_kernel(s: Tensor, tau_mem: float, tau_syn: float) -> tuple[Tensor, Tensor]:
    """Voltage k(s) of a unit current jump s ms ago and its slope dk/ds (0 for s <= 0).

    The closed-form flow of ``kernels.lif_flow`` in torch: k = e^{-s/tau_mem} phi(s) / tau_mem
    with phi(s) = expm1(delta s) / delta (s where tau_mem == tau_syn,
    ``kernels.formulas.equal_time_constants``), and tau_mem dk/ds = I - V = e^{-s/tau_syn} - k.
    """
    pos = s > 0
    s = torch.where(pos, s, torch.zeros_like(s))
    delta = rate_difference(tau_mem, tau_syn)
    phi = s if equal_time_constants(tau_mem, tau_syn) else torch.expm1(delta * s) / delta
    k = torch.exp(-s / tau_mem) * phi / tau_mem
    dk = (torch.exp(-s / tau_syn) - k) / tau_mem
    zero = torch.zeros_like(s)
    return torch.where(pos, k, zero), torch.where(pos, dk, zero)


def _effective_times(t_in: Tensor, delay: Tensor | None, n_out: int) -> Tensor:
    """[batch, n_out, n_in] arrival times (inf where the input did not fire); ``delay`` is
    [n_out, n_in] or, per trial, [batch, n_out, n_in]."""
    t = t_in.unsqueeze(1).expand(-1, n_out, -1)
    if delay is None:
        return t
    return t + (delay if delay.dim() == 3 else delay.unsqueeze(0))


def _check(t_in: Tensor, weight: Tensor, delay: Tensor | None) -> None:
    if t_in.dim() != 2 or t_in.shape[1] != weight.shape[1]:
        raise ValueError(
            f"input times must be [batch, n_in={weight.shape[1]}], got {tuple(t_in.shape)}"
        )
    if bool(torch.isnan(t_in).any()):
        raise ValueError("input spike times contain NaN (use inf for 'no spike')")
    if delay is not None and delay.shape[-2:] != weight.shape:
        raise ValueError(f"delay must be [(batch,) {weight.shape[0]}, {weight.shape[1]}]")


def ttfs_times(
    t_in: Tensor,
    weight: Tensor,
    delay: Tensor | None,
    *,
    tau_mem: float,
    tau_syn: float,
    threshold: float | Tensor = 1.0,
) -> Tensor:
    """First spike times [batch, n_out] (ms, inf = no spike) of a layer of single-spike neurons.

    Args:
        t_in: [batch, n_in] input spike times, ms (inf = no spike).
        weight: [n_out, n_in].  delay: [n_out, n_in] ms or None.
        tau_mem, tau_syn: must satisfy tau_mem == tau_syn or tau_mem == 2 tau_syn.
        threshold: scalar or a tensor broadcastable to [batch, n_out] (threshold noise).
    Differentiable with respect to t_in, weight, delay (and a tensor threshold).
    """
    _check(t_in, weight, delay)
    equal = equal_time_constants(tau_mem, tau_syn)
    if not (equal or math.isclose(tau_mem, 2.0 * tau_syn)):
        raise ValueError(
            "DelGrad closed forms exist for tau_mem == tau_syn and tau_mem == 2 tau_syn, got "
            f"tau_mem={tau_mem}, tau_syn={tau_syn}"
        )
    n_out = weight.shape[0]
    t_eff = _effective_times(t_in, delay, n_out)
    t_sorted, order = torch.sort(t_eff, dim=-1)
    w_sorted = torch.gather(weight.unsqueeze(0).expand_as(t_eff), -1, order)
    fired = torch.isfinite(t_sorted)
    t0 = torch.where(fired[..., :1], t_sorted[..., :1], torch.zeros_like(t_sorted[..., :1]))
    rel = torch.where(fired, t_sorted - t0, torch.zeros_like(t_sorted))
    w_eff = torch.where(fired, w_sorted, torch.zeros_like(w_sorted))
    theta = torch.as_tensor(threshold, dtype=t_in.dtype, device=t_in.device)
    theta = theta.reshape(theta.shape + (1,)) if theta.dim() == 2 else theta
    a1 = torch.cumsum(w_eff * torch.exp(rel / tau_syn), dim=-1)
    positive = a1 > 0
    a1_safe = torch.where(positive, a1, torch.ones_like(a1))
    if equal:
        b = torch.cumsum(w_eff * rel / tau_syn * torch.exp(rel / tau_syn), dim=-1)
        z = -(theta / a1_safe) * torch.exp(b / a1_safe)
        ok = positive & (z >= -math.exp(-1.0))
        z_safe = torch.where(ok, z, torch.zeros_like(z))
        t_rel = tau_syn * (b / a1_safe - lambert_w0(z_safe))
    else:
        a2 = torch.cumsum(w_eff * torch.exp(rel / tau_mem), dim=-1)
        disc = a2 * a2 - 4.0 * a1 * theta
        # masked entries get a positive dummy: sqrt'(0) is infinite and 0 * inf = NaN in backward
        # (disc == 0 is a tangential touch of the threshold: no spike)
        real = disc > 0
        root = a2 + torch.sqrt(torch.where(real, disc, torch.ones_like(disc)))
        ok = positive & real & (root > 0)
        root_safe = torch.where(ok, root, torch.ones_like(root))
        t_rel = tau_mem * torch.log(2.0 * a1_safe / root_safe)
    t_candidate = t_rel + t0
    next_input = torch.cat([t_sorted[..., 1:], torch.full_like(t_sorted[..., :1], _INF)], -1)
    consistent = ok & fired & (t_candidate >= t_sorted - 1e-12) & (t_candidate < next_input)
    first = torch.argmax(consistent.to(torch.int8), dim=-1, keepdim=True)
    spikes = torch.gather(consistent, -1, first).squeeze(-1)
    t_out = torch.gather(t_candidate, -1, first).squeeze(-1)
    return torch.where(spikes, t_out, torch.full_like(t_out, _INF))


class _ObservedTTFS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_in, weight, delay, t_out, tau_mem, tau_syn):
        ctx.taus = (tau_mem, tau_syn)
        ctx.has_delay = delay is not None
        ctx.save_for_backward(t_in, weight, delay if delay is not None else weight.new_zeros(0),
                              t_out)  # fmt: skip
        return t_out.clone()

    @staticmethod
    def backward(ctx, grad_t):
        t_in, weight, delay, t_out = ctx.saved_tensors
        tau_mem, tau_syn = ctx.taus
        t_eff = _effective_times(t_in, delay if ctx.has_delay else None, weight.shape[0])
        spiked = torch.isfinite(t_out)
        t_post = torch.where(spiked, t_out, torch.zeros_like(t_out)).unsqueeze(-1)
        causal = torch.isfinite(t_eff) & (t_eff < t_post) & spiked.unsqueeze(-1)
        s = torch.where(causal, t_post - t_eff, torch.zeros_like(t_eff))
        k, dk = psp_kernel(s, tau_mem, tau_syn)
        k, dk = k * causal, dk * causal
        w = weight.unsqueeze(0)
        slope = (w * dk).sum(-1, keepdim=True)  # dV/dT at the spike
        g = torch.where(spiked.unsqueeze(-1), grad_t.unsqueeze(-1) / slope.clamp(min=1e-12),
                        torch.zeros_like(slope))  # fmt: skip
        d_arrival = g * w * dk  # dT/dt_i = w k'(T - t_i) / (dV/dT)
        grad_w = (-g * k).sum(0)  # dT/dw_i = -k(T - t_i) / (dV/dT)
        grad_in = d_arrival.sum(1)
        grad_delay = None
        if ctx.has_delay:
            grad_delay = d_arrival if delay.dim() == 3 else d_arrival.sum(0)
        return grad_in, grad_w, grad_delay, None, None, None


def observed_ttfs(
    t_in: Tensor,
    weight: Tensor,
    delay: Tensor | None,
    t_observed: Tensor,
    *,
    tau_mem: float,
    tau_syn: float,
) -> Tensor:
    """Pass through spike times observed elsewhere ([batch, n_out], inf = no spike), with exact
    gradients from implicit differentiation at those times (any tau ratio).

    Use it to train a chip or another simulator in the loop: its forward pass produces the times,
    this layer's backward turns the loss gradient into weight, delay and input-time gradients.
    """
    _check(t_in, weight, delay)
    if t_observed.shape != (t_in.shape[0], weight.shape[0]):
        raise ValueError(
            f"observed times must be [batch, n_out] = {(t_in.shape[0], weight.shape[0])}, "
            f"got {tuple(t_observed.shape)}"
        )
    return _ObservedTTFS.apply(t_in, weight, delay, t_observed.detach(), tau_mem, tau_syn)


# ---------------------------------------------------------------------------- modules
class TTFSLayer(nn.Module):
    """A layer of single-spike LIF neurons with DelGrad's closed-form spike times.

    Args:
        n_in, n_out: sizes.  tau_syn: ms; ``tau_ratio`` = tau_mem / tau_syn, 1 or 2.
        threshold: firing threshold.
        max_delay: largest delay, ms; 0: no delays.  delay_kind: "synaptic", "axonal" or
            "dendritic" (as ``delayprop.LayerOptions.delay_kind``); ``delay_bound`` "sigmoid"
            (DelGrad's d = max_delay sigmoid(raw)) or "clamp".
        weight_init: initialiser (see ``delayprop.init``).
        hardware: optional ``HardwareModel`` (noise, quantisation, clipping) applied in forward.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        tau_syn: float = 5.0,
        tau_ratio: float = 2.0,
        threshold: float = 1.0,
        delay_kind: str = "synaptic",
        max_delay: float = 0.0,
        delay_init: Init = 0.0,
        delay_bound: str = "sigmoid",
        weight_init: Init | None = None,
        hardware: HardwareModel | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if tau_ratio not in (1.0, 2.0):
            raise ValueError(f"tau_ratio (tau_mem / tau_syn) must be 1 or 2, got {tau_ratio}")
        self.n_in, self.n_out = n_in, n_out
        self.tau_syn, self.tau_mem = float(tau_syn), float(tau_ratio * tau_syn)
        self.threshold = float(threshold)
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
        default = Normal(1.0, 1.0 / n_in**0.5)
        apply_init(self.weight, default if weight_init is None else weight_init)
        self.delay = make_delay(delay_kind if max_delay > 0 else None, n_out, n_in,
                                max_delay=max_delay, init=delay_init, bound=delay_bound,
                                dtype=dtype)  # fmt: skip
        self.hardware = hardware
        if hardware is not None:
            self.register_buffer("threshold_offset", hardware.fixed_pattern(n_out, dtype))

    def forward(self, t_in: Tensor, t_observed: Tensor | None = None) -> Tensor:
        """[batch, n_in] input times -> [batch, n_out] first spike times (ms, inf = none).

        With ``t_observed`` the layer returns those times and differentiates at them.
        """
        weight = self.weight
        delay = None if self.delay is None else self.delay()
        threshold: float | Tensor = self.threshold
        if self.hardware is not None:
            weight = self.hardware.weights(weight)
            delay = self.hardware.delays(delay, t_in.shape[0])
            threshold = self.hardware.thresholds(self.threshold, self.threshold_offset,
                                                 t_in.shape[0])  # fmt: skip
        if t_observed is not None:
            return observed_ttfs(t_in, weight, delay, t_observed, tau_mem=self.tau_mem,
                                 tau_syn=self.tau_syn)  # fmt: skip
        return ttfs_times(t_in, weight, delay, tau_mem=self.tau_mem, tau_syn=self.tau_syn,
                          threshold=threshold)  # fmt: skip


class TTFSNetwork(nn.Module):
    """A stack of ``TTFSLayer`` s behind the common ``Spikes -> Spikes`` interface.

    The first spike of every input channel is used (later ones are ignored, as in DelGrad);
    ``hardware.multiplex`` copies each input channel.  The output ``Spikes`` hold one spike per
    neuron that fired, so the first-spike losses of ``delayprop.losses`` apply unchanged.
    """

    def __init__(self, layers: list[TTFSLayer], hardware: HardwareModel | None = None) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a TTFS network needs at least one layer")
        self.layers = nn.ModuleList(layers)
        self.hardware = hardware

    def forward(self, spikes: Spikes) -> Spikes:
        t = first_spike_times(spikes, no_spike=_INF).to(self.layers[0].weight.dtype)
        if self.hardware is not None:
            t = self.hardware.multiplex_inputs(t)
        for layer in self.layers:
            t = layer(t)
        return spikes_from_times(t, spikes.duration)


def spikes_from_times(t: Tensor, duration: float) -> Spikes:
    """Dense first-spike times [batch, n] (inf or >= duration = no spike) -> Spikes."""
    fired = torch.isfinite(t) & (t < duration)
    b, u = torch.nonzero(fired, as_tuple=True)
    return Spikes.from_arrays(t[b, u], u, b, t.shape[0], t.shape[1], duration, dtype=t.dtype)

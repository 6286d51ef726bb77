"""Dense time-stepped neuron dynamics of the BPTT baselines, with a surrogate-gradient backward.

The baselines feed a dense input current ``a`` [batch, neurons, n_steps] (summed weighted
arrivals of every step) into the same neuron model and discretisation as the engine
(``kernels/_grid_math.py``, the step of ``kernels/formulas.py``).  Per neuron, at step
n = 0 .. n_steps - 1::

    v_pre[n] = alpha v[n-1] + c_vi i[n-1]        (exact one-step propagator)
    s[n]     = H(v_pre[n] - threshold)           (LIF only)
    v[n]     = v_pre[n] (1 - s[n])               (reset to 0; LI: v[n] = v_pre[n])
    i[n]     = beta i[n-1] + a[n]                (arrivals of step n)

A LIF layer outputs the spike raster ``s``; an LI readout outputs ``v_pre`` (V at t = n dt).

Backward is BPTT through this recursion.  The Heaviside gets the ATan surrogate derivative of
SpikingJelly, which the published DCLS code uses (Hammouamri et al. 2024; alpha = 5 in its SHD
configuration)::

    dH/dx ~ (alpha / 2) / (1 + (pi alpha x / 2)^2)

and the reset is detached (``detach_reset=True`` in that code): dv[n]/dv_pre[n] = 1 - s[n].

Rows (one per (sample, neuron)) are independent, so the Numba kernels run them in parallel; the
time loop runs inside the kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..kernels import grid_constants
from ..kernels.formulas import add_rn, state_step

__all__ = ["ScanSettings", "lif_scan", "li_scan"]


@dataclass(frozen=True)
class ScanSettings:
    """Neuron constants (ms) and surrogate steepness of a dense layer."""

    dt: float
    tau_mem: float
    tau_syn: float
    threshold: float
    surrogate_alpha: float = 5.0

    def packed(self, dtype: np.dtype) -> np.ndarray:
        """[alpha, beta, c_vi, threshold, alpha_sg / 2, pi alpha_sg / 2] in the kernels' float
        type, so that no arithmetic is promoted."""
        c = grid_constants(self.dt, self.tau_mem, self.tau_syn, self.threshold)
        a = self.surrogate_alpha
        values = [c.alpha, c.beta, c.c_vi, self.threshold, 0.5 * a, 0.5 * math.pi * a]
        return np.array(values, dtype=dtype)


# Flat [rows * n_steps] arrays with unsigned index arithmetic (no wrap-around checks in Numba).
@njit(cache=True, parallel=True)
def _scan_forward(current, n_steps, consts, spiking, v_pre, out):
    alpha, beta, c_vi, threshold = consts[0], consts[1], consts[2], consts[3]
    n_u = np.uint64(n_steps)
    rows = current.size // n_steps
    for r in prange(rows):
        base = np.uint64(r) * n_u
        zero = current.dtype.type(0)
        v = zero
        i = zero
        for n in range(n_steps):
            p = base + np.uint64(n)
            vp, decayed = state_step(v, i, alpha, beta, c_vi)
            i = add_rn(decayed, current[p])
            v_pre[p] = vp
            if spiking:
                fired = vp >= threshold
                out[p] = 1.0 if fired else 0.0
                v = zero if fired else vp
            else:
                v = vp


@njit(cache=True, parallel=True)
def _scan_backward(grad_out, v_pre, n_steps, consts, spiking, grad_current):
    alpha, beta, c_vi, threshold = consts[0], consts[1], consts[2], consts[3]
    half_a, half_pi_a = consts[4], consts[5]
    n_u = np.uint64(n_steps)
    rows = v_pre.size // n_steps
    for r in prange(rows):
        base = np.uint64(r) * n_u
        zero = v_pre.dtype.type(0)
        one = v_pre.dtype.type(1)
        g_vp = zero  # dL/dv_pre at step n + 1
        g_i = zero  # dL/di at step n + 1 (after its arrivals)
        for n in range(n_steps - 1, -1, -1):
            p = base + np.uint64(n)
            g_i = c_vi * g_vp + beta * g_i  # i[n] feeds v_pre[n+1] and i[n+1]
            grad_current[p] = g_i
            g_v = alpha * g_vp  # v[n] feeds v_pre[n+1]
            if spiking:
                x = v_pre[p] - threshold
                y = half_pi_a * x
                surrogate = half_a / (one + y * y)
                g_vp = (zero if x >= zero else g_v) + grad_out[p] * surrogate
            else:
                g_vp = g_v + grad_out[p]


def _numpy(t: Tensor) -> np.ndarray:
    if t.device.type != "cpu":
        raise RuntimeError(
            f"the dense baselines run on the CPU; got a tensor on {t.device} "
            "(move the model and the spikes to the CPU)"
        )
    return t.detach().contiguous().numpy().reshape(-1)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current: Tensor, settings: ScanSettings, spiking: bool) -> Tensor:
        flat = _numpy(current)
        consts = settings.packed(flat.dtype)
        n_steps = current.shape[-1]
        v_pre = np.empty_like(flat)
        out = np.empty_like(flat) if spiking else v_pre
        if flat.size:
            _scan_forward(flat, n_steps, consts, spiking, v_pre, out)
        ctx.settings, ctx.spiking, ctx.shape = settings, spiking, current.shape
        ctx.save_for_backward(torch.from_numpy(v_pre))
        return torch.from_numpy(out).view(current.shape)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (v_pre,) = ctx.saved_tensors
        v_flat = v_pre.numpy()
        grad = np.empty_like(v_flat)
        if v_flat.size:
            g = _numpy(grad_out.to(v_pre.dtype))
            n_steps = ctx.shape[-1]
            consts = ctx.settings.packed(v_flat.dtype)
            _scan_backward(g, v_flat, n_steps, consts, ctx.spiking, grad)
        return torch.from_numpy(grad).view(ctx.shape), None, None


def _check_current(current: Tensor) -> None:
    if current.dim() != 3:
        raise ValueError(
            f"input current must be [batch, neurons, n_steps], got shape {tuple(current.shape)}"
        )
    if current.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"input current must be float32 or float64, got {current.dtype}")


def lif_scan(current: Tensor, settings: ScanSettings) -> Tensor:
    """LIF layer: input current [batch, neurons, n_steps] -> spike raster of the same shape
    (0/1, differentiable through the ATan surrogate, reset detached)."""
    _check_current(current)
    return _Scan.apply(current, settings, True)


def li_scan(current: Tensor, settings: ScanSettings) -> Tensor:
    """Leaky-integrator readout: input current [batch, neurons, n_steps] -> voltage trace of
    the same shape (V at t = n dt; exact gradient, the dynamics are linear)."""
    _check_current(current)
    return _Scan.apply(current, settings, False)

"""Pure-torch dense implementation of the time-stepped engine: a readable reference for tests.

It computes exactly what the Numba and CUDA kernels compute (same event order within a step,
same exact propagator, same adjoint), but with dense [batch, steps, neurons] tensors and a Python
loop over time.  It is slow and memory-hungry on purpose.  What it checks is the kernels'
bookkeeping (event order, buffers, arrival steps, sums over synapses): the formula of each event
is the kernels' own, ``kernels.formulas`` run as plain Python (``.py_func``) on tensors, on the
whole [batch, n_out] state where the formula is arithmetic and per spike where it takes a
maximum.  Never use it for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import formulas
from ._grid_math import grid_constants

__all__ = ["ReferenceResult", "lif_reference", "li_reference"]


@dataclass
class ReferenceResult:
    out_steps: Tensor | None  # int64 [n_spikes] (LIF only), sorted by sample, step, unit
    out_units: Tensor | None
    out_samples: Tensor | None
    voltage: Tensor | None  # [batch, steps, n_out] (LI only)
    grad_in_times: Tensor
    grad_w: Tensor
    grad_d: Tensor
    grad_w_rec: Tensor | None = None
    grad_d_rec: Tensor | None = None
    grad_b: Tensor | None = None  # dL/db [n_out] (LIF with adaptation only)
    grad_tau: Tensor | None = None  # [dL/dtau_mem, dL/dtau_syn] (without adaptation)


def _arrival_steps(steps: Tensor, units: Tensor, d_steps: Tensor) -> Tensor:
    """[n_spikes, n_out] arrival step of every synapse of every spike."""
    return steps.view(-1, 1) + d_steps[:, units].t()


def _scatter(arr: Tensor, samples: Tensor, arrival: Tensor, weights: Tensor) -> None:
    """arr[b, arrival, j] += weights for all arrivals before the end of the trial."""
    batch, n_steps, n_out = arr.shape
    j = torch.arange(n_out).expand_as(arrival)
    b = samples.view(-1, 1).expand_as(arrival)
    keep = arrival < n_steps
    arr.index_put_((b[keep], arrival[keep], j[keep]), weights[keep], accumulate=True)


def _gather(store: Tensor, samples: Tensor, arrival: Tensor) -> Tensor:
    """store[b, arrival, j] for every (spike, j); 0 where the arrival is past the end."""
    n_steps = store.shape[1]
    j = torch.arange(store.shape[2]).expand_as(arrival)
    b = samples.view(-1, 1).expand_as(arrival)
    keep = arrival < n_steps
    out = torch.zeros(arrival.shape, dtype=store.dtype)
    out[keep] = store[b[keep], arrival[keep], j[keep]]
    return out


def _arrival_grads(store_i, store_vmi, samples, steps, units, w, d_steps, tau_syn):
    """(dL/dw, dL/dt) of every arrival [S, n_out] of the spikes (steps, units, samples)."""
    arrival = _arrival_steps(steps, units, d_steps)
    li = _gather(store_i, samples, arrival)  # [S, n_out]
    lvmi = _gather(store_vmi, samples, arrival)
    return formulas.arrival_read.py_func(w[:, units].t(), li, lvmi, tau_syn)


def _input_grads(lam_i, lam_vmi, samples, steps, units, w, d_steps, tau_syn):
    g_w, g_t = _arrival_grads(lam_i, lam_vmi, samples, steps, units, w, d_steps, tau_syn)
    grad_w = torch.zeros_like(w)
    grad_d = torch.zeros_like(w)
    grad_w.index_add_(1, units, g_w.t())
    grad_d.index_add_(1, units, g_t.t())
    return g_t.sum(dim=1), grad_w, grad_d


def _tau_grads(store_mi, store_ms, samples, steps, units, w, d_steps, tau_syn):
    """[dL/dtau_mem, dL/dtau_syn] summed over every arrival of the spikes (steps, units,
    samples), read from the stored auxiliary adjoints (m_I, M)."""
    arrival = _arrival_steps(steps, units, d_steps)
    g_tm, g_ts = formulas.tau_arrival_read.py_func(
        w[:, units].t(), _gather(store_mi, samples, arrival), _gather(store_ms, samples, arrival),
        tau_syn,
    )  # fmt: skip
    return torch.stack([g_tm.sum(), g_ts.sum()])


class _TauAdjoint:
    """The auxiliary adjoints (m_V, m_I, M) [batch, n_out] of the time constants, one grid step
    at a time (``formulas.tau_adjoint_step``), and (m_I, M) stored per step as the adjoint."""

    def __init__(self, batch: int, n_steps: int, n_out: int, dtype: torch.dtype, k) -> None:
        self.m_v, self.m_i, self.m_s = (torch.zeros(batch, n_out, dtype=dtype) for _ in range(3))
        self.store_mi = torch.zeros(batch, n_steps, n_out, dtype=dtype)
        self.store_ms = torch.zeros(batch, n_steps, n_out, dtype=dtype)
        self.k = k

    def record(self, n: int) -> None:
        self.store_mi[:, n] = self.m_i
        self.store_ms[:, n] = self.m_s

    def zero_v(self, where: Tensor) -> None:
        """m_V <- 0 where lambda_V is zeroed (spikes, refractory ends)."""
        self.m_v = torch.where(where, torch.zeros_like(self.m_v), self.m_v)

    def step(self, lam_v: Tensor, lam_i: Tensor) -> None:
        """One step back, with lambda at the later end of the step."""
        self.m_v, self.m_i, self.m_s = formulas.tau_adjoint_step.py_func(
            lam_v, lam_i, self.m_v, self.m_i, self.m_s, self.k
        )

    def grads(self, samples, steps, units, w, d_steps, tau_syn) -> Tensor:
        return _tau_grads(self.store_mi, self.store_ms, samples, steps, units, w, d_steps,
                          tau_syn)  # fmt: skip


_adapted_state_step = formulas.python_form(formulas.adapted_state_step)
_adapted_adjoint_step = formulas.python_form(formulas.adapted_adjoint_step)


def _drive(i: Tensor, a: Tensor, adaptive: bool) -> Tensor:
    """What drives V: I, or I - A with adaptation (rounded as the kernels do)."""
    return formulas.add_rn(i, -a) if adaptive else i


def lif_reference(
    in_times: Tensor,
    in_units: Tensor,
    in_samples: Tensor,
    batch: int,
    n_steps: int,
    w: Tensor,
    d: Tensor,
    grad_out_fn,
    *,
    dt: float,
    tau_mem: float,
    tau_syn: float,
    threshold: float,
    max_delay_steps: int,
    w_rec: Tensor | None = None,
    d_rec: Tensor | None = None,
    rec_max_delay_steps: int = 0,
    kick: Tensor | None = None,
    refractory: float = 0.0,
    max_spikes: int | None = None,
    tau_adapt: float | None = None,
    adaptation: Tensor | None = None,
) -> ReferenceResult:
    """Forward and EventProp backward of one LIF layer.

    ``grad_out_fn(steps, units, samples) -> dL/dt`` per output spike supplies the gradient
    flowing into the output spike times (it sees the forward result first).
    Weights/delays are [n_out, n_in] (delays in ms); computation in ``w.dtype``.
    ``refractory`` (ms, held for whole steps) and ``max_spikes`` (None: no limit) as in the
    kernels (``kernels.cpu``); with ``tau_adapt`` (ms) an adaptation current that jumps by
    ``adaptation`` [n_out] (V units) at each spike (dL/db in ``grad_b``), without it
    dL/dtau_mem, dL/dtau_syn in ``grad_tau``.
    """
    c = grid_constants(dt, tau_mem, tau_syn, threshold, refractory, max_spikes, tau_adapt)
    ref, limit = c.ref_steps, c.max_spikes
    n_out = w.shape[0]
    dtype = w.dtype
    steps = torch.round(in_times.to(dtype) / dt).long()
    units = in_units.long()
    samples = in_samples.long()
    d_steps = torch.round(d / dt).clamp(0, max_delay_steps).long()
    rec = w_rec is not None
    if rec:
        d_rec_steps = torch.round(d_rec / dt).clamp(0, rec_max_delay_steps).long()
    kick = torch.zeros(n_out, dtype=dtype) if kick is None else kick.to(dtype)
    adaptive = tau_adapt is not None
    jump = adaptation.to(dtype) if adaptive else torch.zeros(n_out, dtype=dtype)

    # ---- forward
    arr = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    _scatter(arr, samples, _arrival_steps(steps, units, d_steps), w[:, units].t())
    v = torch.zeros(batch, n_out, dtype=dtype)
    i = torch.zeros(batch, n_out, dtype=dtype)
    a = torch.zeros(batch, n_out, dtype=dtype)  # adaptation current (stays 0 without)
    spiked = torch.zeros(batch, n_steps, n_out, dtype=torch.bool)
    vdot = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    # refractory period and spike limit: first free step, spike count, step of the spike whose
    # period ends at the first free step (-1: none), current at each period's end (NaN: none)
    free_at = torch.zeros(batch, n_out, dtype=torch.long)
    n_spk = torch.zeros(batch, n_out, dtype=torch.long)
    pending = torch.full((batch, n_out), -1, dtype=torch.long)
    iref = torch.full((batch, n_steps, n_out), float("nan"), dtype=dtype)
    for n in range(n_steps):
        v_prev = v
        free = free_at <= n
        ends = free & (pending >= 0)  # V leaves 0 with the drive of step n - 1
        b_e, j_e = torch.nonzero(ends, as_tuple=True)
        iref[b_e, pending[b_e, j_e], j_e] = _drive(i, a, adaptive)[b_e, j_e]
        pending = torch.where(ends, -1, pending)
        if adaptive:  # step n-1 -> n
            v, i, a = _adapted_state_step(v, i, a, c.alpha, c.beta, c.beta_a, c.c_vi, c.c_va)
        else:
            v, i = formulas.state_step.py_func(v, i, c.alpha, c.beta, c.c_vi)
        v = torch.where(free, v, torch.zeros_like(v))  # held at 0
        s = (v >= threshold) & free  # threshold test, then reset
        spiked[:, n] = s
        n_spk = n_spk + s.long()
        silenced = s & (limit > 0) & (n_spk >= limit)
        period = s & ~silenced & (ref > 0)
        free_at = torch.where(silenced, n_steps, torch.where(period, n + 1 + ref, free_at))
        pending = torch.where(period, n, pending)
        b_idx, j_idx = torch.nonzero(s, as_tuple=True)
        drive = _drive(i, a, adaptive)
        for b, j in zip(b_idx, j_idx):  # tau_mem dV/dt at the crossing
            vdot[b, n, j] = formulas.crossing_slope.py_func(v[b, j], v_prev[b, j], drive[b, j],
                                                            tau_mem / dt)  # fmt: skip
        v = torch.where(s, torch.zeros_like(v), v)
        if adaptive:
            a = torch.where(s, formulas.add_rn(a, jump), a)
        if rec and len(b_idx):
            rec_steps = torch.full_like(b_idx, n)
            _scatter(arr, b_idx, _arrival_steps(rec_steps, j_idx, d_rec_steps), w_rec[:, j_idx].t())
        i = i + arr[:, n]  # arrivals of step n

    b_out, n_out_steps, u_out = torch.nonzero(spiked, as_tuple=True)
    g_out = torch.as_tensor(grad_out_fn(n_out_steps, u_out, b_out), dtype=dtype)
    g_raster = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    g_raster[b_out, n_out_steps, u_out] = g_out

    # ---- backward
    lam_v = torch.zeros(batch, n_out, dtype=dtype)
    lam_i = torch.zeros(batch, n_out, dtype=dtype)
    lam_a = torch.zeros(batch, n_out, dtype=dtype)
    grad_b = torch.zeros(n_out, dtype=dtype)
    store_i = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    store_vmi = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    taus = _TauAdjoint(batch, n_steps, n_out, dtype, c.tau_step)
    grad_tau = torch.zeros(2, dtype=dtype)
    grad_w_rec = torch.zeros_like(w_rec) if rec else None
    grad_d_rec = torch.zeros_like(w_rec) if rec else None
    g_end = torch.zeros(batch, n_out, dtype=dtype)  # refractory_end_read of j's next spike back
    for n in range(n_steps - 1, -1, -1):
        s = spiked[:, n]
        if ref > 0 and n >= ref:  # periods that end at step n: lambda_V I_e, then lambda_V = 0
            i_end = iref[:, n - ref]
            ends = ~torch.isnan(i_end)
            g_end = torch.where(ends, formulas.refractory_end_read.py_func(lam_v, i_end), g_end)
            lam_v = torch.where(ends, torch.zeros_like(lam_v), lam_v)
            taus.zero_v(ends)
        store_i[:, n] = lam_i  # adjoint just after the arrivals of step n
        store_vmi[:, n] = lam_v - lam_i
        taus.record(n)
        g = g_raster[:, n].clone()
        if ref > 0:
            g = g + torch.where(s, g_end, torch.zeros_like(g_end))
            g_end = torch.where(s, torch.zeros_like(g_end), g_end)
        b_idx, j_idx = torch.nonzero(s, as_tuple=True)
        if rec and len(b_idx):
            g_w, g_t = _arrival_grads(store_i, store_vmi, b_idx, torch.full_like(b_idx, n),
                                      j_idx, w_rec, d_rec_steps, tau_syn)  # fmt: skip
            g[b_idx, j_idx] += g_t.sum(dim=1)
            grad_w_rec.index_add_(1, j_idx, g_w.t())
            grad_d_rec.index_add_(1, j_idx, g_t.t())
            grad_tau += taus.grads(b_idx, torch.full_like(b_idx, n), j_idx, w_rec, d_rec_steps,
                                   tau_syn)  # fmt: skip
        if adaptive:  # lambda_V, lambda_A just after the spikes
            g = torch.where(s, formulas.adapted_spike_gradient.py_func(g, jump, lam_v, lam_a), g)
            read = formulas.adaptation_read.py_func(lam_a, tau_adapt)
            grad_b += torch.where(s, read, torch.zeros_like(read)).sum(dim=0)
        lam_v = lam_v.clone()
        for b, j in zip(b_idx, j_idx):  # adjoint jump at each spike of step n
            lam_v[b, j] = formulas.adjoint_jump.py_func(lam_v[b, j], g[b, j], vdot[b, n, j],
                                                        threshold, c.vdot_min, kick[j])  # fmt: skip
        taus.zero_v(s)
        if n > 0:
            taus.step(lam_v, lam_i)
        if n > 0 and adaptive:  # transposed propagator from step n back to n-1
            lam_v, lam_i, lam_a = _adapted_adjoint_step(
                lam_v, lam_i, lam_a, c.alpha, c.beta, c.beta_a, c.c_adj, c.c_adj_a
            )
        elif n > 0:
            lam_v, lam_i = formulas.adjoint_step.py_func(lam_v, lam_i, c.alpha, c.beta, c.c_adj)
    grad_t, grad_w, grad_d = _input_grads(store_i, store_vmi, samples, steps, units, w, d_steps,
                                          tau_syn)  # fmt: skip
    grad_tau += taus.grads(samples, steps, units, w, d_steps, tau_syn)
    order = torch.argsort(b_out * n_steps * n_out + n_out_steps * n_out + u_out)
    return ReferenceResult(
        n_out_steps[order], u_out[order], b_out[order], None, grad_t, grad_w, grad_d,
        grad_w_rec, grad_d_rec, grad_b if adaptive else None, None if adaptive else grad_tau,
    )  # fmt: skip


def li_reference(
    in_times: Tensor,
    in_units: Tensor,
    in_samples: Tensor,
    batch: int,
    n_steps: int,
    w: Tensor,
    d: Tensor,
    grad_v_fn,
    *,
    dt: float,
    tau_mem: float,
    tau_syn: float,
    max_delay_steps: int,
) -> ReferenceResult:
    """Forward and adjoint of the LI readout; ``grad_v_fn(v) -> dL/dV`` [batch, steps, n_out];
    dL/dtau_mem, dL/dtau_syn in ``grad_tau``."""
    c = grid_constants(dt, tau_mem, tau_syn, 1.0)
    n_out = w.shape[0]
    dtype = w.dtype
    steps = torch.round(in_times.to(dtype) / dt).long()
    units = in_units.long()
    samples = in_samples.long()
    d_steps = torch.round(d / dt).clamp(0, max_delay_steps).long()
    arr = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    _scatter(arr, samples, _arrival_steps(steps, units, d_steps), w[:, units].t())
    v = torch.zeros(batch, n_out, dtype=dtype)
    i = torch.zeros(batch, n_out, dtype=dtype)
    trace = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    for n in range(n_steps):
        v, i = formulas.state_step.py_func(v, i, c.alpha, c.beta, c.c_vi)
        i = i + arr[:, n]
        trace[:, n] = v
    grad_v = grad_v_fn(trace).to(dtype)
    lam_v = torch.zeros(batch, n_out, dtype=dtype)
    lam_i = torch.zeros(batch, n_out, dtype=dtype)
    store_i = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    store_vmi = torch.zeros(batch, n_steps, n_out, dtype=dtype)
    taus = _TauAdjoint(batch, n_steps, n_out, dtype, c.tau_step)
    for n in range(n_steps - 1, -1, -1):
        store_i[:, n] = lam_i
        store_vmi[:, n] = lam_v - lam_i
        taus.record(n)
        lam_v = formulas.readout_drive.py_func(lam_v, grad_v[:, n], tau_mem)  # loss at t_n
        if n > 0:
            taus.step(lam_v, lam_i)
            lam_v, lam_i = formulas.adjoint_step.py_func(lam_v, lam_i, c.alpha, c.beta, c.c_adj)
    grad_t, grad_w, grad_d = _input_grads(store_i, store_vmi, samples, steps, units, w, d_steps,
                                          tau_syn)  # fmt: skip
    grad_tau = taus.grads(samples, steps, units, w, d_steps, tau_syn)
    return ReferenceResult(None, None, None, trace, grad_t, grad_w, grad_d, grad_tau=grad_tau)

"""Timing-based multi-spike backpropagation (Yamamoto, Sakemi & Aihara 2022, arXiv 2211.16113).

The gradient of every spike time by implicit differentiation of the threshold condition, chained
through each neuron's own earlier spikes (the reset) and through the layers: a second exact
backward of the exact engine, independent of its EventProp adjoint (it uses only spike times,
arrivals and weights; no adjoint variables).  Select it with ``LIF(dt=None, backward="timing")``,
``LIReadout(dt=None, backward="timing")`` or ``ExactSettings(backward="timing")``; the forward
pass is the exact engine's.  docs/methods.md compares it with EventProp and DelGrad.

Model (times in ms): tau_mem dV/dt = -V + I, tau_syn dI/dt = -I; an arrival a = (presynaptic
spike time) + delay makes I jump by w; at a spike V is reset to 0 (and held there for
``refractory`` ms), I is not reset.  Let neuron j fire at t^1 < t^2 < ...; its membrane restarts
from 0 at L^k = t^{k-1} + refractory (L^1 = -inf), so for L^k < t <= t^k

    V(t) = sum_{a < t} w_a F(a; L^k, t)
    F(a; L, t) = K(t - a)                          if a >= L (arrived after the restart)
               = e^{-(L - a)/tau_syn} K(t - L)      if a < L  (its current carried over the reset)
    K(h) = e^{-h/tau_mem} (e^{delta h} - 1) / (delta tau_mem),  delta = 1/tau_mem - 1/tau_syn

(K is the PSP of a unit current jump; K(h) = h e^{-h/tau}/tau at tau_mem = tau_syn.)  Every arrival
before t^k matters.  The threshold condition V(t^k) = theta gives, with the slope
tau_mem dV/dt = I(t^k) - theta =: vdot_k at the crossing,

    dt^k/dp = -tau_mem (dV(t^k)/dp) / vdot_k      for p = w_a, a, L^k
    dF/da = -K'(t - a)  (a >= L),   F / tau_syn  (a < L)      tau_mem K'(h) = e^{-h/tau_syn} - K(h)
    dV(t^k)/dL^k = -e^{-(t^k - L^k)/tau_mem} I(L^k) / tau_mem

and a = (source spike time) + delay, so dL/d delay = dL/d source time = dL/da per arrival.  The
reverse sweep visits all spikes of a sample (all neurons of the layer) latest first.  When spike
(j, k) is reached its total derivative T = dL/dt^k is complete: the direct term (from the loss or
the next layer), the chained term of j's next spike through L^{k+1}, and the terms of the
recurrent arrivals it causes (all of which act on later spikes).  It then passes
T dt^k/dp on to its weights, delays, input spike times and earlier spikes.

Readout (LI, no threshold): V(t) = sum_{a < t} w_a K(t - a).  A trace sample V(t_n) and a peak
(value and time) have closed-form derivatives: at a smooth peak (tau_mem dV/dt = I - V = 0)
dt*/dp = tau_syn (dI/dp - dV/dp) / I(t*); a peak on an arrival (a kink) moves with that arrival.

Conventions shared with the exact engine: simultaneous events are ordered spikes, then refractory
ends / readout samples, then arrivals, so an arrival at the same time as a spike or sample acts
after it (e.g. a zero-delay recurrent arrival comes after the spike that caused it).  Near
tangential crossings the slope is floored as in the EventProp backward: vdot_k ->
max(I - theta, vdot_min), vdot_min = ``vdot_floor`` theta; without a refractory period the
floored crossing is treated as if its current were theta + vdot_min, also in the reset term of
the next spike (EventProp's jump lambda_V += (theta lambda_V + G) / vdot does the same), so
that both backward passes agree everywhere.  The spike-count regulariser's kick of lambda_V by
k_j at each spike of j becomes T -= k_j vdot_k.

Cost: per sample O(output spikes x presynaptic spikes) for a LIF layer and O(samples x input
spikes x n_out) for a readout trace, against O(events) for EventProp: fine for small networks
such as Yin-Yang 4-30-3 (docs/methods.md has timings).  Samples run in parallel (Numba).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from .._util import n_chunks
from ..kernels.lif_flow import flow
from ._forward import PEAK_ARRIVAL, PEAK_END, PEAK_SMOOTH
from ._host import _np, _spike_arrays

__all__ = ["lif_backward", "li_trace_backward", "li_peak_backward"]

_NO_LOWER = -np.inf  # restart time of a neuron's first interval: it integrates from the start


# ----------------------------------------------------------------------------- shared pieces
# The loops over source spikes index with unsigned integers, so that Numba adds no negative-index
# wrap-around test to each access (see kernels/cpu.py): 1.25x on a 100-200 layer's backward.
@njit(cache=True)
def _state_before(t, lower, src_t, src_u, lo, hi, w_row, d_row, tm, ts, delta, voltage):
    """(V, I) of one neuron just before t (ms) due to the source spikes lo..hi - 1 (arrival
    a = src_t + d_row[unit]), its membrane restarted from 0 at ``lower``; arrivals at t or
    later do not count.  V is computed only if ``voltage`` (else 0)."""
    v = 0.0
    cur = 0.0
    k_lower = 0.0
    if voltage and lower > _NO_LOWER:
        k_lower, _ = flow(0.0, 1.0, t - lower, tm, ts, delta)
    for k in range(np.uint64(lo), np.uint64(hi)):
        u = np.uint64(src_u[k])
        a = src_t[k] + d_row[u]
        if not a < t:
            continue
        w = w_row[u]
        cur += w * math.exp(-(t - a) / ts)
        if not voltage:
            continue
        if a >= lower:
            k_psp, _ = flow(0.0, 1.0, t - a, tm, ts, delta)
            v += w * k_psp
        else:
            v += w * math.exp(-(lower - a) / ts) * k_lower
    return v, cur


@njit(cache=True)
def _push_to_arrivals(cv, ci, t, lower, src_t, src_u, lo, hi, w_row, d_row, g_src, dw_row,
                      dd_row, tm, ts, delta):  # fmt: skip
    """Add cv dV(t)/dp + ci dI(t)/dp for the parameters of every arrival a < t of the source
    spikes lo..hi - 1 at one neuron (membrane restarted at ``lower``): to dw_row[unit] (p = w),
    and to dd_row[unit] and g_src[spike] (p = a; a delay and a source spike time enter only as
    their sum)."""
    k_lower = 0.0
    if lower > _NO_LOWER:
        k_lower, _ = flow(0.0, 1.0, t - lower, tm, ts, delta)
    for k in range(np.uint64(lo), np.uint64(hi)):
        u = np.uint64(src_u[k])
        a = src_t[k] + d_row[u]
        if not a < t:
            continue
        if a >= lower:
            f, e_syn = flow(0.0, 1.0, t - a, tm, ts, delta)
            df_da = (f - e_syn) / tm
        else:
            e_syn = math.exp(-(t - a) / ts)
            f = math.exp(-(lower - a) / ts) * k_lower
            df_da = f / ts
        g_a = w_row[u] * (cv * df_da + ci * e_syn / ts)
        dw_row[u] += cv * f + ci * e_syn
        dd_row[u] += g_a
        g_src[k] += g_a


# ----------------------------------------------------------------------------- LIF layer
@njit(cache=True)
def _lif_sample(
    in_t, in_u, lo, hi, w, d, out_t, out_u, olo, ohi, g, kick, w_rec, d_rec, consts,
    grad_in, dw, dd, dw_rec, dd_rec, last, prev, i_spike,
):  # fmt: skip
    """One sample of a LIF layer: input spikes lo..hi - 1, output spikes olo..ohi - 1 (their
    dL/dt in ``g``, completed in place); adds to grad_in, g and the [n_out, n_src] gradient
    arrays.  ``last``, ``prev``, ``i_spike`` are scratch."""
    tm, ts, delta, theta, t_ref, vdot_min = (
        consts[0], consts[1], consts[2], consts[3], consts[5], consts[6]
    )  # fmt: skip
    recurrent = w_rec.shape[0] > 0
    # forward sweep: each spike's predecessor in its own train and the current at its crossing
    last[:] = -1
    for s in range(olo, ohi):
        j = out_u[s]
        p = last[j]
        prev[s - olo] = p
        last[j] = s
        lower = _NO_LOWER if p < 0 else out_t[p] + t_ref
        _, cur = _state_before(out_t[s], lower, in_t, in_u, lo, hi, w[j], d[j], tm, ts, delta,
                               False)  # fmt: skip
        if recurrent:
            _, c_rec = _state_before(out_t[s], lower, out_t, out_u, olo, s, w_rec[j], d_rec[j],
                                     tm, ts, delta, False)  # fmt: skip
            cur += c_rec
        i_spike[s - olo] = cur
    # reverse sweep: the total dL/dt of a spike is complete once all later spikes are done
    for s in range(ohi - 1, olo - 1, -1):
        j = out_u[s]
        t = out_t[s]
        p = prev[s - olo]
        lower = _NO_LOWER if p < 0 else out_t[p] + t_ref
        vdot = max(i_spike[s - olo] - theta, vdot_min)
        total = g[s] - kick[j] * vdot
        cv = -tm * total / vdot  # dL/dp += cv dV(t)/dp
        _push_to_arrivals(cv, 0.0, t, lower, in_t, in_u, lo, hi, w[j], d[j], grad_in, dw[j],
                          dd[j], tm, ts, delta)  # fmt: skip
        if recurrent:
            _push_to_arrivals(cv, 0.0, t, lower, out_t, out_u, olo, s, w_rec[j], d_rec[j], g,
                              dw_rec[j], dd_rec[j], tm, ts, delta)  # fmt: skip
        if p >= 0:  # the restart L = t^{k-1} + refractory moves with the previous spike
            if t_ref > 0.0:
                _, i_lower = _state_before(lower, _NO_LOWER, in_t, in_u, lo, hi, w[j], d[j],
                                           tm, ts, delta, False)  # fmt: skip
                if recurrent:
                    _, c_rec = _state_before(lower, _NO_LOWER, out_t, out_u, olo, s, w_rec[j],
                                             d_rec[j], tm, ts, delta, False)  # fmt: skip
                    i_lower += c_rec
            else:
                i_lower = max(i_spike[p - olo], theta + vdot_min)
            g[p] += total * math.exp(-(t - lower) / tm) * i_lower / vdot


@njit(cache=True, parallel=True)
def _lif_batch(
    in_t, in_u, in_off, w, d, out_t, out_u, out_off, g, kick, w_rec, d_rec, consts, n_chunks,
    grad_in, dw_part, dd_part, dw_rec_part, dd_rec_part,
):  # fmt: skip
    """All samples of a LIF layer, in parallel; weight and delay gradients go to per-worker
    partial sums [n_chunks, n_out, n_src]."""
    n_out = w.shape[0]
    batch = in_off.size - 1
    max_out = 1
    for b in range(batch):
        max_out = max(max_out, out_off[b + 1] - out_off[b])
    for c in prange(n_chunks):
        last = np.empty(n_out, dtype=np.int64)
        prev = np.empty(max_out, dtype=np.int64)
        i_spike = np.empty(max_out)
        for b in range(c, batch, n_chunks):
            _lif_sample(
                in_t, in_u, in_off[b], in_off[b + 1], w, d, out_t, out_u, out_off[b],
                out_off[b + 1], g, kick, w_rec, d_rec, consts, grad_in, dw_part[c], dd_part[c],
                dw_rec_part[c], dd_rec_part[c], last, prev, i_spike,
            )  # fmt: skip


# ----------------------------------------------------------------------------- LI readout
@njit(cache=True, parallel=True)
def _li_trace_batch(in_t, in_u, in_off, w, d, gv, sample_dt, consts, n_chunks, grad_in, dw_part,
                    dd_part):  # fmt: skip
    """LI trace readout: dL/dV [batch, n_samples, n_out] at t = n sample_dt, pushed onto every
    earlier arrival."""
    tm, ts, delta = consts[0], consts[1], consts[2]
    batch, n_samples, n_out = gv.shape
    for c in prange(n_chunks):
        for b in range(c, batch, n_chunks):
            for n in range(n_samples):
                t_n = n * sample_dt  # the forward pass's sample times
                for j in range(n_out):
                    if gv[b, n, j] != 0.0:
                        _push_to_arrivals(gv[b, n, j], 0.0, t_n, _NO_LOWER, in_t, in_u,
                                          in_off[b], in_off[b + 1], w[j], d[j], grad_in,
                                          dw_part[c, j], dd_part[c, j], tm, ts, delta)  # fmt: skip


@njit(cache=True, parallel=True)
def _li_peak_batch(in_t, in_u, in_off, w, d, t_peak, kind, kink, gv, gt, consts, n_chunks,
                   grad_in, dw_part, dd_part):  # fmt: skip
    """LI peak readout: dL/d(peak value) ``gv`` and dL/d(peak time) ``gt`` [batch, n_out] at the
    peaks ``t_peak`` of ``PEAK_*`` ``kind``; ``kink`` = input spike of a peak on an arrival."""
    tm, ts, delta = consts[0], consts[1], consts[2]
    batch, n_out = t_peak.shape
    for c in prange(n_chunks):
        for b in range(c, batch, n_chunks):
            lo, hi = in_off[b], in_off[b + 1]
            for j in range(n_out):
                t = t_peak[b, j]
                v, cur = _state_before(t, _NO_LOWER, in_t, in_u, lo, hi, w[j], d[j], tm, ts,
                                       delta, kind[b, j] == PEAK_ARRIVAL)  # fmt: skip
                cv, ci = 0.0, 0.0
                if kind[b, j] == PEAK_SMOOTH:  # value: dV/dt = 0; time: t* solves I = V
                    ci = gt[b, j] * ts / cur
                    cv = gv[b, j] - ci
                elif kind[b, j] == PEAK_END:  # the window's end: a fixed time
                    cv = gv[b, j]
                elif kind[b, j] == PEAK_ARRIVAL:  # V just before the arrival k that turns it
                    cv = gv[b, j]  # down; the peak moves with that arrival
                    k = kink[b, j]
                    g_kink = gv[b, j] * (cur - v) / tm + gt[b, j]
                    dd_part[c, j, in_u[k]] += g_kink
                    grad_in[k] += g_kink
                if cv != 0.0 or ci != 0.0:
                    _push_to_arrivals(cv, ci, t, _NO_LOWER, in_t, in_u, lo, hi, w[j], d[j],
                                      grad_in, dw_part[c, j], dd_part[c, j], tm, ts,
                                      delta)  # fmt: skip


# ----------------------------------------------------------------------------- host side
def _dense(weight: Tensor, delay: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """Weights and delays (ms; None = all zero) as float64 arrays [n_out, n_src]."""
    w = _np(weight, np.float64)
    return w, np.zeros_like(w) if delay is None else _np(delay, np.float64)


def _summed(parts: np.ndarray) -> Tensor:
    return torch.from_numpy(parts.sum(axis=0))


def lif_backward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    weight: Tensor,
    delay: Tensor | None,
    out_times: Tensor,
    out_units: Tensor,
    out_offsets: Tensor,
    grad_out: np.ndarray,
    kick: np.ndarray,
    rec_weight: Tensor | None,
    rec_delay: Tensor | None,
    consts: np.ndarray,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Timing-based backward of a LIF layer of the exact engine.

    Args:
        in_times, in_units, in_offsets: the layer's input spikes (ms; flat, per-sample offsets).
        weight, delay: [n_out, n_in] (delay in ms, None = no delays).
        out_times, out_units, out_offsets: the spikes the forward pass produced (time-sorted
            within each sample).
        grad_out: dL/dt of each output spike [n_out_spikes] (from the loss or the next layer).
        kick: spike-count regulariser's lambda_V kick per neuron [n_out] (zeros for none).
        rec_weight, rec_delay: [n_out, n_out] recurrent weights and delays (ms), or None.
        consts: ``ExactSettings.packed()``.

    Returns dL/d input times [n_in_spikes] and dL/dW, dL/dD [n_out, n_in], dL/dW_rec,
    dL/dD_rec [n_out, n_out] ([n_out, 0] without recurrence), float64.
    """
    in_t, in_u, in_off = _spike_arrays(in_times, in_units, in_offsets)
    out_t, out_u, out_off = _spike_arrays(out_times, out_units, out_offsets)
    w, d = _dense(weight, delay)
    n_out = w.shape[0]
    if rec_weight is None:
        w_rec = d_rec = np.zeros((0, 0))
    else:
        w_rec, d_rec = _dense(rec_weight, rec_delay)
    nw = n_chunks(len(in_off) - 1)
    g = np.array(grad_out, dtype=np.float64)  # completed in place by the sweep
    grad_in = np.zeros(len(in_t))
    parts = [np.zeros((nw,) + a.shape) for a in (w, w, w_rec, w_rec)]
    _lif_batch(in_t, in_u, in_off, w, d, out_t, out_u, out_off, g, _np(kick, np.float64),
               w_rec, d_rec, consts, nw, grad_in, *parts)  # fmt: skip
    dw, dd, dw_rec, dd_rec = (_summed(p) for p in parts)
    if rec_weight is None:
        dw_rec = dd_rec = torch.zeros(n_out, 0, dtype=torch.float64)
    return torch.from_numpy(grad_in), dw, dd, dw_rec, dd_rec


def li_trace_backward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    weight: Tensor,
    delay: Tensor | None,
    grad_v: Tensor,
    sample_dt: float,
    consts: np.ndarray,
) -> tuple[Tensor, Tensor, Tensor]:
    """Timing-based backward of an LI readout trace: ``grad_v`` = dL/dV [batch, n_samples,
    n_out] at t = n sample_dt (ms).  Returns dL/d input times, dL/dW, dL/dD."""
    in_t, in_u, in_off = _spike_arrays(in_times, in_units, in_offsets)
    w, d = _dense(weight, delay)
    gv = _np(grad_v, np.float64)
    nw = n_chunks(gv.shape[0])
    grad_in = np.zeros(len(in_t))
    parts = [np.zeros((nw,) + w.shape) for _ in range(2)]
    _li_trace_batch(in_t, in_u, in_off, w, d, gv, float(sample_dt), consts, nw, grad_in, *parts)
    return torch.from_numpy(grad_in), _summed(parts[0]), _summed(parts[1])


def li_peak_backward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    weight: Tensor,
    delay: Tensor | None,
    peaks: tuple[np.ndarray, ...],
    grad_value: np.ndarray,
    grad_time: np.ndarray,
    consts: np.ndarray,
) -> tuple[Tensor, Tensor, Tensor]:
    """Timing-based backward of the LI readout's peak (value and time, [batch, n_out] each).

    ``peaks`` = (value, time, kind, kink stream, kink position, aux) of the forward pass; only
    the time, the ``PEAK_*`` kind and, for a peak on an arrival, which input spike caused that
    arrival are used.  Returns dL/d input times, dL/dW, dL/dD.
    """
    in_t, in_u, in_off = _spike_arrays(in_times, in_units, in_offsets)
    w, d = _dense(weight, delay)
    _, t_peak, kind, kink_stream, _, _ = peaks
    # the stream of an input arrival is the input spike's index within its sample
    kink = np.where(kind == PEAK_ARRIVAL, in_off[:-1, None] + kink_stream, -1)
    nw = n_chunks(t_peak.shape[0])
    grad_in = np.zeros(len(in_t))
    parts = [np.zeros((nw,) + w.shape) for _ in range(2)]
    _li_peak_batch(in_t, in_u, in_off, w, d, _np(t_peak, np.float64), _np(kind, np.int64),
                   _np(kink, np.int64), _np(grad_value, np.float64), _np(grad_time, np.float64),
                   consts, nw, grad_in, *parts)  # fmt: skip
    return torch.from_numpy(grad_in), _summed(parts[0]), _summed(parts[1])

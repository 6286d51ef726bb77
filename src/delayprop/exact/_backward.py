"""Numba kernel of the exact engine's backward pass: the EventProp adjoint in continuous time.

One code path for every layer type: the merged event timeline of a sample is walked backward
(the exact reverse of the forward order, see ``_forward``), and each neuron's adjoint
(lambda_V, lambda_I) is carried lazily from its last event by the closed-form flow
(``kernels.lif_flow.adjoint_flow``).  Events, latest first, with the formulas of
``kernels.formulas`` that the time grid shares:

* arrival of a spike of source u at neuron j (input or recurrent stream), weight w
  (``arrival_read``): dL/dw_ju -= tau_syn lambda_I;   dL/dd_ju += w (lambda_V - lambda_I);
  dL/dt of the source spike += w (lambda_V - lambda_I)
  (plus a direct term where an LI readout's peak sits on this very arrival);
* end of a refractory period of spike k (current I_e there, ``refractory_end_read``):
  G_k += lambda_V I_e, then
  lambda_V = 0 (V is clamped before, so it has no sensitivity);
* readout drive (LI, ``readout_drive``): lambda_V -= dL/dV / tau_mem,
  lambda_I -= dL/dI / tau_syn at that time;
* spike k of neuron j (``adjoint_jump``, slope I - threshold, floored at ``vdot_min``):
  lambda_V += (threshold lambda_V + G_k) / (I - threshold) - kick_j,
  G_k = dL/dt_k from downstream plus the recurrent reads above (all at later times, so
  already complete: the pass is causal).

Adaptation (``jump`` = b per neuron not empty, ``_forward``): each neuron also carries lambda_A
(``kernels.lif_flow.adapted_adjoint_flow``); at a spike of j, with lambda_V, lambda_A just after
it, G_k becomes ``adapted_spike_gradient`` (G_k - b_j (lambda_V + lambda_A)), the slope is
the recorded I - A - threshold, dL/db_j += ``adaptation_read`` (-tau_adapt lambda_A), and
lambda_I, lambda_A do not jump; a refractory end reads the recorded drive I - A.

Time constants (only when ``dtau_part`` is not empty): each neuron also carries the auxiliary
adjoints (m_V, m_I, M) of ``kernels.lif_flow.tau_sensitivity_flow``; every arrival adds
``tau_arrival_read`` to dL/dtau_mem, dL/dtau_syn of its target, and m_V is zeroed where V is
reset (a spike) or leaves its clamp (a refractory end), as lambda_V is.

The time constants are read per neuron from ``taus`` [3, n_out] (tau_mem, tau_syn, delta of
neuron j in column j, as in ``_forward``); ``consts`` supplies the rest.

Samples run in parallel; weight and delay gradients go to per-worker partial sums
``[n_chunks, n_src * n_out]`` indexed ``u * n_out + j``, time-constant gradients to
``[n_chunks, 2, n_out]`` (dL/dtau_mem, dL/dtau_syn per neuron), adaptation gradients to
``[n_chunks, n_out]`` (dL/db per neuron).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..kernels.formulas import (
    adaptation_read,
    adapted_spike_gradient,
    adjoint_jump,
    arrival_read,
    readout_drive,
    refractory_end_read,
    tau_arrival_read,
)
from ..kernels.lif_flow import adapted_adjoint_flow, adjoint_flow, tau_sensitivity_flow
from ._timeline import heap_pop, heap_push, heap_replace_top

__all__ = ["walk_backward"]


@njit(cache=True)
def _last_arrival(t_src, d_row, duration):
    """Index of the last arrival t_src + d_row[m] before ``duration`` (-1 if none), with the
    same floating-point test as the forward pass."""
    m = np.searchsorted(d_row, duration - t_src) - 1
    while m >= 0 and t_src + d_row[m] >= duration:
        m -= 1
    while m + 1 < d_row.size and t_src + d_row[m + 1] < duration:
        m += 1
    return m


@njit(cache=True)
def _push_streams_reversed(times, units, lo, hi, d_sorted, duration, key, stream, pos, n, first):
    for k in range(lo, hi):
        u = units[k]
        m = _last_arrival(times[k], d_sorted[u], duration)
        if m >= 0:
            n = heap_push(key, stream, pos, n, -(times[k] + d_sorted[u, m]), first + k - lo, m)
    return n


@njit(cache=True)
def _retreat_stream(key, stream, pos, n, t_src, d_row, a, m):
    if m > 0:
        heap_replace_top(key, stream, pos, n, -(t_src + d_row[m - 1]), a, m - 1)
        return n
    return heap_pop(key, stream, pos, n)


@njit(cache=True)
def _propagate(lam_v, lam_i, lam_a, aux, tl, j, t, consts, taus):
    """Carry neuron j's adjoint (with lambda_A if ``lam_a`` is not empty, and, if ``aux``
    [3, n_out] is not empty, its auxiliary adjoints m_V, m_I, M) back from its last event time
    tl[j] to t <= tl[j], with its time constants ``taus[:, j]``."""
    tm, ts, delta = taus[0, j], taus[1, j], taus[2, j]
    if aux.shape[0] > 0:
        aux[0, j], aux[1, j], aux[2, j] = tau_sensitivity_flow(
            lam_v[j], lam_i[j], aux[0, j], aux[1, j], aux[2, j], tl[j] - t, tm, ts, delta
        )
    if lam_a.size > 0:
        lam_v[j], lam_i[j], lam_a[j] = adapted_adjoint_flow(
            lam_v[j], lam_i[j], lam_a[j], tl[j] - t, tm, ts, consts[7], delta, consts[8]
        )
    else:
        lam_v[j], lam_i[j] = adjoint_flow(lam_v[j], lam_i[j], tl[j] - t, tm, ts, delta)
    tl[j] = t


@njit(cache=True)
def _sample_backward(
    b, in_times, in_units, lo, hi, d_in, tgt_in, w_in,
    out_times, out_units, olo, ohi, out_vdot, out_iref, g_out, kick, d_rec, tgt_rec, w_rec,
    drive_t, drive_j, drive_gv, drive_gi, kink_a, kink_m, kink_c, consts, taus, jump,
    grad_in, dw, dd, dw_rec, dd_rec, dtau, db, lam_v, lam_i, lam_a, aux, tl, key, stream, pos,
):  # fmt: skip
    theta, duration, t_ref, vdot_min, ta = consts[3], consts[4], consts[5], consts[6], consts[7]
    tau_m, tau_s = taus[0], taus[1]
    adaptive = jump.size > 0
    n_out = d_in.shape[1]
    recurrent = d_rec.shape[0] > 0
    has_gi = drive_gi.size > 0
    has_kink = kink_a.shape[0] > 0
    neg = -np.inf
    lam_v[:] = 0.0
    lam_i[:] = 0.0
    lam_a[:] = 0.0
    aux[:] = 0.0
    tl[:] = duration
    tau_grads = aux.shape[0] > 0
    n_in = hi - lo
    nh = _push_streams_reversed(in_times, in_units, lo, hi, d_in, duration, key, stream, pos,
                                0, 0)  # fmt: skip
    if recurrent:
        nh = _push_streams_reversed(out_times, out_units, olo, ohi, d_rec, duration, key,
                                    stream, pos, nh, n_in)  # fmt: skip
    p = ohi - 1  # next spike
    q = ohi - 1  # next refractory end
    if t_ref > 0.0:
        while q >= olo and math.isnan(out_iref[q]):
            q -= 1
    else:
        q = olo - 1
    e = drive_t.shape[1] - 1  # next readout drive
    while True:
        t_arr = -key[0] if nh > 0 else neg
        t_end = out_times[q] + t_ref if q >= olo else neg
        t_drive = drive_t[b, e] if e >= 0 else neg
        t_spike = out_times[p] if p >= olo else neg
        if nh > 0 and t_arr >= t_end and t_arr >= t_drive and t_arr >= t_spike:
            a = stream[0]
            m = pos[0]
            if a < n_in:
                k = lo + a
                u = in_units[k]
                j = tgt_in[u, m]
                w = w_in[u, m]
                nh = _retreat_stream(key, stream, pos, nh, in_times[k], d_in[u], a, m)
            else:
                k = olo + a - n_in
                u = out_units[k]
                j = tgt_rec[u, m]
                w = w_rec[u, m]
                nh = _retreat_stream(key, stream, pos, nh, out_times[k], d_rec[u], a, m)
            _propagate(lam_v, lam_i, lam_a, aux, tl, j, t_arr, consts, taus)
            g_w, g = arrival_read(w, lam_i[j], lam_v[j] - lam_i[j], tau_s[j])
            if tau_grads:
                g_tm, g_ts = tau_arrival_read(w, aux[1, j], aux[2, j], tau_s[j])
                dtau[0, j] += g_tm
                dtau[1, j] += g_ts
            if has_kink and kink_a[b, j] == a and kink_m[b, j] == m:
                g += kink_c[b, j]
            syn = u * n_out + j
            if a < n_in:
                dw[syn] += g_w
                dd[syn] += g
                grad_in[k] += g
            else:
                dw_rec[syn] += g_w
                dd_rec[syn] += g
                g_out[k] += g
        elif q >= olo and t_end >= t_drive and t_end >= t_spike:
            j = out_units[q]
            _propagate(lam_v, lam_i, lam_a, aux, tl, j, t_end, consts, taus)
            g_out[q] += refractory_end_read(lam_v[j], out_iref[q])
            lam_v[j] = 0.0
            if tau_grads:
                aux[0, j] = 0.0
            q -= 1
            while q >= olo and math.isnan(out_iref[q]):
                q -= 1
        elif e >= 0 and t_drive >= t_spike:
            jd = drive_j[b, e]
            j_lo, j_hi = (0, n_out) if jd < 0 else (jd, jd + 1)
            for j in range(j_lo, j_hi):
                _propagate(lam_v, lam_i, lam_a, aux, tl, j, t_drive, consts, taus)
                lam_v[j] = readout_drive(lam_v[j], drive_gv[b, e, j], tau_m[j])
                if has_gi:
                    lam_i[j] = readout_drive(lam_i[j], drive_gi[b, e, j], tau_s[j])
            e -= 1
        elif p >= olo:
            j = out_units[p]
            _propagate(lam_v, lam_i, lam_a, aux, tl, j, t_spike, consts, taus)
            g = g_out[p]
            if adaptive:
                g = adapted_spike_gradient(g, jump[j], lam_v[j], lam_a[j])
                db[j] += adaptation_read(lam_a[j], ta)
            lam_v[j] = adjoint_jump(lam_v[j], g, out_vdot[p], theta, vdot_min, kick[j])
            if tau_grads:
                aux[0, j] = 0.0
            p -= 1
        else:
            break


@njit(cache=True, parallel=True)
def walk_backward(
    in_times, in_units, in_offsets, d_in, tgt_in, w_in,
    out_times, out_units, out_offsets, out_vdot, out_iref, g_out, kick, d_rec, tgt_rec, w_rec,
    drive_t, drive_j, drive_gv, drive_gi, kink_a, kink_m, kink_c, consts, taus, jump,
    max_streams, n_chunks, grad_in, dw_part, dd_part, dw_rec_part, dd_rec_part, dtau_part, db_part,
):  # fmt: skip
    """Adjoint pass of one layer for the whole batch (see the module docstring).

    LIF layers pass their output spikes (``out_*``; ``g_out`` = dL/dt per spike, updated in
    place with the recurrent contributions) and no drives; LI readouts pass empty spike arrays
    and drives: ``drive_t[b, e]`` (ascending, ms), ``drive_j[b, e]`` (neuron, -1 for all),
    ``drive_gv``/``drive_gi`` [batch, E, n_out] = dL/dV, dL/dI there (``drive_gi`` may be
    empty), and optionally ``kink_*`` [batch, n_out]: extra dL/dt of one arrival (stream a,
    position m) per neuron.  ``max_streams`` bounds input plus output spikes of any sample.
    ``dtau_part`` [n_chunks, 2, n_out] receives dL/dtau_mem, dL/dtau_syn per neuron, or is
    empty ([n_chunks, 0, n_out]) when the time constants need no gradient; ``taus`` [3, n_out]
    holds the time constants per neuron (module docstring).  ``jump`` [n_out]
    is the adaptation jump b per neuron (V units), or empty without adaptation; ``db_part``
    [n_chunks, n_out] then receives dL/db per neuron ([n_chunks, 0] without adaptation).
    """
    n_out = d_in.shape[1]
    batch = in_offsets.size - 1
    for c in prange(n_chunks):
        lam_v = np.empty(n_out)
        lam_i = np.empty(n_out)
        lam_a = np.empty(jump.size)
        aux = np.empty((3 if dtau_part.shape[1] > 0 else 0, n_out))
        tl = np.empty(n_out)
        key = np.empty(max_streams)
        stream = np.empty(max_streams, dtype=np.int64)
        pos = np.empty(max_streams, dtype=np.int64)
        dw, dd = dw_part[c], dd_part[c]
        dw_rec, dd_rec = dw_rec_part[c], dd_rec_part[c]
        dtau = dtau_part[c]
        db = db_part[c]
        for b in range(c, batch, n_chunks):
            _sample_backward(
                b, in_times, in_units, in_offsets[b], in_offsets[b + 1], d_in, tgt_in, w_in,
                out_times, out_units, out_offsets[b], out_offsets[b + 1], out_vdot, out_iref,
                g_out, kick, d_rec, tgt_rec, w_rec, drive_t, drive_j, drive_gv, drive_gi,
                kink_a, kink_m, kink_c, consts, taus, jump, grad_in, dw, dd, dw_rec, dd_rec,
                dtau, db, lam_v, lam_i, lam_a, aux, tl, key, stream, pos,
            )  # fmt: skip

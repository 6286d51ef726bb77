"""Numba kernels of the exact engine's forward pass (float64, times in ms).

Layout shared with ``_backward``:

* a projection (input or recurrent) is given row by source unit, its delays sorted ascending:
  ``d_sorted[u, m]`` (ms), ``target[u, m]`` (postsynaptic neuron), ``w_sorted[u, m]``;
  a spike of u at t is the arrival stream t + d_sorted[u, :] (see ``_timeline``);
* streams of a sample are numbered: input spikes first (0 .. n_in - 1, in input order), then
  the layer's own spikes (n_in + s for its s-th spike) for recurrent connections;
* ``consts`` = ``ExactSettings.packed()``: [tau_mem, tau_syn, delta, threshold, duration,
  refractory, vdot_min, tau_adapt, delta_a]; arrivals and spikes at or after ``duration`` are
  dropped; the kernels read the time constants per neuron from ``taus`` [3, n_out] (tau_mem,
  tau_syn ms and delta = 1/tau_mem - 1/tau_syn ms^-1 of neuron j in column j;
  ``exact.functional._neuron_constants``), not from ``consts[0:3]``: a layer with one pair has
  every column equal;
* adaptation (``jump`` = b per neuron, V units, not empty): each spike of neuron j adds b_j to
  its adaptation current A, which decays with tau_adapt and enters tau_mem dV/dt = -V + I - A
  (``kernels.lif_flow.adapted_flow``); A decays on through refractory periods and after the
  spike limit.  Without adaptation ``jump`` (and the per-worker A) are empty and the kernels
  take the plain LIF flow.

Order of simultaneous events (mirrored by the backward pass): spikes, then refractory ends /
readout samples, then arrivals (so a spike's zero-delay recurrent arrivals come after it).

Spike predictions are lazy: after an event a neuron gets only a cheap lower bound of its next
crossing (``kernels.lif_flow.crossing_lower_bound``); the exact root is found when that bound
becomes the earliest pending event.  A neuron that receives another input before then never
pays for root finding (most predictions of a busy neuron are overtaken by its next input).

Samples run in parallel; each worker owns its scratch buffers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..kernels.lif_flow import (
    MAX_END,
    MAX_INTERIOR,
    adapted_flow,
    crossing_lower_bound,
    first_crossing,
    first_crossing_adapted,
    flow,
    interval_max,
)
from ._timeline import heap_pop, heap_push, heap_replace_top, tree_reset, tree_set

__all__ = ["lif_forward", "li_forward", "PEAK_START", "PEAK_SMOOTH", "PEAK_ARRIVAL", "PEAK_END"]

#: where the maximum of an LI readout lies: at t = 0 (V = 0), at a smooth peak (dV/dt = 0), just
#: before an arrival that turns the voltage down, or at the end of the window
PEAK_START, PEAK_SMOOTH, PEAK_ARRIVAL, PEAK_END = 0, 1, 2, 3


@njit(cache=True)
def _push_streams(times, units, lo, hi, d_sorted, duration, key, stream, pos, n, first_id):
    """Push the first arrival (before ``duration``) of the spikes lo..hi - 1 as streams
    first_id, first_id + 1, ...; returns the heap size."""
    for k in range(lo, hi):
        t = times[k] + d_sorted[units[k], 0]
        if t < duration:
            n = heap_push(key, stream, pos, n, t, first_id + k - lo, 0)
    return n


@njit(cache=True)
def _advance_stream(key, stream, pos, n, t_src, d_sorted, u, a, m, duration):
    """Replace the popped arrival (a, m) at the heap top by the next one of its stream (a spike
    of source u at t_src)."""
    if m + 1 < d_sorted.shape[1]:
        t_next = t_src + d_sorted[u, m + 1]
        if t_next < duration:
            heap_replace_top(key, stream, pos, n, t_next, a, m + 1)
            return n
    return heap_pop(key, stream, pos, n)


# ----------------------------------------------------------------------------- LIF
@njit(cache=True)
def _lif_sample(
    in_times, in_units, lo, hi, d_in, tgt_in, w_in, d_rec, tgt_rec, w_rec, consts, taus,
    max_spikes, jump, base, cap, out_t, out_u, out_vdot, out_iref,
    v, cur, adapt, tl, clamped, n_spk, tentative, tree_t, tree_i, leaves, key, stream, pos,
    ref_queue,
):  # fmt: skip
    """Simulate one sample; returns its spike count, or -1 if it needs more than ``cap``.
    ``adapt`` (A per neuron) is empty, as ``jump`` is, without adaptation."""
    theta, duration, t_ref = consts[3], consts[4], consts[5]
    ta, delta_a = consts[7], consts[8]
    tau_m, tau_s, dl = taus[0], taus[1], taus[2]
    recurrent = d_rec.shape[0] > 0
    adaptive = jump.size > 0
    v[:] = 0.0
    cur[:] = 0.0
    adapt[:] = 0.0
    tl[:] = 0.0
    clamped[:] = False
    tentative[:] = False
    n_spk[:] = 0
    tree_reset(tree_t, tree_i, leaves)
    n_in = hi - lo
    nh = _push_streams(in_times, in_units, lo, hi, d_in, duration, key, stream, pos, 0, 0)
    count = 0
    q_head = 0
    q_tail = 0
    while True:
        t_spike = tree_t[1]
        t_end = out_t[base + ref_queue[q_head]] + t_ref if q_head < q_tail else np.inf
        t_arr = key[0] if nh > 0 else np.inf
        if t_spike <= t_end and t_spike <= t_arr:
            if t_spike == np.inf:
                break
            j = tree_i[1]
            if tentative[j]:
                # ---- a lower bound came due: find the exact crossing from j's last event
                tentative[j] = False
                if adaptive:
                    s_cross = first_crossing_adapted(v[j], cur[j], adapt[j], duration - tl[j],
                                                     theta, tl[j], tau_m[j], tau_s[j], ta, dl[j],
                                                     delta_a)  # fmt: skip
                else:
                    s_cross = first_crossing(v[j], cur[j], duration - tl[j], theta, tl[j],
                                             tau_m[j], tau_s[j], dl[j])  # fmt: skip
                t_next = tl[j] + s_cross
                tree_set(tree_t, tree_i, leaves, j, t_next if t_next < duration else np.inf)
                continue
            # ---- spike of neuron j: V reached theta; reset, adapt (and clamp)
            t = t_spike
            cur[j] *= math.exp(-(t - tl[j]) / tau_s[j])
            drive = cur[j]
            if adaptive:
                adapt[j] *= math.exp(-(t - tl[j]) / ta)
                drive -= adapt[j]
                adapt[j] += jump[j]
            v[j] = 0.0
            tl[j] = t
            tree_set(tree_t, tree_i, leaves, j, np.inf)
            if count >= cap:
                return -1
            slot = base + count
            out_t[slot] = t
            out_u[slot] = j
            out_vdot[slot] = drive - theta
            out_iref[slot] = np.nan
            if recurrent and t + d_rec[j, 0] < duration:
                nh = heap_push(key, stream, pos, nh, t + d_rec[j, 0], n_in + count, 0)
            n_spk[j] += 1
            if max_spikes > 0 and n_spk[j] >= max_spikes:
                clamped[j] = True  # silent for the rest of the trial
            elif t_ref > 0.0:
                clamped[j] = True
                if t + t_ref < duration:
                    ref_queue[q_tail] = count
                    q_tail += 1
            count += 1
        elif t_end <= t_arr:
            # ---- end of a refractory period: V leaves 0 with the drive I - A
            t = t_end
            s = ref_queue[q_head]
            q_head += 1
            j = out_u[base + s]
            cur[j] *= math.exp(-(t - tl[j]) / tau_s[j])
            drive = cur[j]
            if adaptive:
                adapt[j] *= math.exp(-(t - tl[j]) / ta)
                drive -= adapt[j]
            tl[j] = t
            clamped[j] = False
            out_iref[base + s] = drive
        else:
            # ---- arrival of stream a at its m-th target
            t = t_arr
            a = stream[0]
            m = pos[0]
            if a < n_in:
                k = lo + a
                u = in_units[k]
                t_src = in_times[k]
                j = tgt_in[u, m]
                w = w_in[u, m]
                nh = _advance_stream(key, stream, pos, nh, t_src, d_in, u, a, m, duration)
            else:
                s = base + a - n_in
                u = out_u[s]
                t_src = out_t[s]
                j = tgt_rec[u, m]
                w = w_rec[u, m]
                nh = _advance_stream(key, stream, pos, nh, t_src, d_rec, u, a, m, duration)
            if clamped[j]:
                cur[j] *= math.exp(-(t - tl[j]) / tau_s[j])
                if adaptive:
                    adapt[j] *= math.exp(-(t - tl[j]) / ta)
            elif adaptive:
                v[j], cur[j], adapt[j] = adapted_flow(v[j], cur[j], adapt[j], t - tl[j],
                                                      tau_m[j], tau_s[j], ta, dl[j],
                                                      delta_a)  # fmt: skip
            else:
                v[j], cur[j] = flow(v[j], cur[j], t - tl[j], tau_m[j], tau_s[j], dl[j])
            tl[j] = t
            cur[j] += w
        # ---- new (lazy) prediction for the neuron j that just changed, if it is free
        if clamped[j]:
            continue
        s_lb = crossing_lower_bound(v[j], cur[j], theta, tau_m[j])
        t_next = t + s_lb if t + s_lb < duration else np.inf
        tentative[j] = 0.0 < s_lb < np.inf and t_next < np.inf
        if t_next != tree_t[leaves + j]:  # most arrivals leave a neuron without prediction
            tree_set(tree_t, tree_i, leaves, j, t_next)
    return count


@njit(cache=True, parallel=True)
def lif_forward(
    in_times, in_units, in_offsets, d_in, tgt_in, w_in, d_rec, tgt_rec, w_rec, consts, taus,
    max_spikes, jump, leaves, sample_ids, cap, max_in, n_chunks,
    out_t, out_u, out_vdot, out_iref, out_counts,
):  # fmt: skip
    """Simulate a LIF layer for the samples ``sample_ids`` (ff when ``d_rec`` has no rows).

    Sample ``sample_ids[r]`` writes its spikes in time order to slots ``r*cap .. r*cap + cap``:
    time (ms), neuron, tau_mem dV/dt = I - A - threshold just before the spike, and the drive
    I - A at the end of the refractory period that follows it (NaN if none within the trial;
    A = 0 without adaptation).  ``jump`` [n_out] (V units, >= 0) is the adaptation jump b per
    neuron, or empty for no adaptation; ``taus`` [3, n_out] the time constants per neuron (module
    docstring).  ``out_counts[r]`` is its spike count, or -1 if it
    needs more room than ``cap``.
    ``max_spikes`` > 0 silences a neuron after that many spikes; ``max_in`` bounds the input
    spikes of any sample; ``leaves`` is ``tree_size(n_out)``.
    """
    n_out = d_in.shape[1]
    n_run = sample_ids.size
    for c in prange(n_chunks):
        v = np.empty(n_out)
        cur = np.empty(n_out)
        adapt = np.empty(jump.size)
        tl = np.empty(n_out)
        clamped = np.empty(n_out, dtype=np.bool_)
        n_spk = np.empty(n_out, dtype=np.int64)
        tentative = np.empty(n_out, dtype=np.bool_)
        tree_t = np.empty(2 * leaves)
        tree_i = np.empty(2 * leaves, dtype=np.int64)
        key = np.empty(max_in + cap)
        stream = np.empty(max_in + cap, dtype=np.int64)
        pos = np.empty(max_in + cap, dtype=np.int64)
        ref_queue = np.empty(cap, dtype=np.int64)
        for r in range(c, n_run, n_chunks):
            b = sample_ids[r]
            out_counts[r] = _lif_sample(
                in_times, in_units, in_offsets[b], in_offsets[b + 1], d_in, tgt_in, w_in,
                d_rec, tgt_rec, w_rec, consts, taus, max_spikes, jump, r * cap, cap,
                out_t, out_u, out_vdot, out_iref,
                v, cur, adapt, tl, clamped, n_spk, tentative, tree_t, tree_i, leaves, key, stream,
                pos, ref_queue,
            )  # fmt: skip


# ----------------------------------------------------------------------------- LI readout
@njit(cache=True)
def _record_peak(j, val, t, kind, a, m, aux, peak_v, peak_t, peak_kind, peak_a, peak_m, peak_aux):
    if val > peak_v[j]:
        peak_v[j], peak_t[j], peak_kind[j] = val, t, kind
        peak_a[j], peak_m[j], peak_aux[j] = a, m, aux


@njit(cache=True, parallel=True)
def li_forward(
    in_times, in_units, in_offsets, d_in, tgt_in, w_in, consts, taus, sample_dt, max_in, n_chunks,
    v_out, peak_v, peak_t, peak_kind, peak_a, peak_m, peak_aux,
):  # fmt: skip
    """Leaky-integrator readout of every sample.

    Trace (if ``v_out`` [batch, n_samples, n_out] is not empty): ``v_out[b, n, j]`` = V_j at
    t = n * sample_dt (ms).  Peak (if the ``peak_*`` arrays [batch, n_out] are not empty): the
    maximum of V_j over [0, duration], its time, its ``PEAK_*`` kind, for PEAK_ARRIVAL the
    arrival (stream a, position m) and tau_mem dV/dt just before it (``peak_aux``), for
    PEAK_SMOOTH the synaptic current there (``peak_aux``).  ``taus`` [3, n_out]: the time
    constants per neuron (module docstring).
    """
    duration = consts[4]
    tau_m, tau_s, dl = taus[0], taus[1], taus[2]
    n_out = d_in.shape[1]
    batch = in_offsets.size - 1
    n_samples = v_out.shape[1]
    trace = v_out.shape[0] > 0
    peak = peak_v.shape[0] > 0
    for c in prange(n_chunks):
        v = np.empty(n_out)
        cur = np.empty(n_out)
        tl = np.empty(n_out)
        key = np.empty(max_in)
        stream = np.empty(max_in, dtype=np.int64)
        pos = np.empty(max_in, dtype=np.int64)
        for b in range(c, batch, n_chunks):
            lo, hi = in_offsets[b], in_offsets[b + 1]
            v[:] = 0.0
            cur[:] = 0.0
            tl[:] = 0.0
            if peak:
                peak_v[b, :] = 0.0
                peak_t[b, :] = 0.0
                peak_kind[b, :] = PEAK_START
                peak_a[b, :] = -1
                peak_m[b, :] = -1
                peak_aux[b, :] = 0.0
            nh = _push_streams(in_times, in_units, lo, hi, d_in, duration, key, stream, pos, 0, 0)
            n = 0
            while True:
                t_sample = n * sample_dt if (trace and n < n_samples) else np.inf
                t_arr = key[0] if nh > 0 else np.inf
                if t_sample <= t_arr:
                    if t_sample == np.inf:
                        break
                    for j in range(n_out):  # read V without moving the state (kinks stay at
                        vj, _ = flow(v[j], cur[j], t_sample - tl[j], tau_m[j], tau_s[j],
                                     dl[j])  # arrivals)
                        v_out[b, n, j] = vj
                    n += 1
                    continue
                a = stream[0]
                m = pos[0]
                k = lo + a
                u = in_units[k]
                j = tgt_in[u, m]
                nh = _advance_stream(key, stream, pos, nh, in_times[k], d_in, u, a, m, duration)
                h = t_arr - tl[j]
                if peak:
                    val, s, kind = interval_max(v[j], cur[j], h, tau_m[j], tau_s[j], dl[j])
                    if kind == MAX_INTERIOR:
                        i_peak = cur[j] * math.exp(-s / tau_s[j])
                        _record_peak(j, val, tl[j] + s, PEAK_SMOOTH, -1, -1, i_peak,
                                     peak_v[b], peak_t[b], peak_kind[b], peak_a[b], peak_m[b],
                                     peak_aux[b])  # fmt: skip
                v[j], cur[j] = flow(v[j], cur[j], h, tau_m[j], tau_s[j], dl[j])
                tl[j] = t_arr
                if peak and kind == MAX_END:
                    _record_peak(j, val, t_arr, PEAK_ARRIVAL, a, m, cur[j] - v[j],
                                 peak_v[b], peak_t[b], peak_kind[b], peak_a[b], peak_m[b],
                                 peak_aux[b])  # fmt: skip
                cur[j] += w_in[u, m]
            if peak:
                for j in range(n_out):
                    val, s, kind = interval_max(v[j], cur[j], duration - tl[j], tau_m[j],
                                                tau_s[j], dl[j])  # fmt: skip
                    if kind == MAX_INTERIOR:
                        i_peak = cur[j] * math.exp(-s / tau_s[j])
                        _record_peak(j, val, tl[j] + s, PEAK_SMOOTH, -1, -1, i_peak,
                                     peak_v[b], peak_t[b], peak_kind[b], peak_a[b], peak_m[b],
                                     peak_aux[b])  # fmt: skip
                    elif kind == MAX_END:
                        _record_peak(j, val, duration, PEAK_END, -1, -1, 0.0,
                                     peak_v[b], peak_t[b], peak_kind[b], peak_a[b], peak_m[b],
                                     peak_aux[b])  # fmt: skip

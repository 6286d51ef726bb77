"""Numba CPU kernels of the time-stepped engine (forward and EventProp backward).

Layout shared with the CUDA kernels:

* parameters are passed transposed, ``[n_in, n_out]`` and flat, so that the inner loop over
  postsynaptic neurons is contiguous; delays as int32 numbers of steps;
* input spikes as (step, unit) arrays with per-sample offsets;
* arrivals that land at or after the last step have no effect: they are redirected (without a
  branch) to one extra row past the end, so per-worker buffers hold ``(n_steps + 1) x n_out``
  values whatever the maximum delay;
* ``consts`` is ``GridConstants.packed``: [alpha, beta, c_vi, c_adj, threshold, tau_syn,
  tau_mem, vdot_min, tau_mem / dt, ref_steps, max_spikes, beta_a, c_va, c_adj_a, tau_adapt].

What happens at each event (a step of the state or of the adjoint, the slope at a crossing, the
adjoint jump at a spike, the gradients an arrival carries, a readout's drive) is written once in
``kernels.formulas`` and shared with the CUDA kernels, the torch reference and the exact engine.

Within a step n the order of events is: propagate the state from step n-1, test the threshold
(spike and reset), then add the arrivals of step n (including recurrent spikes of step n with
zero delay).  The backward pass visits the same events in reverse; it stores, per step and
neuron, (lambda_I, lambda_V - lambda_I) just after the arrivals of that step, and every
synapse reads them at its arrival step.

Refractory period and spike limit (LIF; ``ref_steps`` > 0 or ``max_spikes`` > 0, values in
``consts``, so no extra compiled variant): after a spike at step n, V is held at 0 at steps
n + 1 .. n + ref_steps (no threshold test; I keeps decaying and integrating arrivals) and leaves
0 at the end of step n + ref_steps with the current I_e it has then, which the forward pass
stores per spike (``out_iref``; NaN where the period does not end before the last step).  The
max_spikes-th spike of a neuron holds V at 0 for the rest of the trial.  The adjoint of the
hold: at the last held step the backward pass adds ``formulas.refractory_end_read`` (lambda_V
I_e) to dL/dt of the spike and sets lambda_V to 0, which the held steps keep (alpha 0 = 0).
Without either option the time loop takes the original path (one loop-invariant branch per
step).

Adaptation (``b``, the jump of the adaptation current A at a spike of each neuron, V units,
[n_out]; empty: none, so again no extra compiled variant): the state is (V, I, A)
(``formulas.adapted_state_step``), the slope at a crossing and the current with which V leaves
a refractory hold are taken with the drive I - A, and a spike of neuron j adds b_j to A (A
keeps decaying while V is held).  Backward, lambda_A runs along (``formulas.
adapted_adjoint_step``); at a spike of j, G becomes ``formulas.adapted_spike_gradient`` of
lambda_V, lambda_A just after it before the jump of lambda_V, and dL/db_j gains
``formulas.adaptation_read``.  Without adaptation the kernels branch on a loop-invariant flag
and compute exactly what they computed before.

Gradients of tau_mem and tau_syn (``dtau_part`` not empty; docs/methods.md "Gradients of tau_mem
and tau_syn"): the backward pass also carries each neuron's auxiliary adjoints (m_V, m_I, M) one
step back with ``formulas.tau_adjoint_step`` (lambda at the later end of the step, before it is
propagated), stores (m_I, M) per step and neuron next to the adjoint, and every arrival adds
``formulas.tau_arrival_read`` of them to its target's dL/dtau_mem, dL/dtau_syn; m_V is zeroed
where lambda_V is (a spike, a refractory end).  Without them the kernels branch on a
loop-invariant flag and compute exactly what they computed before.

Samples run in parallel in a fixed number of chunks (``n_chunks``); each chunk owns its buffers
and gradient accumulators, which are summed at the end in chunk order (results depend neither
on scheduling nor on the number of threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._util import REDUCTION_CHUNKS, n_chunks  # defined there; kept here for the host drivers
from ._grid_math import TAU_STEP
from .formulas import (
    adaptation_read,
    adapted_adjoint_step,
    adapted_spike_gradient,
    adapted_state_step,
    add_rn,
    adjoint_jump,
    adjoint_step,
    arrival_read,
    crossing_slope,
    readout_drive,
    refractory_end_read,
    spike_hold,
    state_step,
    tau_adjoint_step,
    tau_arrival_read,
)

__all__ = [
    "lif_forward",
    "lif_backward",
    "li_forward",
    "li_backward",
    "n_chunks",
    "REDUCTION_CHUNKS",
]


# ----------------------------------------------------------------------------- shared pieces
# Index arithmetic in the hot loops is unsigned (uint64): with signed indices Numba adds a
# negative-index wrap-around test to every access (measured 1.3x slower on scatter and gather).
# Arrival steps are clamped with min() to the spare row n_steps instead of skipped with a
# branch: at large max delay about half the arrivals fall past the end, the branch becomes
# unpredictable and the scatter ran 2x slower at max delay 1024 than at 64 (1.3x with min()).


@njit(cache=True, inline="always")
def _scatter_row(buf, s, row, w, d, nu, n_steps_u):
    """buf[min(s + d[row + j], n_steps), j] += w[row + j]  (row n_steps is the spare row)."""
    for j in range(nu):
        a = min(s + np.uint64(d[row + j]), n_steps_u)
        buf[a * nu + j] += w[row + j]


@njit(cache=True, inline="always")
def _arrival(s, d, row, j, nu, n_steps_u):
    """Index of the pair stored for target j at the arrival step min(s + d[row + j], n_steps)
    in a per-step buffer of pairs (``lam``, ``aux``)."""
    p = min(s + np.uint64(d[row + j]), n_steps_u) * nu + j
    return p + p


@njit(cache=True, inline="always")
def _gather_row(lam, s, row, w, d, nu, n_steps_u, tau_syn, dw, dd):
    """Adjoint read at the arrivals s + d[row + j] of one presynaptic spike
    (``formulas.arrival_read``).

    dw[row + j] -= tau_syn lambda_I;  dd[row + j] += (lambda_V - lambda_I) (times w later);
    returns dL/dt of the spike = sum_j w (lambda_V - lambda_I).  Arrivals past the end read
    the spare row n_steps of ``lam``, which holds zeros.
    """
    one = np.uint64(1)
    acc = w[0] - w[0]  # zero of the weights' float type (w[0] * 0 would be float64)
    for j in range(nu):
        p = _arrival(s, d, row, j, nu, n_steps_u)
        g_w, g_t = arrival_read(w[row + j], lam[p], lam[p + one], tau_syn)
        dw[row + j] += g_w
        dd[row + j] += lam[p + one]
        acc += g_t
    return acc


@njit(cache=True, inline="always")
def _gather_tau_row(aux, s, row, w, d, nu, n_steps_u, tau_syn, dtau):
    """Time-constant read at the arrivals of one presynaptic spike (``formulas.
    tau_arrival_read`` of the stored (m_I, M), ``aux`` laid out as ``lam``): dtau[j] +=
    dL/dtau_mem, dtau[n_out + j] += dL/dtau_syn of target j."""
    one = np.uint64(1)
    for j in range(nu):
        p = _arrival(s, d, row, j, nu, n_steps_u)
        g_tm, g_ts = tau_arrival_read(w[row + j], aux[p], aux[p + one], tau_syn)
        dtau[j] += g_tm
        dtau[nu + j] += g_ts


@njit(cache=True, inline="always")
def _scatter_inputs(in_steps, in_units, lo, hi, w, d, nu, n_steps_u, buf):
    for k in range(lo, hi):
        s = np.uint64(in_steps[k])
        if s < n_steps_u:
            _scatter_row(buf, s, np.uint64(in_units[k]) * nu, w, d, nu, n_steps_u)


@njit(cache=True, inline="always")
def _gather_inputs(in_steps, in_units, lo, hi, w, d, nu, n_steps_u, lam, tau_syn, dw, dd, grad_in,
                   aux, dtau):  # fmt: skip
    """The reads of every input arrival of one sample; the time-constant reads too where
    ``dtau`` is not empty."""
    taus = dtau.size > 0
    for k in range(lo, hi):
        s = np.uint64(in_steps[k])
        if s < n_steps_u:
            row = np.uint64(in_units[k]) * nu
            grad_in[k] = _gather_row(lam, s, row, w, d, nu, n_steps_u, tau_syn, dw, dd)
            if taus:
                _gather_tau_row(aux, s, row, w, d, nu, n_steps_u, tau_syn, dtau)
        else:
            grad_in[k] = 0


@njit(cache=True, inline="always")
def _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj):
    """Transposed one-step propagator: lambda at step n -> lambda at step n - 1."""
    for j in range(lam_v.size):
        lam_v[j], lam_i[j] = adjoint_step(lam_v[j], lam_i[j], alpha, beta, c_adj)


@njit(cache=True, inline="always")
def _propagate_adapted_adjoint(lam_v, lam_i, lam_a, alpha, beta, beta_a, c_adj, c_adj_a):
    """``_propagate_adjoint`` with the adaptation current's adjoint lambda_A."""
    for j in range(lam_v.size):
        lam_v[j], lam_i[j], lam_a[j] = adapted_adjoint_step(
            lam_v[j], lam_i[j], lam_a[j], alpha, beta, beta_a, c_adj, c_adj_a
        )


@njit(cache=True, inline="always")
def _tau_coefficients(consts):
    """The coefficients of ``formulas.tau_adjoint_step``: eight packed constants from
    ``TAU_STEP`` on."""
    t = TAU_STEP
    return (consts[t], consts[t + 1], consts[t + 2], consts[t + 3], consts[t + 4],
            consts[t + 5], consts[t + 6], consts[t + 7])  # fmt: skip


@njit(cache=True, inline="always")
def _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, k):
    """(m_V, m_I, M) from step n to n - 1 (``formulas.tau_adjoint_step``, coefficients ``k``),
    with lambda at step n: called before ``_propagate_adjoint``."""
    for j in range(lam_v.size):
        m_v[j], m_i[j], m_s[j] = tau_adjoint_step(lam_v[j], lam_i[j], m_v[j], m_i[j], m_s[j], k)


@njit(cache=True, inline="always")
def _record_adjoint(lam_v, lam_i, lam, n):
    """Store (lambda_I, lambda_V - lambda_I) of every neuron at step n, side by side."""
    base = 2 * n * lam_v.size
    for j in range(lam_v.size):
        lam[base + 2 * j] = lam_i[j]
        lam[base + 2 * j + 1] = lam_v[j] - lam_i[j]


@njit(cache=True, inline="always")
def _record_tau(m_i, m_s, aux, n):
    """Store (m_I, M) of every neuron at step n, side by side (as ``_record_adjoint``)."""
    base = 2 * n * m_i.size
    for j in range(m_i.size):
        aux[base + 2 * j] = m_i[j]
        aux[base + 2 * j + 1] = m_s[j]


# ----------------------------------------------------------------------------- LIF forward
@njit(cache=True, inline="always")
def _emit(out_steps, out_units, out_vdot, slot, count, cap, n, j, vdot):
    """Write spike number ``count`` (step n, unit j, slope ``vdot``) of a sample to its slots
    if there is room."""
    if count < cap:
        out_steps[slot + count] = n
        out_units[slot + count] = j
        out_vdot[slot + count] = vdot


@njit(cache=True, inline="always")
def _drive(cur, adapt, j, adaptive):
    """What drives V of neuron j: I, or I - A with adaptation."""
    if adaptive:
        return add_rn(cur[j], -adapt[j])
    return cur[j]


@njit(cache=True, inline="always")
def _advance(v, cur, adapt, j, prop, adaptive):
    """Neuron j one step later without events: I (and A) updated in place; returns V (not
    stored: the caller tests the threshold first) and the drive I - A (I without adaptation).
    ``prop`` = (alpha, beta, c_vi, beta_a, c_va)."""
    alpha, beta, c_vi, beta_a, c_va = prop
    if adaptive:
        vj, cur[j], adapt[j] = adapted_state_step(v[j], cur[j], adapt[j], alpha, beta, beta_a,
                                                  c_vi, c_va)  # fmt: skip
    else:
        vj, cur[j] = state_step(v[j], cur[j], alpha, beta, c_vi)
    return vj, _drive(cur, adapt, j, adaptive)


@njit(cache=True, inline="always")
def _step_free(v, cur, adapt, b, adaptive, n, prop, threshold, secant, spiking,
               out_steps, out_units, out_vdot, slot, count, cap):  # fmt: skip
    """Step n of every neuron without refractory period or spike limit; returns the sample's
    spike count and the number of neurons that spiked (listed in ``spiking``).  With
    ``adaptive``, ``adapt`` holds A and a spike of j adds ``b[j]`` to it."""
    n_spiking = 0
    for j in range(v.size):
        vj, drive = _advance(v, cur, adapt, j, prop, adaptive)
        if vj >= threshold:
            _emit(out_steps, out_units, out_vdot, slot, count, cap, n, j,
                  crossing_slope(vj, v[j], drive, secant))  # fmt: skip
            if adaptive:
                adapt[j] = add_rn(adapt[j], b[j])
            count += 1
            spiking[n_spiking] = j
            n_spiking += 1
            v[j] = 0.0
        else:
            v[j] = vj
    return count, n_spiking


@njit(cache=True, inline="always")
def _step_held(v, cur, adapt, b, adaptive, n, prop, threshold, secant, spiking,
               out_steps, out_units, out_vdot, slot, count, cap,
               ref_steps, max_spikes, n_steps, free_at, n_spk, pending, out_iref):  # fmt: skip
    """``_step_free`` with refractory periods and a spike limit (cpu module docstring):
    ``free_at[j]`` is the first step at which neuron j is free again, ``n_spk[j]`` its spikes
    so far, ``pending[j]`` the number of its spike whose period ends at ``free_at[j]`` (-1:
    none); the drive (I, or I - A) at that end goes to ``out_iref``."""
    n_spiking = 0
    for j in range(v.size):
        if n < free_at[j]:  # held: V stays 0, I (and A) evolve
            _advance(v, cur, adapt, j, prop, adaptive)
            continue
        if pending[j] >= 0:  # first free step after a period: V leaves 0 with this drive
            if pending[j] < cap:
                out_iref[slot + pending[j]] = _drive(cur, adapt, j, adaptive)
            pending[j] = -1
        vj, drive = _advance(v, cur, adapt, j, prop, adaptive)
        if vj >= threshold:
            _emit(out_steps, out_units, out_vdot, slot, count, cap, n, j,
                  crossing_slope(vj, v[j], drive, secant))  # fmt: skip
            if adaptive:
                adapt[j] = add_rn(adapt[j], b[j])
            if ref_steps > 0 and count < cap:  # no period end (yet); out_iref is empty else
                out_iref[slot + count] = np.nan
            n_spk[j] += 1
            free_at[j], period = spike_hold(n, n_spk[j], ref_steps, max_spikes, n_steps)
            if period:
                pending[j] = count
            count += 1
            spiking[n_spiking] = j
            n_spiking += 1
            v[j] = 0.0
        else:
            v[j] = vj
    return count, n_spiking


@njit(cache=True, parallel=True)
def lif_forward(
    in_steps, in_units, in_offsets, w, d, w_rec, d_rec, b, n_out, n_steps, consts,
    sample_ids, cap, out_steps, out_units, out_vdot, out_iref, out_counts, n_chunks,
):  # fmt: skip
    """Simulate a LIF layer for the samples ``sample_ids``.

    Sample ``sample_ids[r]`` writes its spikes (step, unit, tau_mem dV/dt at the crossing) to
    slots ``r*cap : r*cap + cap`` of the out arrays, in order of (step, unit), and its
    total spike count to ``out_counts[r]`` (which may exceed ``cap``: the caller then re-runs
    that sample with more room).  ``w_rec``/``d_rec`` are empty for a feed-forward layer;
    ``b`` [n_out] (V units) is each neuron's adaptation jump, empty without adaptation.
    With a refractory period (``consts[9]`` steps > 0) ``out_iref`` receives, in the same
    slots, the drive (I, or I - A with adaptation) at the end of the period after each spike
    (NaN if it does not end before the last step); otherwise it may be empty and is not
    written.

    The slope at the crossing is ``formulas.crossing_slope``, max(I - V, (tau_mem / dt)
    (V_n - V_{n-1})), V before the reset: the crossing lies somewhere in the step, and when the
    grid point is past the voltage peak I - V is tiny or negative; dividing the adjoint jump by
    it made gradients explode by ~1e4 per layer (1e11 in the first layer of a 700-256-256-20
    network at dt = 1 ms, overflow at dt = 10 ms).  The secant over the step is positive and
    both converge as dt -> 0.
    """
    threshold, secant = consts[4], consts[8]
    prop = (consts[0], consts[1], consts[2], consts[11], consts[12])  # alpha beta c_vi beta_a c_va
    ref_steps, max_spikes = np.int64(consts[9]), np.int64(consts[10])
    held = ref_steps > 0 or max_spikes > 0
    adaptive = b.size > 0
    recurrent = w_rec.size > 0
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    n_run = sample_ids.size
    spare = n_steps * n_out
    for c in prange(n_chunks):
        buf = np.zeros((n_steps + 1) * n_out, dtype=w.dtype)
        v = np.empty(n_out, dtype=w.dtype)
        cur = np.empty(n_out, dtype=w.dtype)
        adapt = np.zeros(b.size, dtype=w.dtype)
        spiking = np.empty(n_out, dtype=np.uint64)
        free_at = np.zeros(n_out, dtype=np.int64)
        n_spk = np.zeros(n_out, dtype=np.int64)
        pending = np.full(n_out, -1, dtype=np.int64)
        for r in range(c, n_run, n_chunks):
            smp = sample_ids[r]
            _scatter_inputs(
                in_steps, in_units, in_offsets[smp], in_offsets[smp + 1], w, d, nu, n_steps_u, buf
            )
            v[:] = 0.0
            cur[:] = 0.0
            adapt[:] = 0.0
            if held:
                free_at[:] = 0
                n_spk[:] = 0
                pending[:] = -1
            count = 0
            slot = r * cap
            for n in range(n_steps):
                if held:
                    count, n_spiking = _step_held(
                        v, cur, adapt, b, adaptive, n, prop, threshold, secant, spiking,
                        out_steps, out_units, out_vdot, slot, count, cap,
                        ref_steps, max_spikes, n_steps, free_at, n_spk, pending, out_iref,
                    )  # fmt: skip
                else:
                    count, n_spiking = _step_free(
                        v, cur, adapt, b, adaptive, n, prop, threshold, secant, spiking,
                        out_steps, out_units, out_vdot, slot, count, cap,
                    )  # fmt: skip
                if recurrent:
                    n_u = np.uint64(n)
                    for q in range(n_spiking):
                        _scatter_row(buf, n_u, spiking[q] * nu, w_rec, d_rec, nu, n_steps_u)
                base = n * n_out
                for j in range(n_out):
                    cur[j] = add_rn(cur[j], buf[base + j])
                    buf[base + j] = 0.0
            buf[spare:] = 0.0
            out_counts[r] = count


# ----------------------------------------------------------------------------- LIF backward
@njit(cache=True, parallel=True)
def lif_backward(
    in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot, out_iref,
    grad_out, kick, w, d, w_rec, d_rec, b, n_out, n_steps, consts, n_chunks,
    grad_in, dw_part, dd_part, dw_rec_part, dd_rec_part, db_part, dtau_part,
):  # fmt: skip
    """EventProp backward of a LIF layer for the whole batch.

    ``grad_out[k]`` is dL/dt of output spike k (from the layers downstream and the loss);
    ``kick[j]`` is subtracted from lambda_V of neuron j at each of its spikes (spike-count
    regularisation; zeros to disable).  Writes ``grad_in`` (dL/dt of every input spike) and
    per-worker partial sums ``dw_part``/``dd_part`` ``[n_chunks, n_in*n_out]`` (``dd`` before
    multiplication by w) and their recurrent counterparts.  With a refractory period
    (``consts[9]`` steps > 0) ``out_iref`` is the forward pass's drive at the end of each
    spike's period (NaN: none before the last step); otherwise it may be empty.  With
    adaptation (``b`` [n_out], V units; empty: none) ``db_part`` ``[n_chunks, n_out]``
    receives per-worker partial sums of dL/db (``[n_chunks, 0]`` without).  ``dtau_part``
    ``[n_chunks, 2 * n_out]`` receives per-worker partial sums of dL/dtau_mem (first n_out) and
    dL/dtau_syn (last n_out) per neuron (ms^-1 x loss), or is ``[n_chunks, 0]`` when the time
    constants need no gradient (not with adaptation).
    """
    alpha, beta, c_adj, threshold = consts[0], consts[1], consts[3], consts[4]
    tau_syn, vdot_min = consts[5], consts[7]
    ref_steps = np.int64(consts[9])
    beta_a, c_adj_a, tau_adapt = consts[11], consts[13], consts[14]
    k_tau = _tau_coefficients(consts)
    adaptive = b.size > 0
    recurrent = w_rec.size > 0
    taus = dtau_part.shape[1] > 0
    n_aux = n_out if taus else 0
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = in_offsets.size - 1
    for c in prange(n_chunks):
        lam = np.zeros(2 * (n_steps + 1) * n_out, dtype=w.dtype)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        lam_a = np.zeros(b.size, dtype=w.dtype)
        aux = np.zeros(2 * (n_steps + 1) * n_aux, dtype=w.dtype)  # (m_I, M) per step
        m_v = np.zeros(n_aux, dtype=w.dtype)
        m_i = np.zeros(n_aux, dtype=w.dtype)
        m_s = np.zeros(n_aux, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        dw_rec, dd_rec = dw_rec_part[c], dd_rec_part[c]
        db = db_part[c]
        dtau = dtau_part[c]
        g_end = np.zeros(n_out, dtype=w.dtype)  # refractory_end_read of j's next spike back
        for s in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            lam_a[:] = 0.0
            m_v[:] = 0.0
            m_i[:] = 0.0
            m_s[:] = 0.0
            k = out_offsets[s + 1] - 1
            k_lo = out_offsets[s]
            q = k  # next spike whose refractory period ends, latest first
            for n in range(n_steps - 1, -1, -1):
                if ref_steps > 0:
                    # periods that end at step n (they are in spike order): lambda_V I_e goes
                    # to the spike, lambda_V is 0 over the held steps before
                    while q >= k_lo and (np.isnan(out_iref[q]) or out_steps[q] + ref_steps >= n):
                        if not np.isnan(out_iref[q]):
                            j = out_units[q]
                            g_end[j] = refractory_end_read(lam_v[j], out_iref[q])
                            lam_v[j] = 0.0
                            if taus:
                                m_v[j] = 0.0
                        q -= 1
                _record_adjoint(lam_v, lam_i, lam, n)
                if taus:
                    _record_tau(m_i, m_s, aux, n)
                while k >= k_lo and out_steps[k] == n:
                    j = out_units[k]
                    g = grad_out[k]
                    if ref_steps > 0:
                        g += g_end[j]
                        g_end[j] = 0.0
                    if recurrent:
                        row = np.uint64(j) * nu
                        g += _gather_row(lam, np.uint64(n), row, w_rec, d_rec, nu, n_steps_u,
                                         tau_syn, dw_rec, dd_rec)  # fmt: skip
                        if taus:
                            _gather_tau_row(aux, np.uint64(n), row, w_rec, d_rec, nu, n_steps_u,
                                            tau_syn, dtau)  # fmt: skip
                    if adaptive:  # lambda_V, lambda_A just after the spike
                        g = adapted_spike_gradient(g, b[j], lam_v[j], lam_a[j])
                        db[j] += adaptation_read(lam_a[j], tau_adapt)
                    lam_v[j] = adjoint_jump(lam_v[j], g, out_vdot[k], threshold, vdot_min, kick[j])
                    if taus:
                        m_v[j] = 0.0
                    k -= 1
                if n > 0:
                    if taus:
                        _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, k_tau)
                    if adaptive:
                        _propagate_adapted_adjoint(lam_v, lam_i, lam_a, alpha, beta, beta_a, c_adj,
                                                   c_adj_a)  # fmt: skip
                    else:
                        _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj)
            _gather_inputs(
                in_steps, in_units, in_offsets[s], in_offsets[s + 1], w, d, nu, n_steps_u,
                lam, tau_syn, dw, dd, grad_in, aux, dtau,
            )  # fmt: skip


# ----------------------------------------------------------------------------- LI readout
@njit(cache=True, parallel=True)
def li_forward(in_steps, in_units, in_offsets, w, d, n_out, n_steps, consts, n_chunks, v_out):
    """Leaky-integrator readout: ``v_out[b, n, j]`` = membrane voltage at t = n dt."""
    alpha, beta, c_vi = consts[0], consts[1], consts[2]
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = in_offsets.size - 1
    spare = n_steps * n_out
    for c in prange(n_chunks):
        buf = np.zeros((n_steps + 1) * n_out, dtype=w.dtype)
        v = np.empty(n_out, dtype=w.dtype)
        cur = np.empty(n_out, dtype=w.dtype)
        for b in range(c, batch, n_chunks):
            _scatter_inputs(
                in_steps, in_units, in_offsets[b], in_offsets[b + 1], w, d, nu, n_steps_u, buf
            )
            v[:] = 0.0
            cur[:] = 0.0
            for n in range(n_steps):
                base = n * n_out
                for j in range(n_out):
                    vj, decayed = state_step(v[j], cur[j], alpha, beta, c_vi)
                    cur[j] = add_rn(decayed, buf[base + j])
                    buf[base + j] = 0.0
                    v[j] = vj
                    v_out[b, n, j] = vj
            buf[spare:] = 0.0


@njit(cache=True, parallel=True)
def li_backward(
    in_steps, in_units, in_offsets, grad_v, w, d, n_out, n_steps, consts, n_chunks,
    grad_in, dw_part, dd_part, dtau_part,
):  # fmt: skip
    """Adjoint of the LI readout driven by ``grad_v[b, n, j]`` = dL/dV(t = n dt); outputs as in
    ``lif_backward`` (``dtau_part`` [n_chunks, 2 * n_out] or [n_chunks, 0])."""
    alpha, beta, c_adj = consts[0], consts[1], consts[3]
    tau_syn, tau_mem = consts[5], consts[6]
    k_tau = _tau_coefficients(consts)
    taus = dtau_part.shape[1] > 0
    n_aux = n_out if taus else 0
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = in_offsets.size - 1
    for c in prange(n_chunks):
        lam = np.zeros(2 * (n_steps + 1) * n_out, dtype=w.dtype)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        aux = np.zeros(2 * (n_steps + 1) * n_aux, dtype=w.dtype)  # (m_I, M) per step
        m_v = np.zeros(n_aux, dtype=w.dtype)
        m_i = np.zeros(n_aux, dtype=w.dtype)
        m_s = np.zeros(n_aux, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        dtau = dtau_part[c]
        for b in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            m_v[:] = 0.0
            m_i[:] = 0.0
            m_s[:] = 0.0
            for n in range(n_steps - 1, -1, -1):
                _record_adjoint(lam_v, lam_i, lam, n)
                if taus:
                    _record_tau(m_i, m_s, aux, n)
                for j in range(n_out):
                    lam_v[j] = readout_drive(lam_v[j], grad_v[b, n, j], tau_mem)
                if n > 0:
                    if taus:
                        _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, k_tau)
                    _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj)
            _gather_inputs(
                in_steps, in_units, in_offsets[b], in_offsets[b + 1], w, d, nu, n_steps_u,
                lam, tau_syn, dw, dd, grad_in, aux, dtau,
            )  # fmt: skip

"""Numba CPU kernels of the time-stepped engine (forward and EventProp backward).

Layout shared with the CUDA kernels:

* parameters are passed transposed, ``[n_in, n_out]`` and flat, so that the inner loop over
  postsynaptic neurons is contiguous; delays as int32 numbers of steps;
* input spikes as (step, unit) arrays with per-sample offsets;
* arrivals that land at or after the last step have no effect: they are redirected (without a
  branch) to one extra row past the end, so per-worker buffers hold ``(n_steps + 1) x n_out``
  values whatever the maximum delay;
* ``consts`` is ``GridConstants.packed``: [alpha, beta, c_vi, c_adj, threshold, tau_syn,
  tau_mem, vdot_min, tau_mem / dt].

What happens at each event (a step of the state or of the adjoint, the slope at a crossing, the
adjoint jump at a spike, the gradients an arrival carries, a readout's drive) is written once in
``kernels.formulas`` and shared with the CUDA kernels, the torch reference and the exact engine.

Within a step n the order of events is: propagate the state from step n-1, test the threshold
(spike and reset), then add the arrivals of step n (including recurrent spikes of step n with
zero delay).  The backward pass visits the same events in reverse; it stores, per step and
neuron, (lambda_I, lambda_V - lambda_I) just after the arrivals of that step, and every
synapse reads them at its arrival step.

Samples run in parallel in a fixed number of chunks (``n_chunks``); each chunk owns its buffers
and gradient accumulators, which are summed at the end in chunk order (results depend neither
on scheduling nor on the number of threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._util import REDUCTION_CHUNKS, n_chunks  # defined there; kept here for the host drivers
from .formulas import (
    add_rn,
    adjoint_jump,
    adjoint_step,
    arrival_read,
    crossing_slope,
    readout_drive,
    state_step,
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
        p = min(s + np.uint64(d[row + j]), n_steps_u) * nu + j
        p = p + p
        g_w, g_t = arrival_read(w[row + j], lam[p], lam[p + one], tau_syn)
        dw[row + j] += g_w
        dd[row + j] += lam[p + one]
        acc += g_t
    return acc


@njit(cache=True, inline="always")
def _scatter_inputs(in_steps, in_units, lo, hi, w, d, nu, n_steps_u, buf):
    for k in range(lo, hi):
        s = np.uint64(in_steps[k])
        if s < n_steps_u:
            _scatter_row(buf, s, np.uint64(in_units[k]) * nu, w, d, nu, n_steps_u)


@njit(cache=True, inline="always")
def _gather_inputs(in_steps, in_units, lo, hi, w, d, nu, n_steps_u, lam, tau_syn, dw, dd, grad_in):
    for k in range(lo, hi):
        s = np.uint64(in_steps[k])
        if s < n_steps_u:
            row = np.uint64(in_units[k]) * nu
            grad_in[k] = _gather_row(lam, s, row, w, d, nu, n_steps_u, tau_syn, dw, dd)
        else:
            grad_in[k] = 0


@njit(cache=True, inline="always")
def _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj):
    """Transposed one-step propagator: lambda at step n -> lambda at step n - 1."""
    for j in range(lam_v.size):
        lam_v[j], lam_i[j] = adjoint_step(lam_v[j], lam_i[j], alpha, beta, c_adj)


@njit(cache=True, inline="always")
def _record_adjoint(lam_v, lam_i, lam, n):
    """Store (lambda_I, lambda_V - lambda_I) of every neuron at step n, side by side."""
    base = 2 * n * lam_v.size
    for j in range(lam_v.size):
        lam[base + 2 * j] = lam_i[j]
        lam[base + 2 * j + 1] = lam_v[j] - lam_i[j]


# ----------------------------------------------------------------------------- LIF forward
@njit(cache=True, parallel=True)
def lif_forward(
    in_steps, in_units, in_offsets, w, d, w_rec, d_rec, n_out, n_steps, consts,
    sample_ids, cap, out_steps, out_units, out_vdot, out_counts, n_chunks,
):  # fmt: skip
    """Simulate a LIF layer for the samples ``sample_ids``.

    Sample ``sample_ids[r]`` writes its spikes (step, unit, tau_mem dV/dt at the crossing) to
    slots ``r*cap : r*cap + cap`` of the out arrays, in order of (step, unit), and its
    total spike count to ``out_counts[r]`` (which may exceed ``cap``: the caller then re-runs
    that sample with more room).  ``w_rec``/``d_rec`` are empty for a feed-forward layer.

    The slope at the crossing is ``formulas.crossing_slope``, max(I - V, (tau_mem / dt)
    (V_n - V_{n-1})), V before the reset: the crossing lies somewhere in the step, and when the
    grid point is past the voltage peak I - V is tiny or negative; dividing the adjoint jump by
    it made gradients explode by ~1e4 per layer (1e11 in the first layer of a 700-256-256-20
    network at dt = 1 ms, overflow at dt = 10 ms).  The secant over the step is positive and
    both converge as dt -> 0.
    """
    alpha, beta, c_vi, threshold, secant = consts[0], consts[1], consts[2], consts[4], consts[8]
    recurrent = w_rec.size > 0
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    n_run = sample_ids.size
    spare = n_steps * n_out
    for c in prange(n_chunks):
        buf = np.zeros((n_steps + 1) * n_out, dtype=w.dtype)
        v = np.empty(n_out, dtype=w.dtype)
        cur = np.empty(n_out, dtype=w.dtype)
        spiking = np.empty(n_out, dtype=np.uint64)
        for r in range(c, n_run, n_chunks):
            b = sample_ids[r]
            _scatter_inputs(
                in_steps, in_units, in_offsets[b], in_offsets[b + 1], w, d, nu, n_steps_u, buf
            )
            v[:] = 0.0
            cur[:] = 0.0
            count = 0
            slot = r * cap
            for n in range(n_steps):
                n_spiking = 0
                for j in range(n_out):
                    vj, cur[j] = state_step(v[j], cur[j], alpha, beta, c_vi)
                    if vj >= threshold:
                        if count < cap:
                            out_steps[slot + count] = n
                            out_units[slot + count] = j
                            out_vdot[slot + count] = crossing_slope(vj, v[j], cur[j], secant)
                        count += 1
                        spiking[n_spiking] = j
                        n_spiking += 1
                        v[j] = 0.0
                    else:
                        v[j] = vj
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
    in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot, grad_out,
    kick, w, d, w_rec, d_rec, n_out, n_steps, consts, n_chunks,
    grad_in, dw_part, dd_part, dw_rec_part, dd_rec_part,
):  # fmt: skip
    """EventProp backward of a LIF layer for the whole batch.

    ``grad_out[k]`` is dL/dt of output spike k (from the layers downstream and the loss);
    ``kick[j]`` is subtracted from lambda_V of neuron j at each of its spikes (spike-count
    regularisation; zeros to disable).  Writes ``grad_in`` (dL/dt of every input spike) and
    per-worker partial sums ``dw_part``/``dd_part`` ``[n_chunks, n_in*n_out]`` (``dd`` before
    multiplication by w) and their recurrent counterparts.
    """
    alpha, beta, c_adj, threshold = consts[0], consts[1], consts[3], consts[4]
    tau_syn, vdot_min = consts[5], consts[7]
    recurrent = w_rec.size > 0
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = in_offsets.size - 1
    for c in prange(n_chunks):
        lam = np.zeros(2 * (n_steps + 1) * n_out, dtype=w.dtype)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        dw_rec, dd_rec = dw_rec_part[c], dd_rec_part[c]
        for b in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            k = out_offsets[b + 1] - 1
            k_lo = out_offsets[b]
            for n in range(n_steps - 1, -1, -1):
                _record_adjoint(lam_v, lam_i, lam, n)
                while k >= k_lo and out_steps[k] == n:
                    j = out_units[k]
                    g = grad_out[k]
                    if recurrent:
                        row = np.uint64(j) * nu
                        g += _gather_row(lam, np.uint64(n), row, w_rec, d_rec, nu, n_steps_u,
                                         tau_syn, dw_rec, dd_rec)  # fmt: skip
                    lam_v[j] = adjoint_jump(lam_v[j], g, out_vdot[k], threshold, vdot_min, kick[j])
                    k -= 1
                if n > 0:
                    _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj)
            _gather_inputs(
                in_steps, in_units, in_offsets[b], in_offsets[b + 1], w, d, nu, n_steps_u,
                lam, tau_syn, dw, dd, grad_in,
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
    grad_in, dw_part, dd_part,
):  # fmt: skip
    """Adjoint of the LI readout driven by ``grad_v[b, n, j]`` = dL/dV(t = n dt)."""
    alpha, beta, c_adj = consts[0], consts[1], consts[3]
    tau_syn, tau_mem = consts[5], consts[6]
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = in_offsets.size - 1
    for c in prange(n_chunks):
        lam = np.zeros(2 * (n_steps + 1) * n_out, dtype=w.dtype)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        for b in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            for n in range(n_steps - 1, -1, -1):
                _record_adjoint(lam_v, lam_i, lam, n)
                for j in range(n_out):
                    lam_v[j] = readout_drive(lam_v[j], grad_v[b, n, j], tau_mem)
                if n > 0:
                    _propagate_adjoint(lam_v, lam_i, alpha, beta, c_adj)
            _gather_inputs(
                in_steps, in_units, in_offsets[b], in_offsets[b + 1], w, d, nu, n_steps_u,
                lam, tau_syn, dw, dd, grad_in,
            )  # fmt: skip

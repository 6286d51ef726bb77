"""numba-cuda kernels of the time-stepped engine (forward and EventProp backward).

Same events in the same order as the CPU kernels (``kernels/cpu.py``): within step n, propagate
the state from step n - 1, test the threshold (spike, reset), then add the arrivals of step n
(including recurrent spikes of step n with zero delay).  The backward pass stores, per step and
neuron, (lambda_I, lambda_V - lambda_I) just after the arrivals of that step; every synapse reads
them at its arrival step.

Work decomposition (one launch per layer call, the whole time loop inside the kernel):

* one thread block per sample at a time (blocks loop over samples when the batch is larger than
  the grid); thread t of a block of B threads owns neurons j = t, t + B, t + 2B, ... (at most
  ``MAX_PER_THREAD``), whose state stays in per-thread local arrays;
* arriving input is kept in a ring buffer of ``ring_len = max_delay + 1`` rows x n_out per block
  (global memory): a spike of step s with delay d adds its weight to row (s + d) mod ring_len,
  which is read and cleared at step s + d.  Arrivals at or after the last step are skipped (as
  the CPU kernels send them to a spare row), so every row written is read, and the ring is zero
  again at the end of a sample;
* the backward ring keeps (lambda_I, lambda_V - lambda_I) of the last ring_len steps side by side
  per (row, neuron); an input spike of step s is handled when the backward loop reaches s, by
  which time steps s .. s + max_delay are stored (arrivals past the last step read nothing);
* every thread reads and writes only its own neurons' columns of the rings and of the weight
  gradients ``[n_in, n_out]`` (one partial matrix per block, summed by the host), so none of this
  needs synchronisation;
* what does: the spikes of a step (written in (step, unit) order, and scattered through
  recurrent synapses in unit order), kept as a bitmask in shared memory (three buffers, one
  barrier per step); and sums over neurons (dL/dt of an input spike, the recurrent part of G_k),
  done in shared memory as per-thread partials -> sums over groups of ``group`` threads -> one
  sum, in a fixed order (results do not depend on scheduling).  Input-spike sums are batched
  ``chunk_in`` at a time, so they cost two barriers per chunk, not per spike.  (No warp
  shuffles or ballots: numba-cuda's simulator, which checks these kernels where there is no
  GPU, has none.)

Index arithmetic in the scatter/gather loops is unsigned (uint64), as on the CPU: Numba would
otherwise add a negative-index test to every access, and uint64 mixed with a signed integer
becomes float64 in Numba's typing, so every constant there is cast explicitly.

``consts`` is ``GridConstants.packed``: [alpha, beta, c_vi, c_adj, threshold, tau_syn,
tau_mem, vdot_min, tau_mem / dt, ref_steps, max_spikes, beta_a, c_va, c_adj_a, tau_adapt,
*tau_step].

Refractory period and spike limit as in the CPU kernels (``ref_steps`` > 0 or ``max_spikes``
> 0; ``kernels/cpu.py``, "Refractory period and spike limit"): each thread keeps, in local
arrays, its neurons' first free step, spike count and the slot of the spike whose period is
running (``formulas.spike_hold`` after each spike); a held neuron skips the threshold test while
I (and A) evolve, and at its first free step the drive goes to that spike's ``out_iref`` slot.
Backward, every thread walks the spikes whose periods end at step n (before the adjoint of the
step is stored) and, for its own neurons, keeps ``formulas.refractory_end_read`` for the spike's
jump and sets lambda_V (and m_V) to 0.  Without either option a uniform, loop-invariant flag
read from ``consts`` skips all of it (no extra compiled variant).

Adaptation as in the CPU kernels: ``b`` [n_out] (V units; empty: none) is each neuron's jump of
its adaptation current A at a spike; the state is (V, I, A), the adjoint (lambda_V, lambda_I,
lambda_A), and each thread adds dL/db of its own neurons to its block's partial ``db_part``
(no synchronisation).  Without adaptation a uniform, loop-invariant flag selects the original
arithmetic.

Gradients of tau_mem and tau_syn as in the CPU kernels (``dtau_part`` not empty): each thread
carries (m_V, m_I, M) of its neurons (``formulas.tau_adjoint_step``, before the adjoint's own
step), a second ring ``aux`` keeps (m_I, M) of the last ring_len steps beside ``lam``, every
arrival adds ``formulas.tau_arrival_read`` to its target's sums in the block's partial
``dtau_part`` [gridDim, 2 * n_out] (the thread owns the target: no synchronisation), and m_V is
zeroed at a spike.  Without them a uniform, loop-invariant flag skips all of it.

The event formulas (state and adjoint steps, slope at a crossing, adjoint jump, arrival read,
readout drive) are the ``@njit`` functions of ``kernels.formulas``, which numba-cuda compiles as
device functions when these kernels call them; the two roundings they must not fuse get their
libdevice implementations here.
"""

from __future__ import annotations

import numpy as np
from numba import cuda
from numba.cuda import libdevice, types
from numba.cuda.extending import overload

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
    mul_add_rn,
    readout_drive,
    refractory_end_read,
    spike_hold,
    state_step,
    tau_adjoint_step,
    tau_arrival_read,
)

__all__ = [
    "MAX_PER_THREAD",
    "MAX_WORDS",
    "lif_forward",
    "lif_backward",
    "li_forward",
    "li_backward",
]

#: Most neurons one thread owns (size of the per-thread state arrays).
MAX_PER_THREAD = 8
#: Words of the per-step spike bitmask: layers of at most 32 * MAX_WORDS neurons.
MAX_WORDS = 128

_U0 = np.uint64(0)
_U1 = np.uint64(1)


# ----------------------------------------------------------------------------- rounding
# The GPU compiler fuses a * b + c into one FMA (one rounding instead of two) unless told not
# to; the CPU kernels round every operation.  The membrane update goes through these helpers
# (``formulas.state_step``, ``formulas.crossing_slope``) so that a feed-forward layer's float32
# spikes are the CPU's bit for bit (a fused update can move a voltage that sits within one
# rounding of the threshold across it).  Under the simulator the plain Python of
# ``kernels.formulas`` runs, which rounds every operation as well.


@overload(mul_add_rn)
def _mul_add_rn_cuda(a, b, c, d):
    if a == types.float32:
        mul, add = libdevice.fmul_rn, libdevice.fadd_rn
    else:
        mul, add = libdevice.dmul_rn, libdevice.dadd_rn
    return lambda a, b, c, d: add(mul(a, b), mul(c, d))


@overload(add_rn)
def _add_rn_cuda(a, b):
    add = libdevice.fadd_rn if a == types.float32 else libdevice.dadd_rn
    return lambda a, b: add(a, b)


# ----------------------------------------------------------------------------- shared pieces
@cuda.jit(device=True, cache=True)
def _ring_slot(n_mod, delay, ring_len):
    """(n_mod + delay) mod ring_len for n_mod, delay < ring_len, without an integer division."""
    a = n_mod + delay
    return a - ring_len if a >= ring_len else a


@cuda.jit(device=True, cache=True)
def _scatter_row(ring, n_mod, left, row, w, d, t, bdim, nu, ring_len):
    """ring[(n_mod + d[row + j]) mod ring_len, j] += w[row + j] for this thread's neurons j
    whose arrival lies before the last step (d[row + j] < left = n_steps - n)."""
    for j in range(t, nu, bdim):
        delay = np.uint64(d[row + j])
        if delay < left:
            ring[_ring_slot(n_mod, delay, ring_len) * nu + j] += w[row + j]


@cuda.jit(device=True, cache=True)
def _gather_row(lam, n_mod, left, row, w, d, t, bdim, nu, ring_len, tau_syn, dw, dd):
    """Adjoint read at the arrivals of one presynaptic spike, this thread's neurons j
    (``formulas.arrival_read``).

    dw[row + j] -= tau_syn lambda_I;  dd[row + j] += (lambda_V - lambda_I) (times w later);
    returns this thread's part of dL/dt of the spike, sum_j w (lambda_V - lambda_I).
    Arrivals at or after the last step (d[row + j] >= left = n_steps - n) contribute nothing.
    """
    acc = w.dtype.type(0)
    for j in range(t, nu, bdim):
        delay = np.uint64(d[row + j])
        if delay < left:
            p = _ring_slot(n_mod, delay, ring_len) * nu + j
            p = p + p
            g_w, g_t = arrival_read(w[row + j], lam[p], lam[p + _U1], tau_syn)
            dw[row + j] += g_w
            dd[row + j] += lam[p + _U1]
            acc += g_t
    return acc


@cuda.jit(device=True, cache=True)
def _gather_tau_row(aux, n_mod, left, row, w, d, t, bdim, nu, ring_len, tau_syn, dtau):
    """Time-constant read at the arrivals of one presynaptic spike, this thread's neurons j
    (``formulas.tau_arrival_read`` of (m_I, M) in ring ``aux``): dtau[j] += dL/dtau_mem,
    dtau[n_out + j] += dL/dtau_syn; arrivals at or after the last step contribute nothing."""
    for j in range(t, nu, bdim):
        delay = np.uint64(d[row + j])
        if delay < left:
            p = _ring_slot(n_mod, delay, ring_len) * nu + j
            p = p + p
            g_tm, g_ts = tau_arrival_read(w[row + j], aux[p], aux[p + _U1], tau_syn)
            dtau[j] += g_tm
            dtau[nu + j] += g_ts


@cuda.jit(device=True, cache=True)
def _scatter_step_inputs(
    in_steps, in_units, k, k_hi, n, left, ring, n_mod, w, d, t, bdim, nu, ring_len
):  # fmt: skip
    """Scatter the input spikes of step n (from entry k on); returns the next entry."""
    while k < k_hi and in_steps[k] <= n:
        row = np.uint64(in_units[k]) * nu
        _scatter_row(ring, n_mod, left, row, w, d, t, bdim, nu, ring_len)
        k += 1
    return k


@cuda.jit(device=True, cache=True)
def _record_adjoint(lam, n_mod, lam_v, lam_i, t, bdim, nu):
    """Store (lambda_I, lambda_V - lambda_I) of this thread's neurons in ring row n_mod."""
    m = 0
    for j in range(t, nu, bdim):
        p = n_mod * nu + j
        p = p + p
        lam[p] = lam_i[m]
        lam[p + _U1] = lam_v[m] - lam_i[m]
        m += 1


@cuda.jit(device=True, cache=True)
def _record_tau(aux, n_mod, m_i, m_s, t, bdim, nu):
    """Store (m_I, M) of this thread's neurons in ring row n_mod of ``aux``."""
    m = 0
    for j in range(t, nu, bdim):
        p = n_mod * nu + j
        p = p + p
        aux[p] = m_i[m]
        aux[p + _U1] = m_s[m]
        m += 1


@cuda.jit(device=True, cache=True)
def _apply_jump(lam_v, lam_a, m_v, taus, j, g, vdot, threshold, vdot_min, kick, b, tau_adapt,
                db, ref, g_end):  # fmt: skip
    """Adjoint jump at a spike of neuron j (``formulas.adjoint_jump``), if this thread owns j;
    with a refractory period (``ref``) G first gains what the end of the spike's period added
    (``g_end``, then 0); with adaptation (``b`` not empty) G is then
    ``formulas.adapted_spike_gradient`` of lambda_V, lambda_A just after the spike and dL/db_j
    gains ``formulas.adaptation_read``; with ``taus`` m_V of j is zeroed."""
    if j % cuda.blockDim.x == cuda.threadIdx.x:
        m = j // cuda.blockDim.x
        if ref:
            g += g_end[m]
            g_end[m] = 0
        if b.size > 0:
            g = adapted_spike_gradient(g, b[j], lam_v[m], lam_a[m])
            db[j] += adaptation_read(lam_a[m], tau_adapt)
        lam_v[m] = adjoint_jump(lam_v[m], g, vdot, threshold, vdot_min, kick[j])
        if taus:
            m_v[m] = 0


@cuda.jit(device=True, cache=True)
def _refractory_ends(q, q_lo, n, ref_steps, out_steps, out_units, out_iref, lam_v, m_v, taus,
                     g_end):  # fmt: skip
    """Refractory periods that end at step n (spikes q, q - 1, ... down to q_lo, latest first,
    as in ``kernels.cpu.lif_backward``): for this thread's neurons ``g_end`` gets
    ``formulas.refractory_end_read`` of lambda_V and the drive ``out_iref`` there, and
    lambda_V (and m_V with ``taus``) becomes 0 over the held steps before.  Every thread walks
    the same spikes; returns the next one."""
    while q >= q_lo and (np.isnan(out_iref[q]) or out_steps[q] + ref_steps >= n):
        j = out_units[q]
        if not np.isnan(out_iref[q]) and j % cuda.blockDim.x == cuda.threadIdx.x:
            m = j // cuda.blockDim.x
            g_end[m] = refractory_end_read(lam_v[m], out_iref[q])
            lam_v[m] = 0
            if taus:
                m_v[m] = 0
        q -= 1
    return q


@cuda.jit(device=True, cache=True)
def _propagate_adjoint(lam_v, lam_i, n_mine, alpha, beta, c_adj):
    """Transposed one-step propagator: lambda at step n -> lambda at step n - 1."""
    for m in range(n_mine):
        lam_v[m], lam_i[m] = adjoint_step(lam_v[m], lam_i[m], alpha, beta, c_adj)


@cuda.jit(device=True, cache=True)
def _tau_coefficients(consts):
    """The coefficients of ``formulas.tau_adjoint_step``: eight packed constants from
    ``TAU_STEP`` on."""
    t = TAU_STEP
    return (consts[t], consts[t + 1], consts[t + 2], consts[t + 3], consts[t + 4],
            consts[t + 5], consts[t + 6], consts[t + 7])  # fmt: skip


@cuda.jit(device=True, cache=True)
def _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, n_mine, k):
    """(m_V, m_I, M) from step n to n - 1 (``formulas.tau_adjoint_step``), with lambda at step
    n: called before ``_propagate_adjoint``."""
    for m in range(n_mine):
        m_v[m], m_i[m], m_s[m] = tau_adjoint_step(lam_v[m], lam_i[m], m_v[m], m_i[m], m_s[m], k)


@cuda.jit(device=True, cache=True)
def _propagate_adapted_adjoint(lam_v, lam_i, lam_a, n_mine, alpha, beta, beta_a, c_adj, c_adj_a):
    """``_propagate_adjoint`` with the adaptation current's adjoint lambda_A."""
    for m in range(n_mine):
        lam_v[m], lam_i[m], lam_a[m] = adapted_adjoint_step(
            lam_v[m], lam_i[m], lam_a[m], alpha, beta, beta_a, c_adj, c_adj_a
        )


# ----------------------------------------------------------------------------- block sums
# Shared memory ``part`` (dynamic, the kernel's float type) holds ``n_slots`` rows of per-thread
# partial sums, thread t at column t + t // group (one pad per group keeps the group sums free of
# bank conflicts), followed by n_slots rows of n_groups group sums.


@cuda.jit(device=True, cache=True)
def _part_index(slot, t, stride, group):
    return slot * stride + t + t // group


@cuda.jit(device=True, cache=True)
def _sum_groups(part, first, count, stride, group, n_groups, sums_base):
    """Sum the partials of slots first .. first + count - 1 over each group of threads.

    Starts and ends with a barrier: afterwards every thread may read the group sums
    (``_slot_total``) and write new partials.
    """
    cuda.syncthreads()
    bdim = cuda.blockDim.x
    for task in range(cuda.threadIdx.x, count * n_groups, bdim):
        c = task // n_groups
        g = task - c * n_groups
        base = (first + c) * stride + g
        lo = g * group
        hi = min(lo + group, bdim)
        acc = part[base + lo]
        for u in range(lo + 1, hi):
            acc += part[base + u]
        part[sums_base + (first + c) * n_groups + g] = acc
    cuda.syncthreads()


@cuda.jit(device=True, cache=True)
def _slot_total(part, slot, n_groups, sums_base):
    """The block sum of one slot, from its group sums (after ``_sum_groups``)."""
    base = sums_base + slot * n_groups
    acc = part[base]
    for g in range(1, n_groups):
        acc += part[base + g]
    return acc


@cuda.jit(device=True, cache=True)
def _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in):
    """dL/dt of the pending input spikes top, top - 1, ..., top - pending + 1."""
    _sum_groups(part, 0, pending, stride, group, n_groups, sums_base)
    for c in range(cuda.threadIdx.x, pending, cuda.blockDim.x):
        grad_in[top - c] = _slot_total(part, c, n_groups, sums_base)


@cuda.jit(device=True, cache=True)
def _gather_step_inputs(
    in_steps, in_units, k, k_lo, n, left, top, pending, chunk, lam, n_mod, w, d, t, bdim, nu,
    ring_len, tau_syn, dw, dd, part, stride, group, n_groups, sums_base, grad_in, aux, dtau,
):  # fmt: skip
    """Gather for the input spikes of step n (entries k, k - 1, ... down to k_lo), with the
    time-constant reads where ``dtau`` is not empty.

    Their partial sums wait in ``part`` until ``chunk`` are pending; returns (k, top, pending).
    """
    ti = cuda.threadIdx.x
    while k >= k_lo and in_steps[k] >= n:
        row = np.uint64(in_units[k]) * nu
        acc = _gather_row(lam, n_mod, left, row, w, d, t, bdim, nu, ring_len, tau_syn, dw, dd)
        if dtau.size > 0:
            _gather_tau_row(aux, n_mod, left, row, w, d, t, bdim, nu, ring_len, tau_syn, dtau)
        part[_part_index(pending, ti, stride, group)] = acc
        pending += 1
        k -= 1
        if pending == chunk:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)
            top = k
            pending = 0
    return k, top, pending


@cuda.jit(device=True, cache=True)
def _skip_late_inputs(in_steps, k, k_lo, n_steps):
    """Entries at or after the last step have no effect (their dL/dt stays 0)."""
    while k >= k_lo and in_steps[k] >= n_steps:
        k -= 1
    return k


# ----------------------------------------------------------------------------- spike bitmask
@cuda.jit(device=True, cache=True)
def _spikes_before(spikes, buf, j):
    """Number of neurons < j that spiked (bits set below bit j of bitmask buffer buf)."""
    word = j >> 5
    count = 0
    for i in range(word):
        count += cuda.popc(np.int64(spikes[buf, i]))
    bit = j & 31
    if bit:
        count += cuda.popc(np.int64(spikes[buf, word]) & ((np.int64(1) << bit) - 1))
    return count


# ----------------------------------------------------------------------------- LIF forward
@cuda.jit(device=True, cache=True)
def _drive(cur, adapt, m, adaptive):
    """What drives V of this thread's m-th neuron: I, or I - A with adaptation."""
    if adaptive:
        return add_rn(cur[m], -adapt[m])
    return cur[m]


@cuda.jit(device=True, cache=True)
def _advance(v, cur, adapt, m, alpha, beta, c_vi, beta_a, c_va, adaptive):
    """This thread's m-th neuron one step later without events: I (and A) updated in place;
    returns V (the caller tests the threshold first) and the drive I - A (I without
    adaptation)."""
    if adaptive:
        vm, cur[m], adapt[m] = adapted_state_step(v[m], cur[m], adapt[m], alpha, beta, beta_a,
                                                  c_vi, c_va)  # fmt: skip
    else:
        vm, cur[m] = state_step(v[m], cur[m], alpha, beta, c_vi)
    return vm, _drive(cur, adapt, m, adaptive)


@cuda.jit(device=True, cache=True)
def _start_hold(m, e, n, first, cap, ref_steps, max_spikes, n_steps, free_at, n_spk, pending,
                out_iref):  # fmt: skip
    """After spike number ``e`` of the sample (slot ``first + e``), at step n, of this thread's
    m-th neuron: its hold (``formulas.spike_hold``) and, with a refractory period, NaN in
    ``out_iref`` until the period's end writes the drive there."""
    if ref_steps > 0 and e < cap:
        out_iref[first + e] = np.nan
    n_spk[m] += 1
    free_at[m], period = spike_hold(n, n_spk[m], ref_steps, max_spikes, n_steps)
    if period:
        pending[m] = e


@cuda.jit(cache=True)
def lif_forward(
    in_steps, in_units, in_offsets, w, d, w_rec, d_rec, b, n_out, n_steps, ring_len, consts,
    sample_ids, cap, out_steps, out_units, out_vdot, out_iref, out_counts, ring,
):  # fmt: skip
    """Simulate a LIF layer for the samples ``sample_ids`` (block-strided).

    Sample ``sample_ids[r]`` writes its spikes (step, unit, tau_mem dV/dt at the crossing as in
    ``kernels.cpu.lif_forward``, before the
    reset) to entries ``r*cap : r*cap + cap`` of the out arrays in (step, unit) order and its
    spike count to ``out_counts[r]`` (which may exceed ``cap``: the host then runs it again).
    ``ring``: ``gridDim * ring_len * n_out`` zeros (left zero at the end of every sample).
    ``w_rec``/``d_rec`` are empty for a feed-forward layer; ``b`` [n_out] (V units) holds the
    adaptation jumps, empty without adaptation.  With a refractory period (``consts[9]`` steps
    > 0) ``out_iref`` receives in the same slots the drive (I, or I - A) with which V leaves 0
    at the end of the period after each spike (NaN: none before the last step), as in
    ``kernels.cpu.lif_forward``; otherwise it may be empty and is not written.  Each thread
    keeps the hold state of its neurons (first free step, spikes so far, slot of the spike
    whose period is running) in local arrays.
    """
    alpha, beta, c_vi, threshold, secant = consts[0], consts[1], consts[2], consts[4], consts[8]
    beta_a, c_va = consts[11], consts[12]
    ref_steps, max_spikes = np.int64(consts[9]), np.int64(consts[10])
    held = ref_steps > 0 or max_spikes > 0
    adaptive = b.size > 0
    spikes = cuda.shared.array((3, MAX_WORDS), np.uint32)
    v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    cur = cuda.local.array(MAX_PER_THREAD, w.dtype)
    adapt = cuda.local.array(MAX_PER_THREAD, w.dtype)
    vdot = cuda.local.array(MAX_PER_THREAD, w.dtype)
    fired = cuda.local.array(MAX_PER_THREAD, np.uint8)
    free_at = cuda.local.array(MAX_PER_THREAD, np.int64)
    n_spk = cuda.local.array(MAX_PER_THREAD, np.int64)
    pending = cuda.local.array(MAX_PER_THREAD, np.int64)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    n_words = (n_out + 31) // 32
    recurrent = w_rec.size > 0
    size = ring_len * n_out
    ring_b = ring[bi * size : (bi + 1) * size]
    for r in range(bi, sample_ids.size, cuda.gridDim.x):
        smp = sample_ids[r]
        cuda.syncthreads()  # the previous sample is done with the bitmask
        for i in range(ti, 3 * n_words, bd):
            spikes[i // n_words, i % n_words] = 0
        for m in range(n_mine):
            v[m] = 0
            cur[m] = 0
            adapt[m] = 0
            if held:
                free_at[m] = 0
                n_spk[m] = 0
                pending[m] = -1
        cuda.syncthreads()
        k, k_hi = in_offsets[smp], in_offsets[smp + 1]
        count = 0
        first = r * cap
        n_mod = _U0
        for n in range(n_steps):
            left = np.uint64(n_steps - n)
            k = _scatter_step_inputs(
                in_steps, in_units, k, k_hi, n, left, ring_b, n_mod, w, d, t, bdim, nu, rl
            )
            buf = n % 3
            for m in range(n_mine):
                j = ti + m * bd
                if held:
                    if n < free_at[m]:  # held: V stays 0, I (and A) evolve
                        _advance(v, cur, adapt, m, alpha, beta, c_vi, beta_a, c_va, adaptive)
                        fired[m] = 0
                        continue
                    if pending[m] >= 0:  # first free step after a period: V leaves 0
                        if pending[m] < cap:
                            out_iref[first + pending[m]] = _drive(cur, adapt, m, adaptive)
                        pending[m] = -1
                vj, drive = _advance(v, cur, adapt, m, alpha, beta, c_vi, beta_a, c_va, adaptive)
                fired[m] = vj >= threshold
                if fired[m]:
                    cuda.atomic.or_(spikes, (buf, j >> 5), np.uint32(1 << (j & 31)))
                    vdot[m] = crossing_slope(vj, v[m], drive, secant)
                    if adaptive:
                        adapt[m] = add_rn(adapt[m], b[j])
                    v[m] = 0
                else:
                    v[m] = vj
            cuda.syncthreads()
            # step n + 2 reuses the buffer of step n - 1, whose readers passed the barrier
            for i in range(ti, n_words, bd):
                spikes[(n + 2) % 3, i] = 0
            for m in range(n_mine):
                if fired[m]:
                    j = ti + m * bd
                    e = count + _spikes_before(spikes, buf, j)
                    if e < cap:
                        out_steps[first + e] = n
                        out_units[first + e] = j
                        out_vdot[first + e] = vdot[m]
                    if held:
                        _start_hold(m, e, n, first, cap, ref_steps, max_spikes, n_steps, free_at,
                                    n_spk, pending, out_iref)  # fmt: skip
            for i in range(n_words):
                word = np.int64(spikes[buf, i])
                count += cuda.popc(word)
                while recurrent and word != 0:
                    low = word & -word
                    row = np.uint64(i * 32 + cuda.popc(low - 1)) * nu
                    _scatter_row(ring_b, n_mod, left, row, w_rec, d_rec, t, bdim, nu, rl)
                    word ^= low
            m = 0
            for j in range(t, nu, bdim):
                p = n_mod * nu + j
                cur[m] = add_rn(cur[m], ring_b[p])
                ring_b[p] = 0
                m += 1
            n_mod += _U1
            if n_mod == rl:
                n_mod = _U0
        if ti == 0:
            out_counts[r] = count


# ----------------------------------------------------------------------------- LIF backward
@cuda.jit(cache=True)
def lif_backward(
    in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot, out_iref,
    grad_out, kick, w, d, w_rec, d_rec, b, n_out, n_steps, ring_len, consts, group, chunk_in,
    chunk_rec, grad_in, dw_part, dd_part, dw_rec_part, dd_rec_part, db_part, lam, dtau_part, aux,
):  # fmt: skip
    """EventProp backward of a LIF layer (block-strided over the batch).

    ``grad_out[k]`` is dL/dt of output spike k; ``kick[j]`` is subtracted from lambda_V of
    neuron j at each of its spikes.  Writes ``grad_in`` (zeros on entry) and per-block partial
    sums ``dw_part``/``dd_part`` ``[gridDim, n_in*n_out]`` (zeros on entry; ``dd`` before
    multiplication by w) and their recurrent counterparts.  With a refractory period
    (``consts[9]`` steps > 0) ``out_iref`` is the forward pass's drive at the end of each
    spike's period (NaN: none before the last step); otherwise it may be empty.  With
    adaptation (``b`` [n_out], V units; empty: none) ``db_part`` ``[gridDim, n_out]`` (zeros on
    entry) receives per-block partial sums of dL/db (``[gridDim, 0]`` without).  ``lam``: room
    for ``gridDim * 2 * ring_len * n_out`` values (rows are written before they are read).
    ``dtau_part`` ``[gridDim, 2 * n_out]`` (zeros on entry) receives per-block partial sums of
    dL/dtau_mem (first n_out) and dL/dtau_syn per neuron, ``aux`` then has the room of
    ``lam``; both empty (``[gridDim, 0]``, ``[0]``) without time-constant gradients.
    Dynamic shared memory: ``chunk_in + chunk_rec`` slots (see ``_sum_groups``).
    """
    alpha, beta, c_adj, threshold = consts[0], consts[1], consts[3], consts[4]
    tau_syn, vdot_min = consts[5], consts[7]
    ref_steps = np.int64(consts[9])
    beta_a, c_adj_a, tau_adapt = consts[11], consts[13], consts[14]
    k_tau = _tau_coefficients(consts)
    ref = ref_steps > 0
    adaptive = b.size > 0
    taus = dtau_part.shape[1] > 0
    lam_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    lam_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    lam_a = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_s = cuda.local.array(MAX_PER_THREAD, w.dtype)
    g_end = cuda.local.array(MAX_PER_THREAD, w.dtype)  # refractory_end_read of the next spike
    part = cuda.shared.array(0, w.dtype)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    n_groups = (bd + group - 1) // group
    stride = bd + n_groups
    sums_base = (chunk_in + chunk_rec) * stride
    recurrent = w_rec.size > 0
    size = 2 * ring_len * n_out
    lam_b = lam[bi * size : (bi + 1) * size]
    aux_b = aux[bi * size : (bi + 1) * size]  # empty without taus
    dw, dd = dw_part[bi], dd_part[bi]
    dw_rec, dd_rec = dw_rec_part[bi], dd_rec_part[bi]
    db = db_part[bi]
    dtau = dtau_part[bi]
    for s in range(bi, in_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            lam_v[m] = 0
            lam_i[m] = 0
            lam_a[m] = 0
            if ref:
                g_end[m] = 0
            if taus:
                m_v[m] = 0
                m_i[m] = 0
                m_s[m] = 0
        k_lo = in_offsets[s]
        k = _skip_late_inputs(in_steps, in_offsets[s + 1] - 1, k_lo, n_steps)
        top, pending = k, 0
        ko, ko_lo = out_offsets[s + 1] - 1, out_offsets[s]
        q = ko  # next spike whose refractory period ends, latest first
        n_mod = np.uint64((n_steps - 1) % ring_len)
        for n in range(n_steps - 1, -1, -1):
            left = np.uint64(n_steps - n)
            if ref:
                q = _refractory_ends(q, ko_lo, n, ref_steps, out_steps, out_units, out_iref,
                                     lam_v, m_v, taus, g_end)  # fmt: skip
            _record_adjoint(lam_b, n_mod, lam_v, lam_i, t, bdim, nu)
            if taus:
                _record_tau(aux_b, n_mod, m_i, m_s, t, bdim, nu)
            k, top, pending = _gather_step_inputs(
                in_steps, in_units, k, k_lo, n, left, top, pending, chunk_in, lam_b, n_mod, w,
                d, t, bdim, nu, rl, tau_syn, dw, dd, part, stride, group, n_groups, sums_base,
                grad_in, aux_b, dtau,
            )  # fmt: skip
            if recurrent:
                while ko >= ko_lo and out_steps[ko] >= n:
                    # up to chunk_rec spikes of step n: G_k through the recurrent synapses
                    top_out = ko
                    c = 0
                    while c < chunk_rec and ko >= ko_lo and out_steps[ko] >= n:
                        row = np.uint64(out_units[ko]) * nu
                        acc = _gather_row(
                            lam_b, n_mod, left, row, w_rec, d_rec, t, bdim, nu, rl, tau_syn,
                            dw_rec, dd_rec,
                        )  # fmt: skip
                        if taus:
                            _gather_tau_row(aux_b, n_mod, left, row, w_rec, d_rec, t, bdim, nu,
                                            rl, tau_syn, dtau)  # fmt: skip
                        part[_part_index(chunk_in + c, ti, stride, group)] = acc
                        c += 1
                        ko -= 1
                    _sum_groups(part, chunk_in, c, stride, group, n_groups, sums_base)
                    for e in range(c):
                        g = _slot_total(part, chunk_in + e, n_groups, sums_base)
                        _apply_jump(
                            lam_v, lam_a, m_v, taus, out_units[top_out - e],
                            grad_out[top_out - e] + g, out_vdot[top_out - e], threshold,
                            vdot_min, kick, b, tau_adapt, db, ref, g_end,
                        )  # fmt: skip
            else:
                while ko >= ko_lo and out_steps[ko] >= n:
                    _apply_jump(
                        lam_v, lam_a, m_v, taus, out_units[ko], grad_out[ko], out_vdot[ko],
                        threshold, vdot_min, kick, b, tau_adapt, db, ref, g_end,
                    )  # fmt: skip
                    ko -= 1
            if n > 0 and taus:
                _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, n_mine, k_tau)
            if n > 0 and adaptive:
                _propagate_adapted_adjoint(lam_v, lam_i, lam_a, n_mine, alpha, beta, beta_a,
                                           c_adj, c_adj_a)  # fmt: skip
            elif n > 0:
                _propagate_adjoint(lam_v, lam_i, n_mine, alpha, beta, c_adj)
            n_mod = n_mod - _U1 if n_mod > _U0 else rl - _U1
        if pending > 0:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)


# ----------------------------------------------------------------------------- LI readout
@cuda.jit(cache=True)
def li_forward(in_steps, in_units, in_offsets, w, d, n_out, n_steps, ring_len, consts, v_out, ring):
    """Leaky-integrator readout: ``v_out[(b * n_steps + n) * n_out + j]`` = V at t = n dt.

    ``ring`` as in ``lif_forward``."""
    alpha, beta, c_vi = consts[0], consts[1], consts[2]
    v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    cur = cuda.local.array(MAX_PER_THREAD, w.dtype)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    size = ring_len * n_out
    ring_b = ring[bi * size : (bi + 1) * size]
    for b in range(bi, in_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            v[m] = 0
            cur[m] = 0
        k, k_hi = in_offsets[b], in_offsets[b + 1]
        n_mod = _U0
        for n in range(n_steps):
            left = np.uint64(n_steps - n)
            k = _scatter_step_inputs(
                in_steps, in_units, k, k_hi, n, left, ring_b, n_mod, w, d, t, bdim, nu, rl
            )
            base = np.uint64((b * n_steps + n) * n_out)
            m = 0
            for j in range(t, nu, bdim):
                p = n_mod * nu + j
                vj, decayed = state_step(v[m], cur[m], alpha, beta, c_vi)
                cur[m] = add_rn(decayed, ring_b[p])
                ring_b[p] = 0
                v[m] = vj
                v_out[base + j] = vj
                m += 1
            n_mod += _U1
            if n_mod == rl:
                n_mod = _U0


@cuda.jit(cache=True)
def li_backward(
    in_steps, in_units, in_offsets, grad_v, w, d, n_out, n_steps, ring_len, consts, group,
    chunk_in, grad_in, dw_part, dd_part, lam, dtau_part, aux,
):  # fmt: skip
    """Adjoint of the LI readout driven by ``grad_v[(b * n_steps + n) * n_out + j]`` =
    dL/dV(t = n dt); outputs and buffers as in ``lif_backward``."""
    alpha, beta, c_adj = consts[0], consts[1], consts[3]
    tau_syn, tau_mem = consts[5], consts[6]
    k_tau = _tau_coefficients(consts)
    taus = dtau_part.shape[1] > 0
    lam_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    lam_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    m_s = cuda.local.array(MAX_PER_THREAD, w.dtype)
    part = cuda.shared.array(0, w.dtype)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    n_groups = (bd + group - 1) // group
    stride = bd + n_groups
    sums_base = chunk_in * stride
    size = 2 * ring_len * n_out
    lam_b = lam[bi * size : (bi + 1) * size]
    aux_b = aux[bi * size : (bi + 1) * size]  # empty without taus
    dw, dd = dw_part[bi], dd_part[bi]
    dtau = dtau_part[bi]
    for b in range(bi, in_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            lam_v[m] = 0
            lam_i[m] = 0
            if taus:
                m_v[m] = 0
                m_i[m] = 0
                m_s[m] = 0
        k_lo = in_offsets[b]
        k = _skip_late_inputs(in_steps, in_offsets[b + 1] - 1, k_lo, n_steps)
        top, pending = k, 0
        n_mod = np.uint64((n_steps - 1) % ring_len)
        for n in range(n_steps - 1, -1, -1):
            left = np.uint64(n_steps - n)
            _record_adjoint(lam_b, n_mod, lam_v, lam_i, t, bdim, nu)
            if taus:
                _record_tau(aux_b, n_mod, m_i, m_s, t, bdim, nu)
            k, top, pending = _gather_step_inputs(
                in_steps, in_units, k, k_lo, n, left, top, pending, chunk_in, lam_b, n_mod, w,
                d, t, bdim, nu, rl, tau_syn, dw, dd, part, stride, group, n_groups, sums_base,
                grad_in, aux_b, dtau,
            )  # fmt: skip
            base = (b * n_steps + n) * n_out
            m = 0
            for j in range(ti, n_out, bd):
                lam_v[m] = readout_drive(lam_v[m], grad_v[base + j], tau_mem)
                m += 1
            if n > 0 and taus:
                _propagate_tau(lam_v, lam_i, m_v, m_i, m_s, n_mine, k_tau)
            if n > 0:
                _propagate_adjoint(lam_v, lam_i, n_mine, alpha, beta, c_adj)
            n_mod = n_mod - _U1 if n_mod > _U0 else rl - _U1
        if pending > 0:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)

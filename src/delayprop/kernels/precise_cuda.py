"""numba-cuda kernels of the precise mode of the time-stepped engine (``precise=True``).

The algorithm is that of the CPU kernels (``kernels.precise_cpu``, whose docstring derives it):
arrivals superposed at their exact offsets through three sums per (step, neuron), rigorous
bounds that pick the steps which may hold a threshold crossing, those steps integrated event by
event with the closed-form flow and the exact engine's root finder (several spikes per step),
and the continuous adjoint arranged by steps, read at every arrival through (P, Q, R).  The
scalar pieces are the same Python functions as on the CPU, compiled for the GPU: numba-cuda
compiles a CPU-jitted (``@njit``) function as a device function when a kernel calls it
(``lif_flow``'s flow, adjoint flow and root finder, ``_superpose``, ``_may_cross``,
``_advance``, ``_spike_jump``, ...); the two helpers that write arrays a kernel received
(``_record_step``, ``_sort_step_spikes``) are compiled from their Python source with
``cuda.jit(device=True)``, because under numba-cuda's simulator a kernel's arrays are not
numpy arrays and a CPU-compiled function could not take them.  ``_mul_add`` and ``_add``
round every operation here (no fused multiply-add), as on the CPU.

Work decomposition, as in the grid kernels (``kernels/cuda.py``):

* one thread block per sample at a time (blocks loop over samples when the grid is smaller
  than the batch); thread t of B owns neurons t, t + B, ... (at most ``MAX_PER_THREAD``), whose
  state stays in per-thread local arrays; the whole time loop runs inside the kernel;
* synapses in the natural layout ``[n_in * n_out]`` (a warp reads a presynaptic row
  contiguously); an arrival lands one step later when its delay remainder g >= dt - f (f the
  spike's offset), decided per synapse, with the same test as the CPU kernels;
* a ring of ``ring_len = max whole delay steps + 2`` rows per block (global memory) holds the
  three step sums (A_s^+, A_m, A_s^-) and the head of the arrival list of every
  (step, neuron); sources of step n are scattered when the loop reaches n; arrivals at or after
  the last step are skipped, so the ring is clear again at the end of every sample.  ``nxt``
  (one int32 per source of a sample and neuron, per block) links the arrivals of a
  (step, neuron) in source order;
* a step that may hold a crossing walks its list in (offset, list position) order, the order
  the CPU kernels sort it into, choosing the next arrival by a scan of the list (lists are
  short; no per-thread buffer of arrivals);
* the spikes of a step are counted per thread, placed by an exclusive sum over threads in shared
  memory (per-thread counts -> sums over groups of ``group`` threads -> prefix), one barrier for
  a step without spikes and two with; at the end of a sample the block orders each step's
  spikes by (offset, unit), the order of the CPU kernels;
* backward: records (P, Q, R, offset of the last spike) of the last ``ring_len`` steps per
  (row, neuron) in a ring, the index of each neuron's earliest spike of the step likewise; the
  records of spikes (P, Q, R and the link to the neuron's next spike in the same step) are kept
  per output spike for the whole batch.  Input spikes of step n are gathered when the backward
  loop reaches n.  Every thread writes only its own neurons' columns of the weight and delay
  gradient partials (one pair per block, summed by the host); dL/dt of an input spike is a sum
  over neurons, done with the grid kernels' block sums (fixed order).  No float atomics: results
  do not depend on scheduling.  (The count of dropped crossings is summed with an integer
  atomic.)

The in-step integration, the root finding and the adjoint at spikes run in float64 whatever the
kernel's float type, as on the CPU.  ``consts`` is ``_grid_math.precise_constants``.
"""

from __future__ import annotations

import numpy as np
from numba import cuda
from numba.cuda import types

from .cuda import MAX_PER_THREAD, _flush_inputs, _part_index, _ring_slot, _skip_late_inputs
from .formulas import add_rn, readout_drive  # add_rn's CUDA version (no FMA) lives in .cuda
from .lif_flow import adjoint_flow
from .precise_cpu import (
    MAX_SPIKES_PER_STEP,
    _adjoint_at,
    _adjoint_step,
    _advance,
    _may_cross,
    _offset,
    _record_step,
    _sort_step_spikes,
    _spike_jump,
    _spike_mark,
    _superpose,
)

__all__ = ["lif_forward", "lif_backward", "li_forward", "li_backward"]


_record_step_cuda = cuda.jit(device=True)(_record_step.py_func)
_sort_step_spikes_cuda = cuda.jit(device=True)(_sort_step_spikes.py_func)
_spike_mark_cuda = cuda.jit(device=True)(_spike_mark.py_func)

#: per-thread room for the spikes of one step: MAX_SPIKES_PER_STEP for each neuron it owns
_STAGE = MAX_PER_THREAD * MAX_SPIKES_PER_STEP

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)


# ----------------------------------------------------------------------------- forward pieces
@cuda.jit(device=True, cache=True)
def _scatter_step(
    src_step, src_off, src_fs, src_fm, src_unit, k, k_hi, lo, n, left, row_n, rl, wgs, wgm,
    dm, dg, dt, alpha, beta, acc, head, nxt, t, bdim, nu, lists,
):  # fmt: skip
    """Add the arrivals of the sources of step n (entries k on) at this thread's neurons to the
    ring sums ``acc`` [(row, neuron) x 3]: with ``lists`` (a LIF layer) A_s^+ (the part of
    A_s = SUM w e^{s/tau_syn} with w >= 0), A_m = SUM w e^{s/tau_mem} and A_s^- (w < 0), as on
    the CPU, and the arrivals linked into the (row, neuron) lists (``head``, ``nxt``
    [source - lo, neuron]); without, (A_s, A_m, unused).  Returns the next entry."""
    while k < k_hi and src_step[k] <= n:
        row = np.uint64(src_unit[k]) * nu
        limit = dt - src_off[k]
        fs, fm = src_fs[k], src_fm[k]
        fs_late, fm_late = fs * beta, fm * alpha
        p = np.int32(k - lo)
        base = np.uint64(k - lo) * nu
        for j in range(t, nu, bdim):
            syn = row + j
            late = dg[syn] >= limit
            ahead = np.uint64(dm[syn]) + (_U1 if late else _U0)
            if ahead < left:
                q = _ring_slot(row_n, ahead, rl) * nu + j
                x = wgs[syn]
                q_s = q * _U3 + (_U2 if lists and x < 0 else _U0)
                acc[q_s] = add_rn(acc[q_s], (fs_late if late else fs) * x)
                q_m = q * _U3 + _U1
                acc[q_m] = add_rn(acc[q_m], (fm_late if late else fm) * wgm[syn])
                if lists:
                    nxt[base + j] = head[q]
                    head[q] = p
        k += 1
    return k


@cuda.jit(device=True, cache=True)
def _step_sums(acc, q):
    """The three sums of ring entry q (see ``_scatter_step``), which are cleared."""
    q3 = q * _U3
    a_s, a_m, a_pos = acc[q3], acc[q3 + _U1], acc[q3 + _U2]
    acc[q3] = 0
    acc[q3 + _U1] = 0
    acc[q3 + _U2] = 0
    return a_s, a_m, a_pos


@cuda.jit(device=True, cache=True)
def _integrate_listed(
    v, i, p, j, nu, nxt, lo, src_off, src_unit, w, dg, dt, t0, threshold, tm, ts, delta, spk_s,
    spk_vdot, base,
):  # fmt: skip
    """``precise_cpu._integrate_step`` for the arrivals of list ``p`` (neuron j): integrate the
    step from (v, i) (float64) at its start, arrival by arrival in (offset, list position)
    order, resetting V at every crossing.  Spikes go to ``spk_s``/``spk_vdot`` from ``base``.
    Returns (V, I at the step's end, number of spikes, number dropped)."""
    s = 0.0
    n_sp = 0
    dropped = 0
    prev_s, prev_rank = -1.0, -1
    while True:
        best_s, best_rank, best_w = np.inf, -1, 0.0
        q = p
        rank = 0
        while q >= 0:
            syn = np.uint64(src_unit[lo + q]) * nu + j
            s_q = _offset(src_off[lo + q], dg[syn], dt)
            if s_q < best_s and (s_q > prev_s or (s_q == prev_s and rank > prev_rank)):
                best_s, best_rank, best_w = s_q, rank, np.float64(w[syn])
            q = nxt[np.uint64(q) * nu + j]
            rank += 1
        s_next = best_s if best_rank >= 0 else np.float64(dt)
        v, i, n_sp, d = _advance(v, i, s, s_next, t0, threshold, tm, ts, delta, spk_s, spk_vdot,
                                 base, n_sp, MAX_SPIKES_PER_STEP)  # fmt: skip
        dropped += d
        s = s_next
        if best_rank < 0:
            return v, i, n_sp, dropped
        i += best_w
        prev_s, prev_rank = best_s, best_rank


@cuda.jit(device=True, cache=True)
def _write_step(
    counts, parity, c_t, n_sp, n_mine, stage_s, stage_vdot, group, n, count, first, cap,
    out_steps, out_units, out_s, out_vdot,
):  # fmt: skip
    """Write the c_t spikes of step n that this thread staged (``n_sp[m]`` of its m-th neuron)
    after those of the threads before it, from entry ``first + count`` (entries beyond
    ``first + cap`` are dropped); returns count + the block's spikes of the step.

    ``counts`` (shared, int32) holds two buffers (``parity`` = n mod 2) of per-thread counts and
    group sums: a buffer is written again two steps later, after a barrier that every reader of
    it has passed."""
    ti, bd = cuda.threadIdx.x, cuda.blockDim.x
    n_groups = (bd + group - 1) // group
    base = parity * (bd + n_groups)
    sums = base + bd
    counts[base + ti] = c_t
    if not cuda.syncthreads_or(c_t):
        return count
    for g in range(ti, n_groups, bd):
        acc = 0
        for u in range(g * group, min(g * group + group, bd)):
            acc += counts[base + u]
        counts[sums + g] = acc
    cuda.syncthreads()
    mine = ti // group
    before, total = 0, 0
    for g in range(n_groups):
        if g < mine:
            before += counts[sums + g]
        total += counts[sums + g]
    for u in range(mine * group, ti):
        before += counts[base + u]
    e = count + before
    for m in range(n_mine):
        for x in range(n_sp[m]):
            if e < cap:
                src = m * MAX_SPIKES_PER_STEP + x
                out_steps[first + e] = n
                out_units[first + e] = ti + m * bd
                out_s[first + e] = stage_s[src]
                out_vdot[first + e] = stage_vdot[src]
            e += 1
    return count + total


@cuda.jit(device=True, cache=True)
def _sort_steps(out_steps, out_units, out_s, out_vdot, lo, hi):
    """Order the spikes of each step in lo:hi by (offset, unit); the threads take the steps in
    turn (a thread sorts the steps whose first spike falls on its entries)."""
    for e in range(lo + cuda.threadIdx.x, hi, cuda.blockDim.x):
        if e == lo or out_steps[e] != out_steps[e - 1]:
            end = e + 1
            while end < hi and out_steps[end] == out_steps[e]:
                end += 1
            if end - e > 1:
                _sort_step_spikes_cuda(e, end, out_s, out_units, out_vdot)


# ----------------------------------------------------------------------------- LIF forward
@cuda.jit(cache=True)
def lif_forward(
    src_step, src_off, src_fs, src_fm, src_unit, src_offsets, w, wgs, wgm, dm, dg,
    n_out, n_steps, ring_len, consts, group, sample_ids, cap, out_steps, out_units, out_s,
    out_vdot, out_counts, out_dropped, acc, head, nxt,
):  # fmt: skip
    """Simulate a precise LIF layer for the samples ``sample_ids`` (block-strided).

    Sources (input spikes): step (int32), offset in the step (ms), e^{f/tau_syn},
    e^{f/tau_mem}, unit.  Synapses [n_in * n_out]: w, w e^{g/tau_syn}, w e^{g/tau_mem}, whole
    delay steps m (int32), remainder g (ms).  Sample ``sample_ids[r]`` writes
    its spikes (step, unit, offset ms, I - threshold at the crossing) ordered by time to
    entries ``r*cap : r*cap + cap``, its count to ``out_counts[r]`` (which may exceed ``cap``:
    the host runs it again) and adds its crossings beyond ``MAX_SPIKES_PER_STEP`` in one step
    to ``out_dropped[r]`` (zeros on entry).  Per block: ``acc`` 3 x ``ring_len * n_out`` zeros,
    ``head`` ``ring_len * n_out`` values -1 (both left so), ``nxt`` room for the most sources
    of a sample x ``n_out``.  Dynamic shared memory: 2 x (threads + groups) int32.
    """
    alpha, beta, c_vi, threshold = consts[0], consts[1], consts[2], consts[4]
    dt, k_v, kappa_max = consts[8], consts[9], consts[12]
    tm, ts, delta = np.float64(consts[6]), np.float64(consts[5]), np.float64(consts[11])
    dt64, theta64 = np.float64(dt), np.float64(threshold)
    counts = cuda.shared.array(0, types.int32)
    v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    cur = cuda.local.array(MAX_PER_THREAD, w.dtype)
    n_sp = cuda.local.array(MAX_PER_THREAD, np.int64)
    stage_s = cuda.local.array(_STAGE, np.float64)
    stage_vdot = cuda.local.array(_STAGE, np.float64)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    size = ring_len * n_out
    acc_b = acc[bi * 3 * size : (bi + 1) * 3 * size]
    head_b = head[bi * size : (bi + 1) * size]
    per_block = nxt.size // cuda.gridDim.x
    nxt_b = nxt[bi * per_block : (bi + 1) * per_block]
    for r in range(bi, sample_ids.size, cuda.gridDim.x):
        b = sample_ids[r]
        for m in range(n_mine):
            v[m] = 0
            cur[m] = 0
        lo, hi = src_offsets[b], src_offsets[b + 1]
        k = lo
        count, dropped = 0, 0
        first = r * cap
        row_n = _U0
        for n in range(n_steps):
            k = _scatter_step(
                src_step, src_off, src_fs, src_fm, src_unit, k, hi, lo, n,
                np.uint64(n_steps - n), row_n, rl, wgs, wgm, dm, dg, dt, alpha, beta,
                acc_b, head_b, nxt_b, t, bdim, nu, True,
            )  # fmt: skip
            c_t = 0
            for m in range(n_mine):
                j = t + np.uint64(m) * bdim
                q = row_n * nu + j
                a_sp, a_m, a_sn = _step_sums(acc_b, q)
                vj, ij = _superpose(v[m], cur[m], a_sp + a_sn, a_m, alpha, beta, c_vi, k_v)
                n_sp[m] = 0
                if _may_cross(v[m], cur[m], a_sp, a_sn, vj, alpha, beta, c_vi, threshold,
                              kappa_max):  # fmt: skip
                    v64, i64, n_sp[m], d = _integrate_listed(
                        np.float64(v[m]), np.float64(cur[m]), head_b[q], j, nu, nxt_b, lo,
                        src_off, src_unit, w, dg, dt, n * dt64, theta64, tm, ts, delta, stage_s,
                        stage_vdot, m * MAX_SPIKES_PER_STEP,
                    )  # fmt: skip
                    c_t += n_sp[m]
                    dropped += d
                    vj, ij = v64, i64
                v[m] = vj
                cur[m] = ij
                head_b[q] = -1
            count = _write_step(
                counts, n % 2, c_t, n_sp, n_mine, stage_s, stage_vdot, group, n, count, first,
                cap, out_steps, out_units, out_s, out_vdot,
            )  # fmt: skip
            row_n += _U1
            if row_n == rl:
                row_n = _U0
        cuda.syncthreads()  # every spike of the sample written
        _sort_steps(out_steps, out_units, out_s, out_vdot, first, first + min(count, cap))
        if ti == 0:
            out_counts[r] = count
        if dropped > 0:
            cuda.atomic.add(out_dropped, r, dropped)


# ----------------------------------------------------------------------------- backward pieces
@cuda.jit(device=True, cache=True)
def _gather_source(
    k, n, left, row_n, rl, src_off, src_fs, src_fm, src_unit, w, gs, gm, dm, dg, dt, alpha, beta,
    tau_syn, rec, first, spk_rec, nxt_same, t, bdim, nu, dw, dd,
):  # fmt: skip
    """Adjoint read at the arrivals of source k (of step n) at this thread's neurons:
    dw -= tau_syn lambda_I, dd += lambda_V - lambda_I (times w later); returns this thread's
    part of dL/dt of the source, SUM_j w (lambda_V - lambda_I).  An arrival before a spike of
    its step (its factor e^{s/tau_syn} not above the step's spike mark, as in
    ``precise_cpu._gather_sources``) reads the record of the next spike (``first``,
    ``nxt_same``; ``spk_rec`` holds P, Q, R and the mark per spike)."""
    row = np.uint64(src_unit[k]) * nu
    fs, fm = src_fs[k], src_fm[k]
    limit = dt - src_off[k]
    fs_late, fm_late = fs * beta, fm * alpha
    acc = w.dtype.type(0)
    for j in range(t, nu, bdim):
        syn = row + j
        late = dg[syn] >= limit
        ahead = np.uint64(dm[syn]) + (_U1 if late else _U0)
        if ahead < left:
            q = _ring_slot(row_n, ahead, rl) * nu + j
            q4 = q * _U4
            if late:
                e_s, e_m = fs_late * gs[syn], fm_late * gm[syn]
            else:
                e_s, e_m = fs * gs[syn], fm * gm[syn]
            if e_s > rec[q4 + _U3]:
                p, qq, r = rec[q4], rec[q4 + _U1], rec[q4 + _U2]
            else:  # before a spike of its step: the segment that ends at the next spike
                e = first[q]
                while spk_rec[4 * e + 3] < e_s and nxt_same[e] >= 0:
                    e = nxt_same[e]
                p, qq, r = spk_rec[4 * e], spk_rec[4 * e + 1], spk_rec[4 * e + 2]
            lam_i, lam_d = _adjoint_at(p, qq, r, e_s, e_m)
            dw[syn] -= tau_syn * lam_i
            dd[syn] += lam_d
            acc += w[syn] * lam_d
    return acc


@cuda.jit(device=True, cache=True)
def _gather_step(
    src_step, src_off, src_fs, src_fm, src_unit, k, k_lo, n, left, row_n, rl, top, pending,
    chunk, w, gs, gm, dm, dg, dt, alpha, beta, tau_syn, rec, first, spk_rec, nxt_same, t,
    bdim, nu, dw, dd, part, stride, group, n_groups, sums_base, grad_in,
):  # fmt: skip
    """Gather for the sources of step n (entries k, k - 1, ... down to k_lo); their partial sums
    wait in ``part`` until ``chunk`` are pending (as ``cuda._gather_step_inputs``).  Returns
    (k, top, pending)."""
    ti = cuda.threadIdx.x
    while k >= k_lo and src_step[k] >= n:
        acc = _gather_source(
            k, n, left, row_n, rl, src_off, src_fs, src_fm, src_unit, w, gs, gm, dm, dg, dt,
            alpha, beta, tau_syn, rec, first, spk_rec, nxt_same, t, bdim, nu, dw, dd,
        )  # fmt: skip
        part[_part_index(pending, ti, stride, group)] = acc
        pending += 1
        k -= 1
        if pending == chunk:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)
            top = k
            pending = 0
    return k, top, pending


@cuda.jit(device=True, cache=True)
def _finish_step(lam_v, lam_i, seen_step, seen_idx, out_s, n, row_n, n_out, n_mine, rec, alpha,
                 beta, c_adj, k_a, tm, ts, delta):  # fmt: skip
    """Carry this thread's adjoints from the end of step n (its spikes done) to its start: a
    neuron that fired flows from its earliest spike of the step, any other records the step's
    coefficients (ring row ``row_n``) and takes the whole-step propagator."""
    ti, bd = cuda.threadIdx.x, cuda.blockDim.x
    for m in range(n_mine):
        if seen_step[m] == n:
            lv, li = adjoint_flow(np.float64(lam_v[m]), np.float64(lam_i[m]),
                                  np.float64(out_s[seen_idx[m]]), tm, ts, delta)  # fmt: skip
            lam_v[m] = lv
            lam_i[m] = li
        else:
            q4 = 4 * (row_n * n_out + ti + m * bd)
            _record_step_cuda(rec, q4, lam_v[m], lam_i[m], alpha, beta, k_a)
            lam_v[m], lam_i[m] = _adjoint_step(lam_v[m], lam_i[m], alpha, beta, c_adj)


# ----------------------------------------------------------------------------- LIF backward
@cuda.jit(cache=True)
def lif_backward(
    src_step, src_off, src_fs, src_fm, src_unit, src_offsets, out_steps, out_units, out_s,
    out_vdot, out_offsets, grad_out, kick, w, gs, gm, dm, dg, n_out, n_steps, ring_len, consts,
    group, chunk_in, grad_in, dw_part, dd_part, rec, first, spk_rec, nxt_same,
):  # fmt: skip
    """EventProp backward of a precise LIF layer (block-strided over the batch).

    ``grad_out[k]`` is dL/dt of output spike k; ``kick[j]`` is subtracted from lambda_V at each
    spike of neuron j.  Synapses as in ``lif_forward`` (w, e^{g/tau_syn}, e^{g/tau_mem}, m, g).
    Writes ``grad_in`` (zeros on entry) and per-block partial sums ``dw_part``/``dd_part``
    ``[gridDim, n_in*n_out]`` (zeros on entry; ``dd`` before multiplication by w).  Per block:
    ``rec`` 4 x ``ring_len * n_out`` and ``first`` ``ring_len * n_out`` (int64), written before
    they are read; ``spk_rec`` 4 x and ``nxt_same`` 1 x the number of output spikes.  Dynamic
    shared memory: ``chunk_in`` slots of block sums (``cuda._sum_groups``).
    """
    alpha, beta, c_adj, threshold = consts[0], consts[1], consts[3], consts[4]
    tau_syn, vdot_min, dt, k_a = consts[5], consts[7], consts[8], consts[10]
    tm, ts, delta = np.float64(consts[6]), np.float64(consts[5]), np.float64(consts[11])
    lam_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    lam_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    seen_step = cuda.local.array(MAX_PER_THREAD, np.int64)
    seen_idx = cuda.local.array(MAX_PER_THREAD, np.int64)
    part = cuda.shared.array(0, w.dtype)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    n_groups = (bd + group - 1) // group
    stride = bd + n_groups
    sums_base = chunk_in * stride
    size = ring_len * n_out
    rec_b = rec[bi * 4 * size : (bi + 1) * 4 * size]
    first_b = first[bi * size : (bi + 1) * size]
    dw, dd = dw_part[bi], dd_part[bi]
    for b in range(bi, src_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            lam_v[m] = 0
            lam_i[m] = 0
            seen_step[m] = -1
        k_lo = src_offsets[b]
        k = _skip_late_inputs(src_step, src_offsets[b + 1] - 1, k_lo, n_steps)
        top, pending = k, 0
        ko, ko_lo = out_offsets[b + 1] - 1, out_offsets[b]
        row_n = np.int64((n_steps - 1) % ring_len)
        for n in range(n_steps - 1, -1, -1):
            while ko >= ko_lo and out_steps[ko] == n:  # spikes of step n, latest first
                j = out_units[ko]
                if j % bd == ti:
                    m = j // bd
                    q = row_n * n_out + j
                    mark = _spike_mark_cuda(out_s[ko], tau_syn, w.dtype.type)
                    if seen_step[m] != n:  # latest spike of j in step n: record (s_k, dt]
                        _record_step_cuda(rec_b, 4 * q, lam_v[m], lam_i[m], alpha, beta, k_a)
                        rec_b[4 * q + 3] = mark
                        s_from = np.float64(dt)
                        nxt_same[ko] = -1
                    else:
                        s_from = np.float64(out_s[seen_idx[m]])
                        nxt_same[ko] = seen_idx[m]
                    lv, li, p, qq, r = _spike_jump(
                        np.float64(lam_v[m]), np.float64(lam_i[m]), s_from,
                        np.float64(out_s[ko]), np.float64(out_vdot[ko]), grad_out[ko], kick[j],
                        threshold, np.float64(vdot_min), tm, ts, delta, np.float64(k_a),
                    )  # fmt: skip
                    spk_rec[4 * ko] = p
                    spk_rec[4 * ko + 1] = qq
                    spk_rec[4 * ko + 2] = r
                    spk_rec[4 * ko + 3] = mark
                    lam_v[m] = lv
                    lam_i[m] = li
                    seen_step[m] = n
                    seen_idx[m] = ko
                    first_b[q] = ko
                ko -= 1
            _finish_step(lam_v, lam_i, seen_step, seen_idx, out_s, n, row_n, n_out, n_mine, rec_b,
                         alpha, beta, c_adj, k_a, tm, ts, delta)  # fmt: skip
            k, top, pending = _gather_step(
                src_step, src_off, src_fs, src_fm, src_unit, k, k_lo, n, np.uint64(n_steps - n),
                np.uint64(row_n), rl, top, pending, chunk_in, w, gs, gm, dm, dg, dt, alpha, beta,
                tau_syn, rec_b, first_b, spk_rec, nxt_same, t, bdim, nu, dw, dd, part,
                stride, group, n_groups, sums_base, grad_in,
            )  # fmt: skip
            row_n = row_n - 1 if row_n > 0 else ring_len - 1
        if pending > 0:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)


# ----------------------------------------------------------------------------- LI readout
@cuda.jit(cache=True)
def li_forward(src_step, src_off, src_fs, src_fm, src_unit, src_offsets, wgs, wgm, dm, dg,
               n_out, n_steps, ring_len, consts, v_out, acc):  # fmt: skip
    """Precise leaky-integrator readout: ``v_out[(b * n_steps + n) * n_out + j]`` = V at
    t = n dt, arrivals at their exact times.  ``acc`` as in ``lif_forward``."""
    alpha, beta, c_vi, dt, k_v = consts[0], consts[1], consts[2], consts[8], consts[9]
    v = cuda.local.array(MAX_PER_THREAD, wgs.dtype)
    cur = cuda.local.array(MAX_PER_THREAD, wgs.dtype)
    no_lists = cuda.local.array(1, np.int32)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    size = ring_len * n_out
    acc_b = acc[bi * 3 * size : (bi + 1) * 3 * size]
    for b in range(bi, src_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            v[m] = 0
            cur[m] = 0
        lo, hi = src_offsets[b], src_offsets[b + 1]
        k = lo
        row_n = _U0
        for n in range(n_steps):
            k = _scatter_step(
                src_step, src_off, src_fs, src_fm, src_unit, k, hi, lo, n,
                np.uint64(n_steps - n), row_n, rl, wgs, wgm, dm, dg, dt, alpha, beta, acc_b,
                no_lists, no_lists, t, bdim, nu, False,
            )  # fmt: skip
            base = np.uint64((b * n_steps + n) * n_out)
            for m in range(n_mine):
                j = t + np.uint64(m) * bdim
                v_out[base + j] = v[m]
                a_s, a_m, _ = _step_sums(acc_b, row_n * nu + j)
                v[m], cur[m] = _superpose(v[m], cur[m], a_s, a_m, alpha, beta, c_vi, k_v)
            row_n += _U1
            if row_n == rl:
                row_n = _U0


@cuda.jit(cache=True)
def li_backward(
    src_step, src_off, src_fs, src_fm, src_unit, src_offsets, grad_v, w, gs, gm, dm, dg, n_out,
    n_steps, ring_len, consts, group, chunk_in, grad_in, dw_part, dd_part, rec,
):  # fmt: skip
    """Adjoint of the precise LI readout driven by ``grad_v[(b * n_steps + n) * n_out + j]`` =
    dL/dV(t = n dt); outputs and ``rec`` as in ``lif_backward``."""
    alpha, beta, c_adj, tau_syn = consts[0], consts[1], consts[3], consts[5]
    tau_mem, dt, k_a = consts[6], consts[8], consts[10]
    tm, ts, delta = np.float64(consts[6]), np.float64(consts[5]), np.float64(consts[11])
    lam_v = cuda.local.array(MAX_PER_THREAD, w.dtype)
    lam_i = cuda.local.array(MAX_PER_THREAD, w.dtype)
    never = cuda.local.array(MAX_PER_THREAD, np.int64)  # no spikes: no step is skipped
    no_index = cuda.local.array(1, np.int64)
    no_values = cuda.local.array(1, w.dtype)
    part = cuda.shared.array(0, w.dtype)
    ti, bi, bd = cuda.threadIdx.x, cuda.blockIdx.x, cuda.blockDim.x
    t, bdim = np.uint64(ti), np.uint64(bd)
    nu, rl = np.uint64(n_out), np.uint64(ring_len)
    n_mine = (n_out - ti + bd - 1) // bd
    n_groups = (bd + group - 1) // group
    stride = bd + n_groups
    sums_base = chunk_in * stride
    size = ring_len * n_out
    rec_b = rec[bi * 4 * size : (bi + 1) * 4 * size]
    dw, dd = dw_part[bi], dd_part[bi]
    for m in range(n_mine):
        never[m] = -1
    for b in range(bi, src_offsets.size - 1, cuda.gridDim.x):
        for m in range(n_mine):
            lam_v[m] = 0
            lam_i[m] = 0
        k_lo = src_offsets[b]
        k = _skip_late_inputs(src_step, src_offsets[b + 1] - 1, k_lo, n_steps)
        top, pending = k, 0
        row_n = np.int64((n_steps - 1) % ring_len)
        for n in range(n_steps - 1, -1, -1):
            if n + 1 < n_steps:  # the sample at t_{n+1} ends this step's segment
                base = (b * n_steps + n + 1) * n_out
                for m in range(n_mine):
                    lam_v[m] = readout_drive(lam_v[m], grad_v[base + ti + m * bd], tau_mem)
            _finish_step(lam_v, lam_i, never, never, no_values, n, row_n, n_out, n_mine, rec_b,
                         alpha, beta, c_adj, k_a, tm, ts, delta)  # fmt: skip
            k, top, pending = _gather_step(
                src_step, src_off, src_fs, src_fm, src_unit, k, k_lo, n, np.uint64(n_steps - n),
                np.uint64(row_n), rl, top, pending, chunk_in, w, gs, gm, dm, dg, dt, alpha, beta,
                tau_syn, rec_b, no_index, no_values, no_index, t, bdim, nu, dw, dd,
                part, stride, group, n_groups, sums_base, grad_in,
            )  # fmt: skip
            row_n = row_n - 1 if row_n > 0 else ring_len - 1
        if pending > 0:
            _flush_inputs(part, top, pending, stride, group, n_groups, sums_base, grad_in)

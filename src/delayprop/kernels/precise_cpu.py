"""Numba CPU kernels of the precise mode of the time-stepped engine (``precise=True``).

The grid's cost structure stays (a pass over steps x neurons, a scatter and a gather over
spikes x fan-out), every rounding goes:

* **Arrivals at their exact time.**  An arrival at t_k + d lands in step a = floor((t_k + d)/dt)
  at offset s in [0, dt) ms.  By superposition of the closed-form flow its effect on the state
  at the end of the step is

      I(t_{a+1}) += w beta e^{s/tau_syn}
      V(t_{a+1}) += w k_v (alpha e^{s/tau_mem} - beta e^{s/tau_syn})

  with k_v = tau_syn / (tau_mem - tau_syn), so every (step, neuron) keeps two sums
  A_s = SUM w e^{s/tau_syn} and A_m = SUM w e^{s/tau_mem} (a LIF layer keeps A_s in two parts,
  A_s^+ over w >= 0 and A_s^- over w < 0, which the bounds below read).
  With t_k = n_k dt + f_k and d = m dt + g, s = f_k + g (minus dt when f_k + g >= dt, one step
  later), and e^{s/tau} is a per-spike factor times a per-synapse factor: an arrival costs two
  multiply-adds and no exponential.
* **Spikes at their exact time.**  Two rigorous bounds (``_may_cross``) rule a crossing out
  within most steps from the step sums alone: from below, I stays above a floor set by I0 and
  A_s^-, so V could not have fallen back below its end value after touching threshold; from
  above, V stays at or below the trajectory from (V0, I0 + A_s^+) (all excitation at the start,
  no inhibition), whose maximum is cheap to bound.  A step that passes both may hold a crossing
  and is integrated exactly: its arrivals are read back through a linked list per
  (step, neuron) (its head stored in the step's record, one ``nxt`` entry per arrival written
  during the scatter), sorted, and the step is integrated segment by segment
  with the exact engine's closed-form flow; each crossing is located by the exact engine's root
  finder (``lif_flow.first_crossing``, a few ulp), V is reset there and integration goes on, so
  a neuron may fire several times in one step.  The bounds are rigorous, so an excursion above
  threshold that starts and ends inside one step is found too.
* **The exact adjoint of this forward**, i.e. EventProp in continuous time organised by steps:
  between events the adjoint flows in closed form, it jumps at every spike (at its exact time,
  with the exact slope I - threshold) and at readout samples (grid times).  Every (step, neuron)
  stores three coefficients (P, Q, R) from which the adjoint at any arrival offset s in its
  last segment follows without an exponential:

      lambda_I(s) = P e^{s/tau_syn} + Q e^{s/tau_mem},    lambda_V(s) = R e^{s/tau_mem}

  plus the offset of its last spike; an arrival before a spike of its step reads the
  coefficients stored with that spike instead.

Layout as in ``kernels.cpu`` (unsigned index arithmetic, arrivals past the last step go to a
spare row, samples in ``n_chunks`` fixed chunks with per-chunk buffers and gradient
accumulators; the sources of step n are scattered just before the forward pass simulates step n
and read just after the backward pass has recorded it, while the step records they reach are
still in cache), except that the synapses of each presynaptic unit are stored sorted by their
whole delay steps m (``perm[i * n_out + pos]`` is the postsynaptic neuron at position pos): the
arrivals of a spike at step n that surely fall past the last step (m >= n_steps - n) are then
a contiguous tail found by binary search, which the scatter and the gather skip (at large
delays about half of all arrivals).  Gradients come out in that sorted layout.  An arrival lands
one step later when f + g >= dt (f the spike's offset, g the delay remainder); the test is
``g >= dt - f`` everywhere, so that every kernel puts an arrival in the same step.

``consts`` is ``_grid_math.precise_constants``.  The in-step integration and the root finding
run in float64 whatever the kernel's float type.

The scalar helpers (``_superpose``, ``_may_cross``, ``_advance``, ``_offset``, ``_spike_jump``,
``_adjoint_at``, ...) are shared with the CUDA kernels (``kernels.precise_cuda``), which call
them as they are or compile their Python source for the device.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .formulas import add_rn, mul_add_rn, readout_drive
from .lif_flow import adjoint_flow, first_crossing, flow

__all__ = ["prepare_synapses", "lif_forward", "lif_backward", "li_forward", "li_backward"]

#: most spikes one neuron can fire within one step (further crossings in that step are dropped
#: and counted: with tau_mem = 20 ms, dt = 1 ms this needs a current of ~100 thresholds)
MAX_SPIKES_PER_STEP = 8

ONE = np.uint64(1)
TWO = np.uint64(2)
THREE = np.uint64(3)
FOUR = np.uint64(4)


# ----------------------------------------------------------------------------- synapses
@njit(cache=True, parallel=True)
def prepare_synapses(w_t, d_t, dt, r_max, tau_syn, tau_mem, perm, w_s, gs, gm, m_s, r_s):
    """The kernels' synapse layout [n_in * n_out] from weights ``w_t`` [n_in, n_out] and delays
    ``d_t`` [n_in, n_out] (float64, ms >= 0): each delay split into whole steps m and a
    remainder r in [0, r_max] (r_max the float just below dt); per presynaptic row, sorted by
    m: the postsynaptic neuron ``perm``, w, e^{r/tau_syn}, e^{r/tau_mem}, m (int32) and r."""
    n_in, n_out = w_t.shape
    for i in prange(n_in):
        rem = np.empty(n_out, dtype=w_t.dtype)
        whole = np.empty(n_out, dtype=np.int64)
        for j in range(n_out):
            x = d_t[i, j]
            n = math.floor(x / dt)
            r = x - n * dt
            if r >= dt:  # floating-point remainders at the edges
                n += 1
                r -= dt
            elif r < 0.0:
                n -= 1
                r += dt
            rem[j] = min(max(r, 0.0), r_max)
            whole[j] = n
        order = np.argsort(whole, kind="mergesort")
        for pos in range(n_out):
            j = order[pos]
            k = i * n_out + pos
            perm[k] = j
            w_s[k] = w_t[i, j]
            r_s[k] = rem[j]
            m_s[k] = whole[j]
            gs[k] = math.exp(np.float64(rem[j]) / tau_syn)
            gm[k] = math.exp(np.float64(rem[j]) / tau_mem)


# ----------------------------------------------------------------------------- shared pieces
@njit(cache=True, inline="always")
def _reach(dm, row, nu, n_k, n_steps_u):
    """Number of leading positions of the sorted row ``row`` whose arrivals from a spike at step
    n_k may land within the trial: the first position with m >= n_steps - n_k."""
    limit = np.int64(n_steps_u - n_k)
    lo = np.uint64(0)
    hi = nu
    while lo < hi:
        mid = (lo + hi) >> np.uint64(1)
        if np.int64(dm[row + mid]) < limit:
            lo = mid + np.uint64(1)
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _offset(f, g, dt):
    """Offset (ms, float64) in its step of an arrival with spike offset f and delay remainder g,
    with the carry test of every kernel."""
    s = np.float64(f) + np.float64(g)
    if g >= dt - f:
        s -= np.float64(dt)
    return min(max(s, 0.0), np.float64(dt))


# ----------------------------------------------------------------------------- forward pieces
@njit(cache=True, inline="always")
def _sources_through(src_step, k, hi, n):
    """The first source from k on (before hi) whose step is after n; sources are in time order,
    so the forward pass scatters those of step n just before it simulates step n, while the
    records they reach are still in cache."""
    while k < hi and src_step[k] <= n:
        k += 1
    return k


@njit(cache=True, inline="always")
def _sources_back_to(src_step, k, lo, n):
    """The last source from k back (not before lo) whose step is before n: the backward pass
    reads those of step n just after it has recorded step n."""
    while k >= lo and src_step[k] >= n:
        k -= 1
    return k


@njit(cache=True, inline="always")
def _pick(early, late, not_late):
    """``early`` when ``not_late`` is 1, ``late`` when it is 0, without a branch, for a source
    factor e^{f/tau} > 0 (``early``) and its value one step later, e^{f/tau} e^{-dt/tau}
    (``late``, not above ``early``): max(late, early * not_late) is exactly one of the two."""
    return max(late, early * not_late)


@njit(cache=True, inline="always")
def _source(k, src_off, src_fs, src_fm, src_unit, nu, dt, alpha, beta):
    """What the arrivals of source k share: the start of its synapse row, dt - f (an arrival
    with delay remainder g >= dt - f lands one step later), e^{f/tau_syn} and its value one
    step later, e^{f/tau_mem} and its value one step later."""
    fs, fm = src_fs[k], src_fm[k]
    return np.uint64(src_unit[k]) * nu, dt - src_off[k], fs, fs * beta, fm, fm * alpha


@njit(cache=True, inline="always")
def _arrival_at(pos, row, n_k, limit, fs, fs_late, fm, fm_late, perm, a, b, dm, dg_s, nu,
                n_steps_u, src_fs):  # fmt: skip
    """Synapse index, record index q and a[syn] e^{s/tau_syn}, b[syn] e^{s/tau_mem} of the
    arrival at position pos of the sorted row ``row`` from a source of step n_k (``_source``;
    a, b: per-synapse factors, e^{g/tau_syn} and e^{g/tau_mem} or those times w)."""
    syn = row + pos
    late = dg_s[syn] >= limit
    not_late = src_fs.dtype.type(not late)
    q = min(n_k + np.uint64(dm[syn]) + np.uint64(late), n_steps_u) * nu + np.uint64(perm[syn])
    return syn, q, _pick(fs, fs_late, not_late) * a[syn], _pick(fm, fm_late, not_late) * b[syn]


@njit(cache=True, inline="always")
def _scatter_sources(src_step, src_off, src_fs, src_fm, src_unit, first, lo, hi, perm, wgs, wgm,
                     dm, dg_s, nu, n_steps_u, dt, alpha, beta, acc, heads, nxt, lists):  # fmt: skip
    """Add every arrival of sources lo:hi (of a sample whose sources start at ``first``) to the
    step records ``acc``.

    With ``lists`` (a LIF layer) a record is 4 values per (step, neuron): A_s^+ (the part of
    A_s = SUM w e^{s/tau_syn} with w >= 0), A_m = SUM w e^{s/tau_mem}, A_s^- (w < 0) and the head
    of the arrival list, an integer stored through ``heads`` (``acc`` viewed as int32, see
    ``_head_index``); ``nxt`` [source - first, position in the sorted row] links the list, whose
    nodes are indices into ``nxt`` (a node names its source and synapse; written in row order,
    the links cost less than by neuron).  Without (an LI readout) a record is (A_s, A_m).  A
    record fits in one cache line: an arrival touches one."""
    for k in range(lo, hi):
        n_k = np.uint64(src_step[k])
        if n_k >= n_steps_u:
            continue
        row, limit, fs, fs_late, fm, fm_late = _source(k, src_off, src_fs, src_fm, src_unit, nu,
                                                       dt, alpha, beta)
        base = np.uint64(k - first) * nu
        for pos in range(_reach(dm, row, nu, n_k, n_steps_u)):
            _, q, a_s, a_m = _arrival_at(pos, row, n_k, limit, fs, fs_late, fm, fm_late, perm, wgs,
                                         wgm, dm, dg_s, nu, n_steps_u, src_fs)
            if lists:
                q4 = q * FOUR
                acc[q4 + TWO * np.uint64(a_s < 0)] += a_s  # the sign of w
                acc[q4 + ONE] += a_m
                h = _head_index(q4, acc)
                nxt[base + pos] = heads[h]
                heads[h] = np.int32(base + pos)
            else:
                q2 = q * TWO
                acc[q2] += a_s
                acc[q2 + ONE] += a_m


@njit(cache=True, inline="always")
def _head_index(q4, acc):
    """Index in ``acc.view(np.int32)`` of the list head of the record at ``acc[q4]``: its fourth
    value (the low half of a float64)."""
    return (q4 + THREE) * np.uint64(acc.itemsize // 4)


@njit(cache=True, inline="always")
def _clear_records(acc, heads, q_lo, q_hi):
    """Zero sums and empty lists in the LIF step records q_lo:q_hi."""
    acc[4 * q_lo : 4 * q_hi] = 0.0
    for q in range(q_lo, q_hi):
        heads[_head_index(np.uint64(4 * q), acc)] = -1


@njit(cache=True, inline="always")
def _new_step_records(n_records, dtype):
    """``n_records`` cleared LIF step records [n_records * 4] (see ``_scatter_sources``) and
    their int32 view."""
    acc = np.empty(4 * n_records, dtype=dtype)
    heads = acc.view(np.int32)
    _clear_records(acc, heads, 0, n_records)
    return acc, heads


@njit(cache=True, inline="always")
def _take_record(acc, heads, q):
    """(A_s^+, A_m, A_s^-, list head) of one (step, neuron) record, which is cleared."""
    q4 = np.uint64(q) * FOUR
    h = _head_index(q4, acc)
    a_sp, a_m, a_sn, head = acc[q4], acc[q4 + ONE], acc[q4 + TWO], heads[h]
    acc[q4] = 0.0
    acc[q4 + ONE] = 0.0
    acc[q4 + TWO] = 0.0
    heads[h] = -1
    return a_sp, a_m, a_sn, head


@njit(cache=True, inline="always")
def _superpose(v, cur, a_s, a_m, alpha, beta, c_vi, k_v):
    """(V, I) at the end of a step from (V, I) at its start and the step sums A_s, A_m of its
    arrivals, by superposition of the closed-form flow (no threshold)."""
    v_end = add_rn(mul_add_rn(alpha, v, c_vi, cur), k_v * mul_add_rn(alpha, a_m, -beta, a_s))
    return v_end, beta * (cur + a_s)


@njit(cache=True, inline="always")
def _may_cross(v0, i0, exc, inh, v_end, alpha, beta, c_vi, threshold, kappa_max):
    """Whether V can reach threshold within a step that starts at (V0, I0), whose arrivals have
    the step sums A_s^+ = ``exc`` >= 0 (w >= 0) and A_s^- = ``inh`` <= 0 (w < 0), and that ends
    at ``v_end`` without reset (``_superpose``).  Yes when v_end >= threshold; no when either
    rigorous bound rules a crossing out:

    * from below: I(t) = e^{-t/tau_syn} (I0 + SUM_{s <= t} w e^{s/tau_syn}) >= i_min =
      (I0 + inh) (times beta when positive) all step long, so tau_mem dV/dt >= i_min - V; had V
      reached threshold at some time, V would end at or above
      i_min + min(alpha (threshold - i_min), threshold - i_min);
    * from above: V stays at or below the trajectory from (V0, I0 + exc) (all excitation at
      the start, no inhibition; exc >= SUM max(w, 0) as e^{s/tau_syn} >= 1), which has one
      maximum: below threshold when it rises all step long and ends below, or by a cruder
      bound (V0 and kappa_max (I0 + exc))."""
    if v_end >= threshold:
        return True
    i_min = i0 + inh
    if i_min > 0.0:
        i_min = beta * i_min
    gap = threshold - i_min
    if v_end < i_min + min(alpha * gap, gap):
        return False
    j_max = i0 + exc
    if j_max <= 0.0:
        return v0 >= threshold
    if add_rn(max(v0, 0.0), kappa_max * j_max) < threshold:
        return False
    v_top = mul_add_rn(alpha, v0, c_vi, j_max)
    return v_top >= threshold or v_top >= beta * j_max  # falls at the end: the peak is inside


@njit(cache=True)
def _step_arrivals(head_q, nu, nxt, lo, src_off, src_unit, w_s, dg_s, dt, arr_s, arr_w):
    """Arrivals of one (step, neuron) list (``_scatter_sources``), sorted by offset (ms) into
    arr_s / arr_w."""
    count = 0
    e = head_q
    while e >= 0:
        node = np.uint64(e)
        p = node // nu  # the source (from lo) and the position in its sorted row
        syn = np.uint64(src_unit[lo + p]) * nu + (node - p * nu)
        s64 = _offset(src_off[lo + p], dg_s[syn], dt)
        w64 = np.float64(w_s[syn])
        q = count  # insertion sort: lists are short
        while q > 0 and arr_s[q - 1] > s64:
            arr_s[q] = arr_s[q - 1]
            arr_w[q] = arr_w[q - 1]
            q -= 1
        arr_s[q] = s64
        arr_w[q] = w64
        count += 1
        e = nxt[node]
    return count


@njit(cache=True)
def _advance(v, i, s, s_next, t0, threshold, tm, ts, delta, spk_s, spk_vdot, base, n_sp, limit):
    """Integrate from offset s to s_next (ms, float64) of a step that starts at t0, without
    arrivals, resetting V at every crossing.  Spike offsets (ms) and slopes I - threshold go to
    ``spk_s`` / ``spk_vdot`` at ``base + n_sp`` while n_sp < ``limit``.  Returns (V, I at
    s_next, n_sp, crossings dropped beyond the limit)."""
    dropped = 0
    while True:
        h = s_next - s
        c = first_crossing(v, i, h, threshold, t0 + s, tm, ts, delta)
        if not c <= h:
            break
        v, i = flow(v, i, c, tm, ts, delta)
        if n_sp < limit:
            spk_s[base + n_sp] = s + c
            spk_vdot[base + n_sp] = i - threshold
            n_sp += 1
        else:
            dropped += 1
        s += c
        v = 0.0
    v, i = flow(v, i, s_next - s, tm, ts, delta)
    return v, i, n_sp, dropped


@njit(cache=True)
def _integrate_step(v, i, n_arr, arr_s, arr_w, t0, dt, threshold, tm, ts, delta, spk_s, spk_vdot):
    """Integrate one step from (v, i) at its start through its sorted arrivals, resetting V at
    every crossing.  Returns (V, I at the step's end, number of spikes, number dropped); the
    spikes' offsets (ms) and slopes I - threshold go to spk_s / spk_vdot."""
    s = 0.0
    n_sp = 0
    dropped = 0
    for q in range(n_arr + 1):
        s_next = arr_s[q] if q < n_arr else dt
        v, i, n_sp, d = _advance(v, i, s, s_next, t0, threshold, tm, ts, delta, spk_s, spk_vdot,
                                 0, n_sp, spk_s.size)  # fmt: skip
        dropped += d
        s = s_next
        if q < n_arr:
            i += arr_w[q]
    return v, i, n_sp, dropped


@njit(cache=True, inline="always")
def _sort_step_spikes(lo, hi, out_s, out_units, out_vdot):
    """Order the spikes lo:hi of one step by (offset, unit)."""
    for a in range(lo + 1, hi):
        s, u, vd = out_s[a], out_units[a], out_vdot[a]
        b = a
        while b > lo and (out_s[b - 1] > s or (out_s[b - 1] == s and out_units[b - 1] > u)):
            out_s[b] = out_s[b - 1]
            out_units[b] = out_units[b - 1]
            out_vdot[b] = out_vdot[b - 1]
            b -= 1
        out_s[b], out_units[b], out_vdot[b] = s, u, vd


# ----------------------------------------------------------------------------- LIF forward
@njit(cache=True, parallel=True)
def lif_forward(
    src_step, src_off, src_fs, src_fm, src_unit, src_offsets, perm, wgs, wgm, dm, dg_s, w_s,
    n_out, n_steps, consts, sample_ids, cap, src_cap,
    out_steps, out_units, out_s, out_vdot, out_counts, out_dropped, n_chunks,
):
    """Simulate a LIF layer for the samples ``sample_ids`` (see the module docstring).

    Sources (input spikes): step n_k (int32), offset f_k in [0, dt) ms, e^{f_k/tau_syn},
    e^{f_k/tau_mem}, unit.  Synapses in the sorted layout [n_in * n_out]: postsynaptic neuron
    (``perm``), w e^{g/tau_syn}, w e^{g/tau_mem}, delay steps m (int32), remainder g in [0, dt)
    ms and w (the last two read back at crossings).  Sample ``sample_ids[r]`` writes its
    spikes (step, unit, offset in the step ms, tau_mem dV/dt = I - threshold at the crossing),
    ordered by time, to slots ``r*cap : r*cap + cap``, its spike count to ``out_counts[r]``
    (which may exceed ``cap``: the caller re-runs the sample with more room) and the crossings
    beyond ``MAX_SPIKES_PER_STEP`` in one step to ``out_dropped[r]``.  ``src_cap`` is the most
    sources of any sample (src_cap * n_out <= 2^31: list nodes are int32).
    """
    alpha, beta, c_vi, threshold = consts[0], consts[1], consts[2], consts[4]
    dt, k_v, kappa_max = consts[8], consts[9], consts[12]
    tm, ts, delta = np.float64(consts[6]), np.float64(consts[5]), np.float64(consts[11])
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    dt64, theta64 = np.float64(dt), np.float64(threshold)
    spare = n_steps * n_out
    for c in prange(n_chunks):
        acc, heads = _new_step_records((n_steps + 1) * n_out, w_s.dtype)
        nxt = np.empty(max(src_cap, 1) * n_out, dtype=np.int32)
        arr_s = np.empty(max(src_cap, 1), dtype=np.float64)
        arr_w = np.empty(max(src_cap, 1), dtype=np.float64)
        spk_s = np.empty(MAX_SPIKES_PER_STEP, dtype=np.float64)
        spk_vdot = np.empty(MAX_SPIKES_PER_STEP, dtype=np.float64)
        v = np.empty(n_out, dtype=w_s.dtype)
        cur = np.empty(n_out, dtype=w_s.dtype)
        for r in range(c, sample_ids.size, n_chunks):
            b = sample_ids[r]
            lo, hi = src_offsets[b], src_offsets[b + 1]
            ks = lo
            v[:] = 0.0
            cur[:] = 0.0
            count = 0
            dropped = 0
            slot = r * cap
            for n in range(n_steps):
                k_next = _sources_through(src_step, ks, hi, n)
                _scatter_sources(src_step, src_off, src_fs, src_fm, src_unit, lo, ks, k_next,
                                 perm, wgs, wgm, dm, dg_s, nu, n_steps_u, dt, alpha, beta, acc,
                                 heads, nxt, True)  # fmt: skip
                ks = k_next
                first = count
                base = n * n_out
                for j in range(n_out):
                    q = base + j
                    a_sp, a_m, a_sn, head = _take_record(acc, heads, q)
                    vj, ij = _superpose(v[j], cur[j], a_sp + a_sn, a_m, alpha, beta, c_vi, k_v)
                    if _may_cross(v[j], cur[j], a_sp, a_sn, vj, alpha, beta, c_vi, threshold,
                                  kappa_max):  # fmt: skip
                        n_arr = _step_arrivals(head, nu, nxt, lo, src_off, src_unit, w_s,
                                               dg_s, dt, arr_s, arr_w)
                        v64, i64, n_sp, n_drop = _integrate_step(
                            np.float64(v[j]), np.float64(cur[j]), n_arr, arr_s, arr_w,
                            n * dt64, dt64, theta64, tm, ts, delta, spk_s, spk_vdot,
                        )
                        for e in range(n_sp):
                            if count < cap:
                                out_steps[slot + count] = n
                                out_units[slot + count] = j
                                out_s[slot + count] = spk_s[e]
                                out_vdot[slot + count] = spk_vdot[e]
                            count += 1
                        dropped += n_drop
                        vj, ij = v64, i64
                    v[j] = vj
                    cur[j] = ij
                if min(count, cap) - first > 1:
                    _sort_step_spikes(slot + first, slot + min(count, cap), out_s, out_units,
                                      out_vdot)
            _clear_records(acc, heads, spare, spare + n_out)
            out_counts[r] = count
            out_dropped[r] = dropped


# ----------------------------------------------------------------------------- backward pieces
@njit(cache=True, inline="always")
def _coefficients(lam_v, lam_i, e_s, e_m, k_a):
    """(P, Q, R) of a segment ending where the adjoint is (lam_v, lam_i), with
    e_s = e^{-s_end/tau_syn}, e_m = e^{-s_end/tau_mem} (s_end: the segment's end offset)."""
    return (lam_i + k_a * lam_v) * e_s, -k_a * lam_v * e_m, lam_v * e_m


@njit(cache=True, inline="always")
def _adjoint_at(p, qq, r, e_s, e_m):
    """(lambda_I, lambda_V - lambda_I) at an arrival from the (P, Q, R) of its segment and
    e_s = e^{s/tau_syn}, e_m = e^{s/tau_mem} of its offset s."""
    return p * e_s + qq * e_m, (r - qq) * e_m - p * e_s


@njit(cache=True, inline="always")
def _adjoint_step(lam_v, lam_i, alpha, beta, c_adj):
    """(lambda_V, lambda_I) carried back over one whole step without events."""
    return alpha * lam_v, c_adj * lam_v + beta * lam_i


@njit(cache=True, inline="always")
def _spike_jump(lam_v, lam_i, s_from, s_k, vdot, grad, kick, threshold, vdot_min, tm, ts, delta,
                k_a):  # fmt: skip
    """Adjoint carried back from offset s_from to a spike at offset s_k (ms, float64) and its
    jump there (``grad`` = dL/dt of the spike, ``kick`` the regulariser's); returns
    (lambda_V, lambda_I) just before the spike and (P, Q, R) of the segment that ends there."""
    lv, li = adjoint_flow(lam_v, lam_i, s_from - s_k, tm, ts, delta)
    lv += (threshold * lv + grad) / max(vdot, vdot_min) - kick
    p, qq, r = _coefficients(lv, li, math.exp(-s_k / ts), math.exp(-s_k / tm), k_a)
    return lv, li, p, qq, r


@njit(cache=True, inline="always")
def _new_records(n_steps, n_out, dtype):
    """Step records [(n_steps + 1) * n_out * 4], zero; the spare row (arrivals past the end)
    keeps zero coefficients and 'no spike' (mark 0) for good."""
    return np.zeros(4 * (n_steps + 1) * n_out, dtype=dtype)


@njit(cache=True, inline="always")
def _spike_mark(s_k, tau_syn, dtype):
    """The mark of a spike at offset s_k (ms) in its step: e^{s_k/tau_syn} in the kernel's float
    type, which an arrival at offset s compares with its own factor e^{s/tau_syn} (> 0, the
    mark of 'no spike' is 0): the arrival comes after the spike when its factor is larger.
    The gather has the factor at hand; the offset it would first have to compute."""
    return dtype(math.exp(np.float64(s_k) / np.float64(tau_syn)))


@njit(cache=True, inline="always")
def _record_step(rec, q4, lam_v, lam_i, alpha, beta, k_a):
    """Coefficients of a segment that ends at the step's end, and 'no spike in this step'
    (mark 0, see ``_spike_mark``)."""
    p, qq, r = _coefficients(lam_v, lam_i, beta, alpha, k_a)
    rec[q4] = p
    rec[q4 + 1] = qq
    rec[q4 + 2] = r
    rec[q4 + 3] = 0.0


@njit(cache=True, inline="always")
def _gather_sources(src_step, src_off, src_fs, src_fm, src_unit, lo, hi, perm, w_s, gs, gm, dm,
                    dg_s, nu, n_steps_u, dt, alpha, beta, tau_syn, rec, first, spk_rec, nxt_same,
                    k_lo, hits, dw, dd, grad_in):  # fmt: skip
    """Adjoint read at every arrival of sources lo:hi (sorted layout): dw -= tau_syn lambda_I,
    dd += lambda_V - lambda_I (times w later), dL/dt of the source = SUM_j w (lambda_V - lambda_I).

    An arrival before a spike of its step (its factor e^{s/tau_syn} not above the mark of the
    step's latest spike, ``_spike_mark``) reads the coefficients of the segment that ends at the
    next spike (``first``, ``nxt_same``; ``spk_rec`` holds P, Q, R and the mark per spike).
    Such arrivals are rare (~1 %): the loop over a source's arrivals reads every arrival from
    its step's record without a branch, adds nothing for those before a spike and lists their
    positions in ``hits`` [n_out], and a second loop reads them (with the marks, ~20 % less
    time for the backward kernel of the benchmark network than a branch on offsets)."""
    for k in range(lo, hi):
        n_k = np.uint64(src_step[k])
        g_in = w_s[0] - w_s[0]  # zero of the weights' float type
        if n_k < n_steps_u:
            row, limit, fs, fs_late, fm, fm_late = _source(k, src_off, src_fs, src_fm, src_unit,
                                                           nu, dt, alpha, beta)
            n_hits = 0
            for pos in range(_reach(dm, row, nu, n_k, n_steps_u)):
                syn, q, e_s, e_m = _arrival_at(pos, row, n_k, limit, fs, fs_late, fm, fm_late,
                                               perm, gs, gm, dm, dg_s, nu, n_steps_u, src_fs)
                q4 = q * FOUR
                after = e_s > rec[q4 + THREE]
                hits[n_hits] = pos
                n_hits += 1 - after
                lam_i, lam_d = _adjoint_at(rec[q4], rec[q4 + ONE], rec[q4 + TWO], e_s, e_m)
                keep = src_fs.dtype.type(after)
                dw[syn] -= tau_syn * lam_i * keep
                dd[syn] += lam_d * keep
                g_in += w_s[syn] * lam_d * keep
            for h in range(n_hits):  # before a spike: the segment that ends at the next spike
                syn, q, e_s, e_m = _arrival_at(hits[h], row, n_k, limit, fs, fs_late, fm,
                                               fm_late, perm, gs, gm, dm, dg_s, nu, n_steps_u,
                                               src_fs)
                e = first[q] - k_lo  # spikes and their links counted from k_lo
                while spk_rec[4 * e + 3] < e_s and nxt_same[e] >= 0:
                    e = nxt_same[e] - k_lo
                lam_i, lam_d = _adjoint_at(spk_rec[4 * e], spk_rec[4 * e + 1],
                                           spk_rec[4 * e + 2], e_s, e_m)
                dw[syn] -= tau_syn * lam_i
                dd[syn] += lam_d
                g_in += w_s[syn] * lam_d
        grad_in[k] = g_in


@njit(cache=True, inline="always")
def _propagate_step(lam_v, lam_i, rec, base4, skip_step, n, alpha, beta, c_adj, k_a):
    """Record every neuron's step coefficients (except those with a spike in step n, recorded
    already) and carry its adjoint back over the whole step."""
    for j in range(lam_v.size):
        if skip_step[j] == n:
            continue
        _record_step(rec, base4 + 4 * j, lam_v[j], lam_i[j], alpha, beta, k_a)
        lam_v[j], lam_i[j] = _adjoint_step(lam_v[j], lam_i[j], alpha, beta, c_adj)


# ----------------------------------------------------------------------------- LIF backward
@njit(cache=True, parallel=True)
def lif_backward(
    src_step, src_off, src_fs, src_fm, src_unit, src_offsets,
    out_steps, out_units, out_s, out_vdot, out_offsets, grad_out, kick,
    perm, w, gs, gm, dm, dg, n_out, n_steps, consts, max_out, n_chunks, grad_in, dw_part, dd_part,
):
    """EventProp backward of a precise LIF layer for the whole batch.

    ``grad_out[k]`` is dL/dt of output spike k; ``kick[j]`` is subtracted from lambda_V at each
    spike of neuron j.  Synapses in the sorted layout (``perm``, w, e^{g/tau_syn},
    e^{g/tau_mem}, delay steps, remainders).  Writes ``grad_in`` and per-chunk partial sums
    ``dw_part``/``dd_part`` [n_chunks, n_in*n_out] in the sorted layout (``dd`` before
    multiplication by w).
    """
    alpha, beta, c_adj, threshold = consts[0], consts[1], consts[3], consts[4]
    tau_syn, vdot_min, dt, k_a = consts[5], consts[7], consts[8], consts[10]
    tm, ts, delta = np.float64(consts[6]), np.float64(consts[5]), np.float64(consts[11])
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = src_offsets.size - 1
    for c in prange(n_chunks):
        rec = _new_records(n_steps, n_out, w.dtype)
        first = np.empty((n_steps + 1) * n_out, dtype=np.int64)  # read only where set
        spk_rec = np.empty(4 * max(max_out, 1), dtype=w.dtype)
        nxt_same = np.empty(max(max_out, 1), dtype=np.int64)
        hits = np.empty(n_out, dtype=np.uint64)
        seen_step = np.empty(n_out, dtype=np.int64)
        seen_idx = np.empty(n_out, dtype=np.int64)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        for b in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            seen_step[:] = -1
            k_lo = out_offsets[b]
            k = out_offsets[b + 1] - 1
            src_lo = src_offsets[b]
            ks = _sources_back_to(src_step, src_offsets[b + 1] - 1, src_lo, n_steps)
            _gather_sources(src_step, src_off, src_fs, src_fm, src_unit, ks + 1,
                            src_offsets[b + 1], perm, w, gs, gm, dm, dg, nu, n_steps_u, dt,
                            alpha, beta, tau_syn, rec, first, spk_rec, nxt_same, k_lo, hits, dw,
                            dd, grad_in)  # sources past the last step: dL/dt = 0
            for n in range(n_steps - 1, -1, -1):
                base4 = 4 * n * n_out
                while k >= k_lo and out_steps[k] == n:  # spikes of step n, latest first
                    j = out_units[k]
                    s_k = np.float64(out_s[k])
                    mark = _spike_mark(s_k, tau_syn, w.dtype.type)
                    if seen_step[j] != n:  # latest spike of j in step n: record (s_k, dt]
                        q4 = base4 + 4 * j
                        _record_step(rec, q4, lam_v[j], lam_i[j], alpha, beta, k_a)
                        rec[q4 + 3] = mark
                        s_from = np.float64(dt)
                        nxt_same[k - k_lo] = -1
                    else:
                        s_from = np.float64(out_s[seen_idx[j]])
                        nxt_same[k - k_lo] = seen_idx[j]
                    lv, li, p, qq, r = _spike_jump(
                        np.float64(lam_v[j]), np.float64(lam_i[j]), s_from, s_k,
                        np.float64(out_vdot[k]), grad_out[k], kick[j], threshold,
                        np.float64(vdot_min), tm, ts, delta, np.float64(k_a),
                    )  # fmt: skip
                    e4 = 4 * (k - k_lo)
                    spk_rec[e4], spk_rec[e4 + 1], spk_rec[e4 + 2], spk_rec[e4 + 3] = p, qq, r, mark
                    lam_v[j] = lv
                    lam_i[j] = li
                    seen_step[j] = n
                    seen_idx[j] = k
                    first[n * n_out + j] = k
                    k -= 1
                for j in range(n_out):  # neurons that fired: from their earliest spike to 0
                    if seen_step[j] == n:
                        lv, li = adjoint_flow(np.float64(lam_v[j]), np.float64(lam_i[j]),
                                              np.float64(out_s[seen_idx[j]]), tm, ts, delta)
                        lam_v[j] = lv
                        lam_i[j] = li
                _propagate_step(lam_v, lam_i, rec, base4, seen_step, n, alpha, beta, c_adj, k_a)
                k_next = _sources_back_to(src_step, ks, src_lo, n)
                _gather_sources(src_step, src_off, src_fs, src_fm, src_unit, k_next + 1, ks + 1,
                                perm, w, gs, gm, dm, dg, nu, n_steps_u, dt, alpha, beta,
                                tau_syn, rec, first, spk_rec, nxt_same, k_lo, hits, dw, dd,
                                grad_in)  # fmt: skip
                ks = k_next


# ----------------------------------------------------------------------------- LI readout
@njit(cache=True, parallel=True)
def li_forward(src_step, src_off, src_fs, src_fm, src_unit, src_offsets, perm, wgs, wgm, dm,
               dg_s, n_out, n_steps, consts, n_chunks, v_out):
    """Leaky-integrator readout: ``v_out[b, n, j]`` = V at t = n dt, arrivals at exact times."""
    alpha, beta, c_vi, dt, k_v = consts[0], consts[1], consts[2], consts[8], consts[9]
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = src_offsets.size - 1
    spare = n_steps * n_out
    for c in prange(n_chunks):
        acc = np.zeros(2 * (n_steps + 1) * n_out, dtype=wgs.dtype)
        no_head = np.empty(0, dtype=np.int32)
        v = np.empty(n_out, dtype=wgs.dtype)
        cur = np.empty(n_out, dtype=wgs.dtype)
        for b in range(c, batch, n_chunks):
            lo, hi = src_offsets[b], src_offsets[b + 1]
            ks = lo
            v[:] = 0.0
            cur[:] = 0.0
            for n in range(n_steps):
                k_next = _sources_through(src_step, ks, hi, n)
                _scatter_sources(src_step, src_off, src_fs, src_fm, src_unit, lo, ks, k_next,
                                 perm, wgs, wgm, dm, dg_s, nu, n_steps_u, dt, alpha, beta, acc,
                                 no_head, no_head, False)  # fmt: skip
                ks = k_next
                base = n * n_out
                for j in range(n_out):
                    v_out[b, n, j] = v[j]
                    q2 = 2 * (base + j)
                    v[j], cur[j] = _superpose(v[j], cur[j], acc[q2], acc[q2 + 1], alpha, beta,
                                              c_vi, k_v)  # fmt: skip
                    acc[q2] = 0.0
                    acc[q2 + 1] = 0.0
            acc[2 * spare :] = 0.0


@njit(cache=True, parallel=True)
def li_backward(src_step, src_off, src_fs, src_fm, src_unit, src_offsets, grad_v, perm, w, gs,
                gm, dm, dg, n_out, n_steps, consts, n_chunks, grad_in, dw_part, dd_part):
    """Adjoint of the precise LI readout driven by ``grad_v[b, n, j]`` = dL/dV(t = n dt)."""
    alpha, beta, c_adj, tau_syn = consts[0], consts[1], consts[3], consts[5]
    tau_mem, dt, k_a = consts[6], consts[8], consts[10]
    nu = np.uint64(n_out)
    n_steps_u = np.uint64(n_steps)
    batch = src_offsets.size - 1
    never = np.full(n_out, -1, dtype=np.int64)
    no_spikes = np.empty(0, dtype=w.dtype)
    no_links = np.empty(0, dtype=np.int64)
    for c in prange(n_chunks):
        rec = _new_records(n_steps, n_out, w.dtype)
        first = np.empty(0, dtype=np.int64)
        hits = np.empty(n_out, dtype=np.uint64)
        lam_v = np.empty(n_out, dtype=w.dtype)
        lam_i = np.empty(n_out, dtype=w.dtype)
        dw, dd = dw_part[c], dd_part[c]
        for b in range(c, batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            src_lo = src_offsets[b]
            ks = _sources_back_to(src_step, src_offsets[b + 1] - 1, src_lo, n_steps)
            _gather_sources(src_step, src_off, src_fs, src_fm, src_unit, ks + 1,
                            src_offsets[b + 1], perm, w, gs, gm, dm, dg, nu, n_steps_u, dt,
                            alpha, beta, tau_syn, rec, first, no_spikes, no_links, 0,
                            hits, dw, dd, grad_in)  # sources past the last step: dL/dt = 0
            for n in range(n_steps - 1, -1, -1):
                if n + 1 < n_steps:  # the sample at t_{n+1} ends this step's segment
                    for j in range(n_out):
                        lam_v[j] = readout_drive(lam_v[j], grad_v[b, n + 1, j], tau_mem)
                _propagate_step(lam_v, lam_i, rec, 4 * n * n_out, never, n, alpha, beta, c_adj,
                                k_a)
                k_next = _sources_back_to(src_step, ks, src_lo, n)
                _gather_sources(src_step, src_off, src_fs, src_fm, src_unit, k_next + 1, ks + 1,
                                perm, w, gs, gm, dm, dg, nu, n_steps_u, dt, alpha, beta,
                                tau_syn, rec, first, no_spikes, no_links, 0, hits,
                                dw, dd, grad_in)  # fmt: skip
                ks = k_next

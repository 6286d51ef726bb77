"""Closed-form flow of a LIF neuron and of its adjoint between events (float64, times in ms).

With tau_mem = tm, tau_syn = ts and ``delta = 1/tm - 1/ts`` (ms^-1), the state a time s >= 0
after (V0, I0) is

    I(s) = I0 exp(-s/ts)
    V(s) = exp(-s/tm) (V0 + I0 phi(s) / tm),      phi(s) = expm1(delta s) / delta

which is the textbook ``V0 e^{-s/tm} + I0 ts/(ts - tm) (e^{-s/ts} - e^{-s/tm})`` written so that
it stays accurate when tm is close to ts and becomes the limit form ``(V0 + I0 s/tm) e^{-s/tm}``
at tm == ts (phi(s) = s when delta == 0): no special case anywhere else.

The adjoint (docs/methods.md) runs backward; over a backward step of length s without events

    lambda_V <- exp(-s/tm) lambda_V
    lambda_I <- exp(-s/ts) lambda_I + exp(-s/tm) phi(s) / ts * lambda_V     (old lambda_V)

Threshold crossings: tm dV/ds = I - V vanishes where phi(s) = ts (1 - V0/I0), so V has at most
one extremum for s > 0 (a maximum iff I0 > 0), where V = I: the peak value needs one exp.  While
V rises with I > 0, tm d2V/ds2 = -I/ts - dV/ds < 0: V is concave there, so the tangent at s = 0
bounds the crossing time from below.  The first crossing is bracketed between that bound and the
peak (or the end of the interval) and refined by Halley's method safeguarded by bisection, to a
few units in the last place.

Adaptation (option ``tau_adapt`` = ta, ``delta_a = 1/tm - 1/ta``): an adaptation current A,
``ta dA/dt = -A``, enters ``tm dV/dt = -V + I - A`` as I does with the opposite sign, so its
part of V is ``flow(0, -A0, s, tm, ta, delta_a)[0]`` (``adapted_flow``) and its adjoint lambda_A
flows as -lambda_I does (``adapted_adjoint_flow``).  V is then a sum of three exponentials, not
concave while it rises; ``first_crossing_adapted`` splits the interval where dV/ds may change
sign and brackets the crossing in a piece on which V is monotone.  With A0 >= 0, V is at most the
V without adaptation, so ``crossing_lower_bound`` still bounds the crossing time from below.

The functions are ``@njit`` (CPU) and serve CUDA kernels as they are: numba-cuda compiles a
CPU-jitted function as a device function when a kernel calls it (its "JIT function CPU-GPU
compatibility"), so the precise mode's CUDA kernels (``kernels.precise_cuda``) run this same
code.  On the GPU the compiler may fuse multiply-adds and libdevice's exp/expm1/log1p may differ
from the CPU's by an ulp: results agree to rounding, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "flow",
    "adjoint_flow",
    "adapted_flow",
    "adapted_adjoint_flow",
    "tau_sensitivity_flow",
    "extremum",
    "crossing_lower_bound",
    "first_crossing",
    "first_crossing_adapted",
    "interval_max",
    "MAX_START",
    "MAX_INTERIOR",
    "MAX_END",
]

#: where the maximum of V over an interval lies (see ``interval_max``)
MAX_START, MAX_INTERIOR, MAX_END = 0, 1, 2

_MAX_ITER = 200


# Both flows use exp(-s/ts) = exp(-s/tm) (1 + expm1(delta s)): two transcendental calls, not
# three, and the same expm1 gives phi.


@njit(cache=True)
def flow(v0, i0, s, tm, ts, delta):
    """State (V, I) a time s >= 0 ms after (v0, i0), without events."""
    em = math.exp(-s / tm)
    if delta == 0.0:
        return em * (v0 + i0 * s / tm), i0 * em
    g = math.expm1(delta * s)
    return em * (v0 + i0 * g / (delta * tm)), i0 * em * (1.0 + g)


@njit(cache=True)
def adjoint_flow(lam_v, lam_i, s, tm, ts, delta):
    """Adjoint (lambda_V, lambda_I) a backward time s >= 0 ms earlier, without events."""
    em = math.exp(-s / tm)
    if delta == 0.0:
        return em * lam_v, em * (lam_i + s / ts * lam_v)
    g = math.expm1(delta * s)
    return em * lam_v, em * ((1.0 + g) * lam_i + g / (delta * ts) * lam_v)


@njit(cache=True)
def adapted_flow(v0, i0, a0, s, tm, ts, ta, delta, delta_a):
    """State (V, I, A) a time s >= 0 ms after (v0, i0, a0) of a neuron with an adaptation
    current A (``tm dV/dt = -V + I - A``, ``ta dA/dt = -A``, ``delta_a = 1/tm - 1/ta``)::

        V(s) = flow(v0, i0, s)[0] + flow(0, -a0, s; ta, delta_a)[0],   A(s) = a0 e^{-s/ta}

    (the second flow returns -A(s) as its current).  Where a0 == 0.0 it is ``flow`` and A = 0.0,
    bit for bit."""
    v, i = flow(v0, i0, s, tm, ts, delta)
    if a0 == 0.0:
        return v, i, 0.0
    v_a, minus_a = flow(0.0, -a0, s, tm, ta, delta_a)
    return v + v_a, i, -minus_a


@njit(cache=True)
def adapted_adjoint_flow(lam_v, lam_i, lam_a, s, tm, ts, ta, delta, delta_a):
    """Adjoint (lambda_V, lambda_I, lambda_A) a backward time s >= 0 ms earlier, without
    events, of a neuron with an adaptation current (``adapted_flow``); lambda_A runs backward
    with ``ta lambda_A' = lambda_A + lambda_V``::

        lambda_A <- e^{-s/ta} lambda_A - e^{-s/tm} phi_a(s) / ta * lambda_V     (old lambda_V)

    i.e. -lambda_A flows as lambda_I does with ta, delta_a for ts, delta; lambda_V and
    lambda_I flow as in ``adjoint_flow``."""
    new_v, new_i = adjoint_flow(lam_v, lam_i, s, tm, ts, delta)
    _, minus_a = adjoint_flow(lam_v, -lam_a, s, tm, ta, delta_a)
    return new_v, new_i, -minus_a


@njit(cache=True)
def _e3(x):
    """(expm1(x) - x) / x^2 = integral over v in [0, 1] of (1 - v) e^{x v}; its series below
    |x| = 0.5, where the closed form would cancel (1/2 at x == 0)."""
    if abs(x) >= 0.5:
        return (math.expm1(x) - x) / (x * x)
    term = 0.5
    total = 0.5
    for n in range(1, 18):
        term *= x / (n + 2)
        total += term
    return total


@njit(cache=True)
def _e2(x):
    """(1 + e^x (x - 1)) / x^2 = integral over v in [0, 1] of v e^{x v}; its series below
    |x| = 0.5, where the closed form would cancel (1/2 at x == 0)."""
    if abs(x) >= 0.5:
        return (1.0 + math.exp(x) * (x - 1.0)) / (x * x)
    term = 1.0
    total = 0.5
    for n in range(1, 18):
        term *= x / n
        total += term / (n + 2)
    return total


@njit(cache=True)
def tau_sensitivity_flow(lam_v, lam_i, m_v, m_i, m_s, s, tm, ts, delta):
    """Auxiliary adjoints of the time constants (m_V, m_I, M) a backward time s >= 0 ms
    earlier, without events; ``lam_v``, ``lam_i`` are the adjoint at the later end.

    With the state written as the response to the arrivals (I jumps by w at each), the
    integrals that give the time-constant gradients become sums over arrivals:
    ``dL/dtau_mem = integral of lambda_V dV/dt = sum w m_I``, ``dL/dtau_syn = integral of
    lambda_I dI/dt = -sum w M / tau_syn``, with m_I, M read at each arrival.  (m_V, m_I) is the
    adjoint of the linear functional ``integral of lambda_V (I - V) / tau_mem`` (so m_V is
    zeroed where V is reset or clamped, like lambda_V), M the convolution of lambda_I with
    exp(-s/tau_syn).  Backward in time (x = delta s):

        m_V <- e^{-s/tm} (m_V - lambda_V s / tm)
        m_I <- e^{-s/ts} m_I + e^{-s/tm} ((lambda_V + m_V) phi(s) - lambda_V s^2 e3(x) / tm) / tm
        M   <- e^{-s/ts} (M + s lambda_I) + e^{-s/tm} lambda_V s^2 e2(x) / ts

    with e3(x) = (expm1(x) - x) / x^2 and e2(x) = (1 + e^x (x - 1)) / x^2 (both 1/2 at
    delta == 0).  As in ``flow``, every growing exponential (e^x, phi) multiplies e^{-s/tm}.
    """
    em = math.exp(-s / tm)
    if delta == 0.0:
        phi, es = s, em
    else:
        g = math.expm1(delta * s)
        phi, es = g / delta, em * (1.0 + g)
    x = delta * s
    s2 = s * s
    new_m_v = em * (m_v - lam_v * s / tm)
    new_m_i = es * m_i + em * ((lam_v + m_v) * phi - lam_v * s2 * _e3(x) / tm) / tm
    new_m_s = es * (m_s + s * lam_i) + em * lam_v * s2 * _e2(x) / ts
    return new_m_v, new_m_i, new_m_s


@njit(cache=True)
def extremum(v0, i0, ts, delta):
    """Time s > 0 (ms) of the only extremum of V after (v0, i0), or inf if there is none."""
    if i0 == 0.0:
        return np.inf
    phi_star = ts * (i0 - v0) / i0
    if not phi_star > 0.0:
        return np.inf
    if delta == 0.0:
        return phi_star
    arg = delta * phi_star
    if arg <= -1.0:  # phi(s) < -1/delta for all s when delta < 0
        return np.inf
    return math.log1p(arg) / delta


@njit(cache=True)
def crossing_lower_bound(v0, i0, threshold, tm):
    """A time s >= 0 (ms) before which V cannot reach ``threshold`` (> 0), or inf if it never
    will.  Costs one division: V <= max(V0, I0) for all s (at its peak V = I, and I only
    decays), and a rising V with I > 0 stays below its tangent at s = 0."""
    if v0 >= threshold:
        return 0.0
    if i0 < threshold:
        return np.inf
    return tm * (threshold - v0) / (i0 - v0)


@njit(cache=True)
def _refine_crossing(v0, i0, a0, lo, hi, s, threshold, t0, checked, tm, ts, ta, delta, delta_a):
    """The root of V(s) = ``threshold`` in [lo, hi], on which V (``adapted_flow``; a0 == 0.0:
    ``flow``) rises monotonically from below the threshold to at least it: Halley's method (the
    derivatives cost nothing extra) from s, kept inside the bracket by bisection, until its
    step or the bracket falls below tol, a few units in the last place of t0 + hi (ms).

    A step below ``tol`` means convergence where V is concave and s starts at its tangent
    bound (``first_crossing``).  Near an end of the bracket where dV/ds vanishes (a piece of
    ``first_crossing_adapted``) Halley's steps are tiny anywhere: with ``checked`` such a step
    ends the search only if V changes sign within ``tol`` beyond it, else the bracket shrinks
    to there and bisection goes on."""
    tol = 4.0 * np.finfo(np.float64).eps * (abs(t0) + hi) + 1e-300
    for _ in range(_MAX_ITER):
        v, i, a = adapted_flow(v0, i0, a0, s, tm, ts, ta, delta, delta_a)
        f = v - threshold
        if f == 0.0:
            return s
        if f < 0.0:
            lo = s
        else:
            hi = s
        slope = (i - a - v) / tm
        curvature = (-i / ts + a / ta - slope) / tm
        denom = slope * slope - 0.5 * f * curvature
        step_ok = slope > 0.0 and denom > 0.0
        s_new = s - f * slope / denom if step_ok else lo
        if not (step_ok and lo < s_new < hi):
            s_new = 0.5 * (lo + hi)
        if hi - lo <= tol:
            return s_new
        if abs(s_new - s) <= tol:
            if not checked:
                return s_new
            probe = min(s_new + tol, hi) if f < 0.0 else max(s_new - tol, lo)
            v_probe, _, _ = adapted_flow(v0, i0, a0, probe, tm, ts, ta, delta, delta_a)
            if (v_probe >= threshold) == (f < 0.0):
                return s_new
            if f < 0.0:
                lo = probe
            else:
                hi = probe
            s_new = 0.5 * (lo + hi)
        s = s_new
    return s


@njit(cache=True)
def first_crossing(v0, i0, h, threshold, t0, tm, ts, delta):
    """First s in [0, h] (ms) at which V reaches ``threshold`` (> 0) from below, or inf.

    ``t0`` is the absolute time of s = 0; the root is refined until its step falls below a few
    units in the last place of t0 + s.
    """
    s_lb = crossing_lower_bound(v0, i0, threshold, tm)
    if s_lb == 0.0:
        return 0.0
    if s_lb > h:
        return np.inf
    s_ext = extremum(v0, i0, ts, delta)
    if s_ext < h:
        hi = s_ext
        v_hi = i0 * math.exp(-s_ext / ts)  # V = I at the extremum
    else:
        hi = h
        v_hi, _ = flow(v0, i0, h, tm, ts, delta)
    if v_hi < threshold:
        return np.inf
    # V rises monotonically on [0, hi] from below to at least the threshold: one root, at or
    # after s_lb
    return _refine_crossing(v0, i0, 0.0, 0.0, hi, min(s_lb, hi), threshold, t0, False, tm, ts,
                            ts, delta, delta)  # fmt: skip


@njit(cache=True)
def _slope_zero(v0, i0, a0, lo, hi, q_lo, q_hi, tol, tm, ts, ta, delta, delta_a):
    """The zero of q(s) = tm dV/ds = I - A - V in [lo, hi], where q(lo) = ``q_lo`` and
    q(hi) = ``q_hi`` have opposite signs and q has one zero: the Illinois variant of regula
    falsi, bisecting where it would leave the bracket, to ``tol`` (ms)."""
    side = 0
    for _ in range(_MAX_ITER):
        s = (lo * q_hi - hi * q_lo) / (q_hi - q_lo)
        if not lo < s < hi:
            s = 0.5 * (lo + hi)
        v, i, a = adapted_flow(v0, i0, a0, s, tm, ts, ta, delta, delta_a)
        q = i - a - v
        if q == 0.0 or hi - lo <= tol:
            return s
        if (q > 0.0) == (q_lo > 0.0):
            lo, q_lo = s, q
            if side == -1:
                q_hi *= 0.5
            side = -1
        else:
            hi, q_hi = s, q
            if side == 1:
                q_lo *= 0.5
            side = 1
    return 0.5 * (lo + hi)


@njit(cache=True)
def first_crossing_adapted(v0, i0, a0, h, threshold, t0, tm, ts, ta, delta, delta_a):
    """First s in [0, h] (ms) at which V of the adaptive neuron (``adapted_flow``, adaptation
    current a0 >= 0 at s = 0) reaches ``threshold`` (> 0) from below, or inf; ``t0`` as for
    ``first_crossing``, which this is where a0 == 0.0.

    q(s) = tm dV/ds = I - A - V has the sign of g(s) = q(s) e^{s/tm}, whose derivative
    g'(s) = e^{s/tm} (A(s)/ta - I(s)/ts) vanishes at most once, at
    s* = log((i0/ts) / (a0/ta)) / (1/ts - 1/ta) (never where i0 <= 0 or ts == ta).  So q has
    at most one zero on each of [0, s*] and [s*, h] (found by ``_slope_zero``); these zeros and
    s* cut [0, h] into at most four pieces on which V is monotone.  The crossing lies in the
    first piece whose end value reaches the threshold, and is refined there as in
    ``first_crossing``.  ``crossing_lower_bound`` (of the neuron without adaptation) bounds it
    from below, as V with A >= 0 is at most V without."""
    if a0 == 0.0:
        return first_crossing(v0, i0, h, threshold, t0, tm, ts, delta)
    s_lb = crossing_lower_bound(v0, i0, threshold, tm)
    if s_lb == 0.0:
        return 0.0
    if s_lb > h:
        return np.inf
    tol = 4.0 * np.finfo(np.float64).eps * (abs(t0) + h) + 1e-300
    s_star = np.inf
    if i0 > 0.0 and ts != ta:
        s_star = (math.log(i0 / ts) - math.log(a0 / ta)) / (1.0 / ts - 1.0 / ta)
    # walk the (at most two) pieces [lo, hi] on which g is monotone; ``start`` is where the
    # current piece of monotone V begins, and V(start) < threshold
    start = 0.0
    lo, q_lo = 0.0, i0 - a0 - v0
    for k in range(2):
        hi = s_star if (k == 0 and 0.0 < s_star < h) else h
        if k == 1 and hi == lo:
            break
        v_hi, i, a = adapted_flow(v0, i0, a0, hi, tm, ts, ta, delta, delta_a)
        q_hi = i - a - v_hi
        if (q_lo < 0.0 < q_hi) or (q_hi < 0.0 < q_lo):
            z = _slope_zero(v0, i0, a0, lo, hi, q_lo, q_hi, tol, tm, ts, ta, delta, delta_a)
            v_z, _, _ = adapted_flow(v0, i0, a0, z, tm, ts, ta, delta, delta_a)
            if v_z >= threshold:
                return _refine_crossing(v0, i0, a0, start, z, min(max(s_lb, start), z),
                                        threshold, t0, True, tm, ts, ta, delta, delta_a)
            start = z
        if v_hi >= threshold:
            return _refine_crossing(v0, i0, a0, start, hi, min(max(s_lb, start), hi), threshold,
                                    t0, True, tm, ts, ta, delta, delta_a)  # fmt: skip
        start = hi
        lo, q_lo = hi, q_hi
    return np.inf


@njit(cache=True)
def interval_max(v0, i0, h, tm, ts, delta):
    """Maximum of V over [0, h] after (v0, i0): (value, s at the maximum, MAX_* kind).

    Ties keep the earliest point.
    """
    best, s_best, kind = v0, 0.0, MAX_START
    s_ext = extremum(v0, i0, ts, delta)
    if i0 > 0.0 and s_ext < h:
        v_ext, _ = flow(v0, i0, s_ext, tm, ts, delta)
        if v_ext > best:
            best, s_best, kind = v_ext, s_ext, MAX_INTERIOR
    v_end, _ = flow(v0, i0, h, tm, ts, delta)
    if v_end > best:
        best, s_best, kind = v_end, h, MAX_END
    return best, s_best, kind

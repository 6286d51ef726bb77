"""Closed-form flow of the exact engine against an independent ODE integrator (scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from delayprop.kernels.lif_flow import (
    MAX_END,
    MAX_INTERIOR,
    MAX_START,
    adjoint_flow,
    extremum,
    first_crossing,
    flow,
    interval_max,
)

# (tau_mem, tau_syn): the usual 20/5, the sequence task's 10/5, DelGrad's 2:1, the equal-tau
# limit, nearly equal (cancellation-prone in the textbook form), and tau_syn > tau_mem
TAUS = [(20.0, 5.0), (10.0, 5.0), (2.0, 1.0), (5.0, 5.0), (5.0, 5.0 * (1 + 1e-7)), (3.0, 8.0)]


def _delta(tm, ts):
    return 1.0 / tm - 1.0 / ts


def _ode(tm, ts):
    def rhs(_t, y):
        v, i, lam_v, lam_i = y
        # forward state, and the adjoint integrated in forward time (signs flipped)
        return [(-v + i) / tm, -i / ts, lam_v / tm, (lam_i - lam_v) / ts]

    return rhs


@pytest.mark.parametrize("tm,ts", TAUS)
def test_state_flow_matches_ode(tm, ts):
    rng = np.random.default_rng(0)
    for v0, i0, s in zip(rng.uniform(-1, 1, 5), rng.uniform(-3, 3, 5), rng.uniform(0.1, 40, 5)):
        sol = solve_ivp(_ode(tm, ts), (0, s), [v0, i0, 0, 0], rtol=1e-12, atol=1e-14)
        v, i = flow(v0, i0, s, tm, ts, _delta(tm, ts))
        assert v == pytest.approx(sol.y[0, -1], rel=1e-9, abs=1e-12)
        assert i == pytest.approx(sol.y[1, -1], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("tm,ts", TAUS)
def test_adjoint_flow_matches_ode(tm, ts):
    rng = np.random.default_rng(1)
    for lv, li, s in zip(rng.normal(size=5), rng.normal(size=5), rng.uniform(0.1, 40, 5)):
        # backward in time by s == integrate the adjoint ODE "forward" in s with flipped sign:
        # tau_m dlambda_V/ds = -lambda_V, tau_s dlambda_I/ds = -lambda_I + lambda_V
        def rhs(_s, y):
            return [-y[0] / tm, (-y[1] + y[0]) / ts]

        sol = solve_ivp(rhs, (0, s), [lv, li], rtol=1e-12, atol=1e-14)
        got = adjoint_flow(lv, li, s, tm, ts, _delta(tm, ts))
        assert got[0] == pytest.approx(sol.y[0, -1], rel=1e-9, abs=1e-12)
        assert got[1] == pytest.approx(sol.y[1, -1], rel=1e-9, abs=1e-12)


def _dense(v0, i0, h, tm, ts, n=200_001):
    """V on a fine grid from the textbook form (docs/methods.md) (and its tm == ts limit)."""
    s = np.linspace(0, h, n)
    if tm == ts:
        return s, (v0 + i0 * s / tm) * np.exp(-s / tm)
    return s, v0 * np.exp(-s / tm) + i0 * ts / (ts - tm) * (np.exp(-s / ts) - np.exp(-s / tm))


@pytest.mark.parametrize("tm,ts", TAUS)
def test_extremum_and_interval_max(tm, ts):
    delta = _delta(tm, ts)
    # rising then decaying: a maximum inside
    s_ext = extremum(0.1, 2.0, ts, delta)
    s, v = _dense(0.1, 2.0, 60.0, tm, ts)
    assert s_ext == pytest.approx(s[np.argmax(v)], abs=60.0 / 200_000)
    v_i, i_i = flow(0.1, 2.0, s_ext, tm, ts, delta)
    assert v_i == pytest.approx(i_i, rel=1e-12)  # dV/dt = (I - V)/tm = 0
    val, at, kind = interval_max(0.1, 2.0, 60.0, tm, ts, delta)
    assert kind == MAX_INTERIOR and at == s_ext
    assert 0 <= val - v.max() < 1e-7  # the grid can only miss the peak from below
    # the same, cut before the peak: maximum at the end
    assert interval_max(0.1, 2.0, 0.5 * s_ext, tm, ts, delta)[2] == MAX_END
    # decaying from the start (I < V): no extremum for s > 0, maximum at the start
    assert extremum(0.8, 0.5, ts, delta) == math.inf
    assert interval_max(0.8, 0.5, 30.0, tm, ts, delta)[2] == MAX_START
    # negative current: a minimum inside, the maximum stays at the start
    s_min = extremum(0.3, -2.0, ts, delta)
    s, v = _dense(0.3, -2.0, 60.0, tm, ts)
    assert s_min == pytest.approx(s[np.argmin(v)], abs=60.0 / 200_000)
    assert interval_max(0.3, -2.0, 60.0, tm, ts, delta)[2] == MAX_START


def _ode_crossing(v0, i0, h, threshold, tm, ts):
    def hit(_t, y):
        return y[0] - threshold

    hit.terminal, hit.direction = True, 1
    sol = solve_ivp(_ode(tm, ts), (0, h), [v0, i0, 0, 0], events=hit, rtol=1e-13, atol=1e-15)
    return sol.t_events[0][0] if len(sol.t_events[0]) else math.inf


@pytest.mark.parametrize("tm,ts", TAUS)
def test_first_crossing_matches_ode_event(tm, ts):
    delta = _delta(tm, ts)
    # currents scaled by 5 ms / tau_syn so that every time-constant pair sees similar drive
    for v0, i0 in [(0.0, 2.5), (0.5, 1.2), (-0.5, 4.0), (0.9, 0.95), (0.0, 0.6)]:
        i0 = i0 * 5.0 / ts
        s = first_crossing(v0, i0, 40.0, 1.0, 0.0, tm, ts, delta)
        expect = _ode_crossing(v0, i0, 40.0, 1.0, tm, ts)
        if math.isinf(expect):
            assert math.isinf(s)
        else:
            assert s == pytest.approx(expect, rel=1e-8, abs=1e-9)
            assert abs(flow(v0, i0, s, tm, ts, delta)[0] - 1.0) < 1e-14


def test_first_crossing_edge_cases():
    tm, ts = 20.0, 5.0
    delta = _delta(tm, ts)
    assert first_crossing(0.0, 0.5, 100.0, 1.0, 0.0, tm, ts, delta) == math.inf  # too weak
    assert first_crossing(1.0, 0.0, 100.0, 1.0, 0.0, tm, ts, delta) == 0.0  # already there
    s = first_crossing(0.0, 3.0, 100.0, 1.0, 0.0, tm, ts, delta)
    assert first_crossing(0.0, 3.0, 0.9 * s, 1.0, 0.0, tm, ts, delta) == math.inf  # too late
    # a peak barely above threshold: the root is still found to machine precision
    s_ext = extremum(0.0, 3.0, ts, delta)
    peak = flow(0.0, 3.0, s_ext, tm, ts, delta)[0]
    s = first_crossing(0.0, 3.0, 100.0, peak * (1 - 1e-12), 0.0, tm, ts, delta)
    assert s < s_ext
    assert flow(0.0, 3.0, s, tm, ts, delta)[0] == pytest.approx(peak * (1 - 1e-12), rel=1e-15)

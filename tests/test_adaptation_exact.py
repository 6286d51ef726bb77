"""Adaptive LIF neurons on the exact engine (``ExactSettings.tau_adapt``, ``lif(adaptation=b)``):
the threshold root finder against dense sampling, spike times against an independent dense
simulation, b = 0 against the plain neuron (bit for bit), adjoint gradients (weights, delays,
input times and b) against central finite differences, and the argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact, losses
from delayprop.kernels.formulas import rate_difference
from delayprop.kernels.lif_flow import first_crossing, first_crossing_adapted
from delayprop.verify import check_gradients
from problems import random_spikes

F64 = torch.float64
RTOL = 1e-5


# ----------------------------------------------------------------------------- root finder
def _textbook_v(s, v0, i0, a0, tm, ts, ta):
    """V(s) of the adaptive neuron from the textbook sum of exponentials (limit forms at equal
    time constants), independent of ``kernels.lif_flow``."""

    def kernel(tau):  # response of V to a unit current decaying with tau
        if tau == tm:
            return s / tm * np.exp(-s / tm)
        return tau / (tau - tm) * (np.exp(-s / tau) - np.exp(-s / tm))

    return v0 * np.exp(-s / tm) + i0 * kernel(ts) - a0 * kernel(ta)


def _crossing_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    taus = [2.0, 5.0, 10.0, 20.0, 50.0]
    for k in range(n):
        tm, ts, ta = rng.choice(taus, 3)
        if k % 5 == 0:
            ta = ts
        elif k % 5 == 1:
            ts = tm
        elif k % 5 == 2:
            ta = tm
        yield (float(tm), float(ts), float(ta), rng.uniform(-1.0, 0.9), rng.uniform(-1.0, 6.0),
               rng.exponential(3.0) if k % 3 else rng.uniform(5.0, 40.0), k)  # fmt: skip


def test_first_crossing_adapted_matches_dense_sampling():
    """Random states (A small and large, all orderings of the time constants, equal ones) on
    [0, 30] ms; every other threshold sits 1e-7 (relative) below or above the sampled maximum,
    a near-tangential crossing or a near miss."""
    h = 30.0
    s = np.linspace(0.0, h, 300_001)
    ds = s[1]
    found = tangential = 0
    for tm, ts, ta, v0, i0, a0, k in _crossing_cases(400, seed=0):
        v = _textbook_v(s, v0, i0, a0, tm, ts, ta)
        theta = 1.0
        if k % 2:
            peak = float(v.max())
            if peak <= max(v0, 0.0) + 1e-3:
                continue
            theta = peak * (1.0 - 1e-7 if k % 4 == 1 else 1.0 + 1e-7)
            tangential += 1
        got = first_crossing_adapted(v0, i0, a0, h, theta, 3.0, tm, ts, ta,
                                     rate_difference(tm, ts), rate_difference(tm, ta))  # fmt: skip
        above = np.flatnonzero(v >= theta)
        if above.size == 0:
            assert got == math.inf, (tm, ts, ta, v0, i0, a0, theta, got)
            continue
        found += 1
        first = s[above[0]]
        assert first - ds <= got <= first + 1e-9, (tm, ts, ta, v0, i0, a0, theta, got, first)
        v_got = _textbook_v(np.array([got]), v0, i0, a0, tm, ts, ta)[0]
        assert abs(v_got - theta) <= 1e-12 * max(1.0, abs(i0) + a0)
    assert found >= 50 and tangential >= 50, (found, tangential)


def test_first_crossing_adapted_second_rise():
    """V first falls (A decays faster than I), then rises through the threshold: the crossing
    lies in the second monotone piece, past a minimum the lower bound cannot see."""
    tm, ts, ta = 10.0, 20.0, 2.0
    v0, i0, a0 = 0.5, 2.5, 6.0
    s = np.linspace(0.0, 40.0, 400_001)
    v = _textbook_v(s, v0, i0, a0, tm, ts, ta)
    assert v[1] < v0 and v.max() > 1.0
    got = first_crossing_adapted(v0, i0, a0, 40.0, 1.0, 0.0, tm, ts, ta,
                                 rate_difference(tm, ts), rate_difference(tm, ta))  # fmt: skip
    first = s[np.flatnonzero(v >= 1.0)[0]]
    assert first - s[1] <= got <= first


def test_first_crossing_adapted_without_adaptation_is_first_crossing():
    rng = np.random.default_rng(1)
    for _ in range(200):
        v0, i0 = rng.uniform(-1.0, 0.9), rng.uniform(-1.0, 4.0)
        d = rate_difference(20.0, 5.0)
        a = first_crossing(v0, i0, 30.0, 1.0, 7.0, 20.0, 5.0, d)
        b = first_crossing_adapted(v0, i0, 0.0, 30.0, 1.0, 7.0, 20.0, 5.0, 50.0, d,
                                   rate_difference(20.0, 50.0))  # fmt: skip
        assert a == b or (math.isinf(a) and math.isinf(b))


# ----------------------------------------------------------------------------- dense simulation
def _dense_spikes(arrivals, duration, tm, ts, ta, b, theta, t_ref, h=1e-4):
    """Spike times of one adaptive neuron by RK4 steps of ``h`` ms in float64 (arrivals
    ``[(t, w)]`` at their exact times; each crossing located by bisection on RK4 sub-steps)."""

    def rk4(v, i, a, dt, hold):
        def f(v, i, a):
            return (0.0 if hold else (-v + i - a) / tm), -i / ts, -a / ta

        k1 = f(v, i, a)
        k2 = f(v + 0.5 * dt * k1[0], i + 0.5 * dt * k1[1], a + 0.5 * dt * k1[2])
        k3 = f(v + 0.5 * dt * k2[0], i + 0.5 * dt * k2[1], a + 0.5 * dt * k2[2])
        k4 = f(v + dt * k3[0], i + dt * k3[1], a + dt * k3[2])
        return tuple(x + dt / 6.0 * (p + 2.0 * q + 2.0 * r + u)
                     for x, p, q, r, u in zip((v, i, a), k1, k2, k3, k4, strict=True))  # fmt: skip

    arrivals = sorted(arrivals)
    t = v = i = a = 0.0
    hold_until = -1.0
    k = 0
    spikes = []
    while t < duration:
        while k < len(arrivals) and arrivals[k][0] <= t:
            i += arrivals[k][1]
            k += 1
        t_next = min(t + h, duration, arrivals[k][0] if k < len(arrivals) else math.inf)
        hold = t < hold_until
        if hold:
            t_next = min(t_next, hold_until)
        nv, ni, na = rk4(v, i, a, t_next - t, hold)
        if not hold and nv >= theta:
            lo, hi = 0.0, t_next - t
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                if rk4(v, i, a, mid, False)[0] >= theta:
                    hi = mid
                else:
                    lo = mid
            _, i, a = rk4(v, i, a, hi, False)
            t += hi
            spikes.append(t)
            v, a = 0.0, a + b
            hold_until = t + t_ref if t_ref > 0 else -1.0
            continue
        v, i, a, t = nv, ni, na, t_next
    return np.array(spikes)


@pytest.mark.parametrize("tm,ts,ta,t_ref", [(10.0, 5.0, 30.0, 0.0), (5.0, 5.0, 5.0, 0.0),
                                            (20.0, 5.0, 5.0, 1.5), (10.0, 20.0, 3.0, 0.0)])
def test_single_neuron_matches_dense_simulation(tm, ts, ta, t_ref):
    duration = 30.0
    rng = np.random.default_rng(4)
    n_in = 12
    times = np.sort(rng.uniform(0.0, 18.0, n_in))
    w = rng.normal(1.4, 0.8, n_in) * (1.0 + 4.0 * (ts < tm))
    d = rng.uniform(0.0, 5.0, n_in)
    b = 0.6
    x = dp.Spikes.from_lists([(times, np.arange(n_in))], n_in, duration, dtype=F64)
    s = exact.ExactSettings(tm, ts, duration=duration, refractory=t_ref, tau_adapt=ta)
    out = exact.lif(x, torch.from_numpy(w)[None], torch.from_numpy(d)[None], s,
                    adaptation=torch.tensor([b], dtype=F64))  # fmt: skip
    ref = _dense_spikes(list(zip(times + d, w, strict=True)), duration, tm, ts, ta, b, 1.0, t_ref)
    plain = exact.lif(x, torch.from_numpy(w)[None], torch.from_numpy(d)[None],
                      exact.ExactSettings(tm, ts, duration=duration, refractory=t_ref))
    assert len(ref) >= 3  # several spikes, which adaptation delays
    assert plain.n_spikes > len(ref) or float((plain.times.numpy() - ref).min()) < -0.1
    assert out.n_spikes == len(ref)
    np.testing.assert_allclose(out.times.numpy(), ref, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- b = 0
def test_zero_jump_is_the_plain_neuron_bit_for_bit():
    rng = np.random.default_rng(2)
    x = random_spikes(2, 5, 40.0, 12, seed=3).requires_grad_()
    w = torch.from_numpy(rng.normal(2.5, 1.5, (6, 5))).requires_grad_()
    d = torch.from_numpy(rng.uniform(0.0, 8.0, (6, 5))).requires_grad_()
    w_rec = torch.from_numpy(rng.normal(0.0, 1.0, (6, 6))).requires_grad_()
    d_rec = torch.from_numpy(rng.uniform(0.0, 4.0, (6, 6))).requires_grad_()
    params = [x.times, w, d, w_rec, d_rec]
    results = []
    for adaptive in (False, True):
        s = exact.ExactSettings(20.0, 5.0, refractory=1.0, tau_adapt=40.0 if adaptive else None)
        b = torch.zeros(6, dtype=F64, requires_grad=True) if adaptive else None
        out = exact.lif(x, w, d, s, w_rec, d_rec, adaptation=b)
        torch.cos(0.3 * out.times).sum().backward()
        results.append([out.times.detach(), out.units, out.offsets]
                       + [p.grad.clone() for p in params])  # fmt: skip
        for p in params:
            p.grad = None
    assert results[0][0].numel() >= 20
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- gradients
def _param(data) -> torch.Tensor:
    return torch.as_tensor(data, dtype=F64).clone().requires_grad_()


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time, independent of the spike order."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _check(loss_fn, inputs, lower_bounds=None):
    """Up to 12 random entries per tensor; perturbations that change a spike count are skipped
    (``check_gradients`` compares the counts of every spike batch the loss returns).  Step
    1e-5: these busy networks have events that change order (not count) within 2e-4 of some
    parameters, where the loss has a kink."""
    report = check_gradients(loss_fn, inputs, eps=1e-5, max_entries=12,
                             lower_bounds=lower_bounds or {})  # fmt: skip
    report.assert_ok(rtol=RTOL, min_checked=3)
    assert report.skipped <= 0.1 * (report.checked + report.skipped), str(report)
    return report


@pytest.mark.parametrize("tm,ts,ta,t_ref,w1_mean,w2_mean", [
    (20.0, 5.0, 30.0, 0.0, 4.0, 2.5), (5.0, 5.0, 5.0, 0.0, 2.0, 0.6),
    (10.0, 5.0, 10.0, 2.0, 4.0, 2.5),
])  # fmt: skip
def test_feed_forward_two_layers(tm, ts, ta, t_ref, w1_mean, w2_mean):
    """Two adaptive LIF layers, mixed-sign weights, several spikes per neuron; sum of squared
    output spike times plus a smooth loss on the hidden spikes."""
    duration = 40.0
    rng = np.random.default_rng(0)
    x = random_spikes(2, 6, duration, 12, seed=1).requires_grad_()
    w1 = _param(rng.normal(w1_mean, 2.5, (7, 6)))
    d1 = _param(rng.uniform(0.0, 12.0, (7, 6)))
    b1 = _param(rng.uniform(0.2, 1.0, 7))
    w2 = _param(rng.normal(w2_mean, 2.0, (3, 7)))
    d2 = _param(rng.uniform(0.0, 6.0, (3, 7)))
    b2 = _param(rng.uniform(0.2, 1.0, 3))
    s = exact.ExactSettings(tm, ts, refractory=t_ref, tau_adapt=ta)

    def loss():
        h = exact.lif(x, w1, d1, s, adaptation=b1)
        out = exact.lif(h, w2, d2, s, adaptation=b2)
        return (out.times**2).sum() + _spike_loss(h, 3), h, out

    _, h, out = loss()
    assert int(h.counts_per_unit().max()) >= 4 and out.n_spikes >= 6
    assert bool((w1 < 0).any()) and bool((w2 < 0).any())
    _check(loss, {"w1": w1, "d1": d1, "b1": b1, "w2": w2, "d2": d2, "b2": b2,
                  "input times": x.times})  # fmt: skip


@pytest.mark.parametrize("t_ref,max_spikes", [(0.0, None), (1.5, 3)])
def test_recurrent_layer_first_spike_loss(t_ref, max_spikes):
    """Adaptive recurrent layer (zero and positive recurrent delays) -> adaptive output layer
    (silenced after ``max_spikes``); a time-invariant first-spike loss on the output (its first
    spikes do not depend on b2) and smooth losses on all output and hidden spikes."""
    duration = 50.0
    rng = np.random.default_rng(5)
    x = random_spikes(2, 5, duration, 10, seed=6).requires_grad_()
    w = _param(rng.normal(3.0, 1.5, (6, 5)))
    d = _param(rng.uniform(0.0, 10.0, (6, 5)))
    d_rec0 = rng.uniform(0.0, 6.0, (6, 6))
    d_rec0[rng.random((6, 6)) < 0.3] = 0.0
    w_rec = _param(rng.normal(0.0, 1.0, (6, 6)))
    d_rec = _param(d_rec0)
    b = _param(rng.uniform(0.1, 0.8, 6))
    w2 = _param(rng.normal(2.0, 1.5, (3, 6)))
    b2 = _param(rng.uniform(0.1, 0.8, 3))
    s = exact.ExactSettings(20.0, 5.0, refractory=t_ref, tau_adapt=25.0)
    s_out = exact.ExactSettings(20.0, 5.0, refractory=t_ref, tau_adapt=25.0,
                                max_spikes=max_spikes)  # fmt: skip
    labels = torch.tensor([1, 2])

    def loss():
        h = exact.lif(x, w, d, s, w_rec, d_rec, adaptation=b)
        out = exact.lif(h, w2, None, s_out, adaptation=b2)
        t_first = losses.first_spike_times(out)
        return (losses.time_invariant_mse(t_first, labels) + _spike_loss(out, 8)
                + _spike_loss(h, 7), h, out)

    _, h, out = loss()
    assert int(h.counts_per_unit().max()) >= 4 and out.n_spikes >= 4
    if max_spikes is not None:
        assert int(out.counts_per_unit().max()) == max_spikes
    _check(loss, {"w": w, "d": d, "w_rec": w_rec, "d_rec": d_rec, "b": b, "w2": w2, "b2": b2,
                  "input times": x.times}, lower_bounds={"d_rec": 0.0})  # fmt: skip


# ----------------------------------------------------------------------------- errors
def test_argument_errors():
    x = random_spikes(1, 3, 20.0, 4, seed=0)
    w = torch.ones(2, 3, dtype=F64)
    b = torch.full((2,), 0.5, dtype=F64)
    s = exact.ExactSettings(10.0, 5.0, tau_adapt=20.0)
    with pytest.raises(ValueError, match="tau_adapt is None"):
        exact.lif(x, w, None, exact.ExactSettings(10.0, 5.0), adaptation=b)
    with pytest.raises(ValueError, match="needs the adaptation jumps"):
        exact.lif(x, w, None, s)
    with pytest.raises(ValueError, match=r"adaptation must be \[2\]"):
        exact.lif(x, w, None, s, adaptation=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=">= 0"):
        exact.lif(x, w, None, s, adaptation=torch.tensor([0.5, -0.1], dtype=F64))
    with pytest.raises(ValueError, match="adaptation"):
        exact.lif(x, w, None, s, adaptation=torch.tensor([0.5, math.nan], dtype=F64))
    with pytest.raises(ValueError, match="timing"):
        exact.lif(x, w, None, exact.ExactSettings(10.0, 5.0, tau_adapt=20.0, backward="timing"),
                  adaptation=b)  # fmt: skip
    taus = torch.tensor([10.0, 5.0], dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="time constants"):
        exact.lif(x, w, None, s, time_constants=taus, adaptation=b)
    out = exact.lif(x, w, None, s, time_constants=taus.detach(), adaptation=b)  # no gradient: ok
    assert out.n_units == 2
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="tau_adapt"):
            exact.ExactSettings(10.0, 5.0, tau_adapt=bad)
    readout = exact.ExactSettings(10.0, 5.0, threshold=math.inf, sample_dt=1.0, tau_adapt=20.0)
    with pytest.raises(ValueError, match="no adaptation"):
        exact.li_readout(x, w, None, readout)
    with pytest.raises(ValueError, match="no adaptation"):
        exact.li_peak(x, w, None, readout)

"""Exact engine against closed forms: single neurons, a lone strong input, time-shift invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import lambertw

import delayprop as dp
from delayprop import exact, losses

F64 = torch.float64


def _one_input(t_in: float, duration: float = 40.0) -> dp.Spikes:
    x = dp.Spikes.from_lists([([t_in], [0])], 1, duration, dtype=F64)
    return x.requires_grad_()


def _params(*values: float) -> list[torch.Tensor]:
    return [torch.tensor([[v]], dtype=F64, requires_grad=True) for v in values]


def _spike_time_grads(tau_mem, tau_syn, w0, d0, t_in):
    x = _one_input(t_in)
    w, d = _params(w0, d0)
    out = exact.lif(x, w, d, exact.ExactSettings(tau_mem, tau_syn, max_spikes=1))
    assert out.n_spikes == 1
    out.times.sum().backward()
    return float(out.times.detach()), float(w.grad), float(d.grad), float(x.times.grad)


@pytest.mark.parametrize("w0,d0,t_in", [(5.0, 3.0, 2.0), (12.0, 0.0, 7.5), (4.2, 11.3, 0.0)])
def test_single_input_tau_mem_twice_tau_syn(w0, d0, t_in):
    """tau_mem = 2 tau_syn: V = w (x - x^2), x = exp(-s/tau_mem), so the spike time is
    t_in + d - tau_mem log((1 + sqrt(1 - 4 theta / w)) / 2) (theta = 1)."""
    tm, ts = 10.0, 5.0
    t, gw, gd, gt = _spike_time_grads(tm, ts, w0, d0, t_in)
    w, d, ti = (torch.tensor(v, dtype=F64, requires_grad=True) for v in (w0, d0, t_in))
    t_closed = ti + d - tm * torch.log((1 + torch.sqrt(1 - 4 / w)) / 2)
    t_closed.backward()
    assert t == pytest.approx(float(t_closed.detach()), abs=1e-12)
    assert gw == pytest.approx(float(w.grad), rel=1e-10)
    assert gd == pytest.approx(float(d.grad), rel=1e-12)
    assert gt == pytest.approx(float(ti.grad), rel=1e-12)


@pytest.mark.parametrize("w0", [3.0, 8.0, 40.0])
def test_single_input_equal_time_constants(w0):
    """tau_mem = tau_syn = tau: V = w (s/tau) exp(-s/tau), the spike at s = -tau W0(-theta/w);
    dt/dw = -tau W'(z) dz/dw with W'(z) = W / (z (1 + W)), z = -theta/w."""
    tau = 5.0
    t, gw, gd, gt = _spike_time_grads(tau, tau, w0, 1.5, 2.0)
    z = -1.0 / w0
    wz = lambertw(z, 0).real
    assert t == pytest.approx(2.0 + 1.5 - tau * wz, abs=1e-12)
    assert gw == pytest.approx(-tau * wz / (z * (1 + wz)) * (1.0 / w0**2), rel=1e-9)
    assert gd == pytest.approx(1.0, abs=1e-12) and gt == pytest.approx(1.0, abs=1e-12)


def test_single_input_implicit_derivative_20_5():
    """tau_mem = 20, tau_syn = 5: dt/dw = -(dV/dw)/(dV/dt) = -theta tau_mem / (w (I - theta))
    at the spike, with V from the textbook form (docs/methods.md) equal to theta there."""
    tm, ts, w0, d0, t_in = 20.0, 5.0, 9.0, 2.0, 1.0
    t, gw, gd, _ = _spike_time_grads(tm, ts, w0, d0, t_in)
    s = t - t_in - d0
    v = w0 * ts / (ts - tm) * (math.exp(-s / ts) - math.exp(-s / tm))
    assert v == pytest.approx(1.0, abs=1e-13)
    current = w0 * math.exp(-s / ts)
    assert gw == pytest.approx(-tm / (w0 * (current - 1.0)), rel=1e-10)
    assert abs(gd - 1.0) < 1e-14


def test_lone_strong_input_delay_derivative_is_one():
    """A strong input that arrives alone makes the first spike; weaker inputs arrive after it.
    The spike time moves one-for-one with that input's delay and time, and not at all with the
    late inputs' weights and delays."""
    x = dp.Spikes.from_lists([([1.0, 2.0, 3.0], [0, 1, 2])], 3, 60.0, dtype=F64)
    x.requires_grad_()
    w = torch.tensor([[12.0, 3.0, -0.4]], dtype=F64, requires_grad=True)
    d = torch.tensor([[0.5, 9.0, 12.0]], dtype=F64, requires_grad=True)
    out = exact.lif(x, w, d, exact.ExactSettings(20.0, 5.0))
    assert out.n_spikes >= 2  # later spikes exist but do not enter the loss below
    out.times[0].backward()
    assert float(out.times[0].detach()) < 2.0 + 9.0  # before the weak inputs arrive
    assert abs(d.grad[0, 0].item() - 1.0) < 1e-14
    assert abs(x.times.grad[0].item() - 1.0) < 1e-14
    assert d.grad[0, 1:].abs().max().item() == 0.0
    assert w.grad[0, 1:].abs().max().item() == 0.0
    assert x.times.grad[1:].abs().max().item() == 0.0


def test_li_readout_single_input_closed_form():
    """V(t) = w tau_s/(tau_s - tau_m) (e^{-(t-a)/tau_s} - e^{-(t-a)/tau_m}) after the arrival a;
    the gradient of a weighted sum of samples equals torch autograd through that formula."""
    tm, ts, sample_dt, T = 20.0, 5.0, 0.5, 40.0
    x = _one_input(3.3, T)
    w, d = _params(1.7, 4.45)
    v = exact.li_readout(x, w, d, exact.ExactSettings(tm, ts, math.inf, sample_dt=sample_dt))
    n = int(T / sample_dt)
    assert v.shape == (1, n, 1) and v.dtype == F64
    coef = torch.linspace(-1, 2, n, dtype=F64)
    (v[0, :, 0] * coef).sum().backward()

    wc, dc, tc = (torch.tensor(val, dtype=F64, requires_grad=True) for val in (1.7, 4.45, 3.3))
    t = torch.arange(n, dtype=F64) * sample_dt
    s = (t - tc - dc).clamp(min=0)
    closed = wc * ts / (ts - tm) * (torch.exp(-s / ts) - torch.exp(-s / tm))
    (closed * coef).sum().backward()
    assert torch.allclose(v[0, :, 0].detach(), closed.detach(), rtol=1e-12, atol=1e-14)
    assert float(w.grad) == pytest.approx(float(wc.grad), rel=1e-12)
    assert float(d.grad) == pytest.approx(float(dc.grad), rel=1e-12)
    assert float(x.times.grad) == pytest.approx(float(tc.grad), rel=1e-12)


def test_li_peak_single_input_closed_form():
    """The peak of one PSP lies tau_m tau_s ln(tau_m/tau_s) / (tau_m - tau_s) after the arrival:
    it moves one-for-one with the delay and scales with the weight."""
    tm, ts = 20.0, 5.0
    x = _one_input(2.0)
    w, d = _params(1.3, 6.0)
    v_max, t_max = exact.li_peak(x, w, d, exact.ExactSettings(tm, ts, math.inf))
    s_star = tm * ts * math.log(tm / ts) / (tm - ts)
    k = ts / (ts - tm) * (math.exp(-s_star / ts) - math.exp(-s_star / tm))
    assert float(t_max.detach()) == pytest.approx(8.0 + s_star, abs=1e-12)
    assert float(v_max.detach()) == pytest.approx(1.3 * k, rel=1e-13)
    gw_t, gd_t = torch.autograd.grad(t_max.sum(), [w, d], retain_graph=True)
    assert abs(float(gw_t)) < 1e-12 and float(gd_t) == pytest.approx(1.0, abs=1e-12)
    gw_v, gd_v = torch.autograd.grad(v_max.sum(), [w, d])
    assert float(gw_v) == pytest.approx(k, rel=1e-12) and abs(float(gd_v)) < 1e-12


def _shifted(trains, shift, n_units, duration):
    moved = [(np.asarray(t) + shift, u) for t, u in trains]
    return dp.Spikes.from_lists(moved, n_units, duration + shift, dtype=F64).requires_grad_()


def test_time_shift_invariance():
    """Shifting every input and the window by c leaves a time-invariant loss, all weight and
    delay gradients and the readout peak unchanged; so the input-time gradients sum to zero."""
    torch.manual_seed(3)
    hidden = dp.LIF(5, 12, dt=None, max_delay=6.0, delay_init=(0.0, 6.0),
                    weight_init=dp.Normal(2.0, 1.5), recurrent=True, rec_max_delay=2.0,
                    rec_delay_init=(0.0, 2.0), rec_weight_init=dp.Normal(0.0, 0.5))  # fmt: skip
    out = dp.LIF(12, 3, dt=None, weight_init=dp.Normal(1.5, 1.0))
    readout = dp.LIReadout(12, 2, dt=None, max_delay=4.0, delay_init=(0.0, 4.0),
                           weight_init=dp.Normal(0.3, 0.5))  # fmt: skip
    rng = np.random.default_rng(4)
    trains = [(rng.uniform(0, 15, 8), rng.integers(0, 5, 8)) for _ in range(3)]
    labels = torch.tensor([0, 2, 1])
    params = list(hidden.parameters()) + list(out.parameters()) + list(readout.parameters())

    def run(shift):
        x = _shifted(trains, shift, 5, 45.0)
        h = hidden(x)
        t_first = losses.first_spike_times(out(h))
        v_max, t_max = readout.max_over_time(h)
        loss = losses.time_invariant_mse(t_first, labels) + (v_max**2).sum()
        grads = torch.autograd.grad(loss, params + [x.times])
        per_sample = torch.zeros(3, dtype=F64).index_add_(0, x.samples.long(), grads[-1])
        return loss, grads, v_max, t_max, h.counts_per_unit(), t_first, per_sample

    loss0, g0, v0, t0, c0, first0, sum0 = run(0.0)
    assert int(c0.sum()) > 3 * 12 and float(v0.detach().min()) > 0
    assert float(first0.detach().max()) < 40.0  # every output spikes (no "no spike" placeholder)
    loss1, g1, v1, t1, c1, _, _ = run(7.25)
    assert torch.equal(c0, c1)
    assert float(loss1.detach()) == pytest.approx(float(loss0.detach()), rel=1e-12)
    for a, b in zip(g0[:-1], g1[:-1], strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert torch.allclose(g0[-1], g1[-1], rtol=1e-9, atol=1e-12)
    assert float(sum0.abs().max()) < 1e-10 * float(g0[-1].abs().sum())
    assert torch.allclose(v0.detach(), v1.detach(), rtol=1e-12)
    assert torch.allclose((t1 - t0).detach(), torch.full_like(t0, 7.25))

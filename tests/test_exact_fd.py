"""Exact engine: adjoint gradients == central finite differences on random small networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact, losses
from delayprop.verify import check_gradients

F64 = torch.float64
RTOL = 1e-5


def _inputs(batch, n_in, duration, per_sample, seed) -> dp.Spikes:
    rng = np.random.default_rng(seed)
    trains = [(rng.uniform(0, 0.7 * duration, per_sample), rng.integers(0, n_in, per_sample))
              for _ in range(batch)]  # fmt: skip
    return dp.Spikes.from_lists(trains, n_in, duration, dtype=F64).requires_grad_()


def _param(data) -> torch.Tensor:
    return torch.as_tensor(data, dtype=F64).clone().requires_grad_()


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time, independent of the spike order."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _check(loss_fn, inputs, *, bounds=(), min_checked=5, limits=None):
    """Check up to 12 random entries per tensor (or as ``limits`` says per name)."""
    limits = {name: 12 for name in inputs} | (limits or {})
    report = check_gradients(loss_fn, inputs, lower_bounds={b: 0.0 for b in bounds},
                             max_entries=limits)  # fmt: skip
    report.assert_ok(rtol=RTOL, min_checked=min_checked)
    assert report.skipped <= 0.1 * (report.checked + report.skipped), str(report)
    return report


@pytest.mark.parametrize("tau_mem,tau_syn,w_mean", [(20.0, 5.0, 5.0), (5.0, 5.0, 1.5)])
def test_feed_forward_two_layers(tau_mem, tau_syn, w_mean):
    """Two LIF layers, several spikes per neuron, delays spread over and beyond the trial."""
    duration = 40.0
    rng = np.random.default_rng(0)
    x = _inputs(2, 6, duration, 10, seed=1)
    w1 = _param(rng.normal(w_mean, 1.5, (8, 6)))
    d1 = _param(rng.uniform(0.0, 1.5 * duration, (8, 6)))  # some arrivals after the trial
    w2 = _param(rng.normal(0.5 * w_mean, 1.5, (3, 8)))
    d2 = _param(rng.uniform(0.0, 10.0, (3, 8)))
    s = exact.ExactSettings(tau_mem, tau_syn)

    def loss():
        h = exact.lif(x, w1, d1, s)
        out = exact.lif(h, w2, d2, s)
        return _spike_loss(out, 2) + _spike_loss(h, 3), h, out

    _, h, out = loss()
    assert h.n_spikes >= 2 * 8 * 2 and out.n_spikes >= 2 * 3
    assert int(h.counts_per_unit().max()) >= 5  # several spikes per neuron
    late = d1.detach() > duration  # every arrival of these synapses falls after the trial
    assert int(late.sum()) >= 5
    _check(loss, {"w1": w1, "d1": d1, "w2": w2, "d2": d2, "input times": x.times})
    assert float(d1.grad[late].abs().max()) == 0.0 and float(w1.grad[late].abs().max()) == 0.0


def test_recurrent_with_zero_and_positive_delays():
    """ff + recurrent LIF layer: recurrent delays include exact zeros (arrival at the spike
    time, after the reset) and values up to 8 ms; then a readout layer."""
    rng = np.random.default_rng(5)
    x = _inputs(2, 5, 50.0, 8, seed=6)
    w = _param(rng.normal(3.0, 1.0, (7, 5)))
    d = _param(rng.uniform(0.0, 10.0, (7, 5)))
    d_rec0 = rng.uniform(0.0, 8.0, (7, 7))
    d_rec0[rng.random((7, 7)) < 0.4] = 0.0
    w_rec = _param(rng.normal(0.0, 0.8, (7, 7)))
    d_rec = _param(d_rec0)
    w_out = _param(rng.normal(0.5, 0.5, (2, 7)))
    s = exact.ExactSettings(20.0, 5.0)
    readout = exact.ExactSettings(20.0, 5.0, math.inf, sample_dt=0.7)

    def loss():
        h = exact.lif(x, w, d, s, w_rec, d_rec)
        v = exact.li_readout(h, w_out, None, readout)
        scores = losses.readout(v, "exp_mean")
        return losses.cross_entropy(scores, torch.tensor([1, 0])) + _spike_loss(h, 7), h

    _, h = loss()
    assert h.n_spikes >= 2 * 7 * 2
    inputs = {"w": w, "d": d, "w_rec": w_rec, "d_rec": d_rec, "w_out": w_out,
              "input times": x.times}  # fmt: skip
    report = _check(loss, inputs, bounds=["d_rec"], limits={"d_rec": 24})
    zero = np.flatnonzero(d_rec0.reshape(-1) == 0)
    assert np.isin(zero, report["d_rec"].indices).sum() >= 6  # zero delays among those checked


def test_refractory_and_spike_limit():
    rng = np.random.default_rng(8)
    x = _inputs(2, 4, 40.0, 8, seed=9)
    w = _param(rng.normal(4.0, 1.0, (6, 4)))
    d = _param(rng.uniform(0.0, 6.0, (6, 4)))
    w_rec = _param(rng.normal(0.5, 0.5, (6, 6)))
    d_rec = _param(rng.uniform(0.0, 3.0, (6, 6)))
    w2 = _param(rng.normal(3.0, 1.0, (3, 6)))
    hidden = exact.ExactSettings(20.0, 5.0, refractory=2.5)
    first = exact.ExactSettings(20.0, 5.0, max_spikes=1)

    def loss():
        h = exact.lif(x, w, d, hidden, w_rec, d_rec)
        out = exact.lif(h, w2, None, first)
        return _spike_loss(out, 10) + _spike_loss(h, 11), h, out

    _, h, out = loss()
    assert int(out.counts_per_unit().max()) == 1 and out.n_spikes >= 4
    assert int(h.counts_per_unit().max()) >= 3
    _check(loss, {"w": w, "d": d, "w_rec": w_rec, "d_rec": d_rec, "w2": w2,
                  "input times": x.times})  # fmt: skip


def test_li_peak_value_and_time_with_kinks():
    """Readout peaks: smooth maxima and maxima on arrivals of negative weights."""
    rng = np.random.default_rng(15)
    x = _inputs(3, 6, 30.0, 10, seed=13)
    w = _param(rng.normal(0.0, 1.5, (4, 6)))
    d = _param(rng.uniform(0.0, 8.0, (4, 6)))
    s = exact.ExactSettings(20.0, 5.0, math.inf)
    a, b = torch.from_numpy(rng.normal(size=(2, 3, 4)))

    def loss():
        v_max, t_max = exact.li_peak(x, w, d, s)
        return (a * v_max).sum() + (b * torch.sin(0.2 * t_max)).sum()

    _, t_max = exact.li_peak(x, w, d, s)
    arrivals = x.times.detach()[:, None] + d.detach()[:, x.units.long()].t()  # [spikes, n_out]
    on_arrival = torch.stack([
        (arrivals[x.samples == b] == t_max[b].detach()).any(dim=0) for b in range(3)
    ])  # fmt: skip
    inside = (t_max > 0) & (t_max < 30.0)
    assert int(on_arrival.sum()) >= 2 and int((inside & ~on_arrival).sum()) >= 2
    _check(loss, {"w": w, "d": d, "input times": x.times})


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself can fail: a gradient off by 0.1 % is reported."""

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            return g * 1.001

    rng = np.random.default_rng(14)
    x = _inputs(1, 3, 30.0, 5, seed=15)
    w = _param(rng.normal(4.0, 1.0, (4, 3)))
    s = exact.ExactSettings(20.0, 5.0)

    def loss():
        out = exact.lif(x, w, None, s)
        return (Scaled.apply(out.times) ** 2).sum(), out

    report = check_gradients(loss, {"w": w})
    assert report.checked == 12 and report.max_rel_error > 5e-4
    with pytest.raises(AssertionError, match="relative error"):
        report.assert_ok(rtol=RTOL)


def test_gradcheck_validates_and_reports():
    w = torch.ones(2, 2, dtype=torch.float32, requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        check_gradients(lambda: w.sum(), {"w": w})
    v = torch.ones(2, dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        check_gradients(lambda: v.sum(), {"v": v * 2})
    with pytest.raises(ValueError, match="unknown"):
        check_gradients(lambda: v.sum(), {"v": v}, lower_bounds={"u": 0.0})
    report = check_gradients(lambda: (v**3).sum(), {"v": v})
    report.assert_ok()
    assert "checked    2" in str(report) and report.skipped == 0
    zero = torch.zeros(2, dtype=F64, requires_grad=True)
    with pytest.raises(AssertionError, match="identically zero"):
        check_gradients(lambda: (zero * 0).sum(), {"zero": zero}).assert_ok()

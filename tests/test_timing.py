"""Timing-based multi-spike backprop (exact/timing.py) == the EventProp adjoint of the exact
engine, on multi-spike networks: two independent exact methods (one chains spike-time
derivatives of the threshold condition, the other integrates adjoint variables) must give the
same gradients to 1e-7 relative."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact, losses
from delayprop.verify import with_engine
from problems import random_spikes

F64 = torch.float64
RTOL = 1e-7

Build = Callable[[str], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def _leaf(data) -> torch.Tensor:
    return torch.as_tensor(data, dtype=F64).clone().requires_grad_()


def _inputs(batch: int, n_in: int, duration: float, per_sample: int, seed: int) -> dp.Spikes:
    return random_spikes(batch, n_in, duration, per_sample, seed).requires_grad_()


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _gradients(build: Build, backward: str) -> dict[str, torch.Tensor]:
    loss, tensors = build(backward)
    grads = torch.autograd.grad(loss, list(tensors.values()))
    return dict(zip(tensors, grads))


def _assert_agree(build: Build) -> dict[str, torch.Tensor]:
    """Timing-based == EventProp for every gradient of ``build``, each nonzero; returns the
    EventProp gradients."""
    eventprop, timing = _gradients(build, "eventprop"), _gradients(build, "timing")
    for name, ref in eventprop.items():
        scale = float(ref.abs().max())
        assert scale > 0, f"{name}: gradient is identically zero"
        torch.testing.assert_close(timing[name], ref, rtol=RTOL, atol=RTOL * scale,
                                   msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    # two independent float computations never coincide bit for bit on every entry: this
    # fails if backward="timing" silently ran the EventProp code
    assert any(not torch.equal(timing[n], eventprop[n]) for n in eventprop)
    return eventprop


def _set_backward(model: torch.nn.Module, backward: str) -> None:
    for m in model.modules():
        if isinstance(m, (dp.LIF, dp.LIReadout)):
            m.backward = backward


@pytest.mark.parametrize("tau_mem,tau_syn,w_mean", [(20.0, 5.0, 5.0), (5.0, 5.0, 1.5)])
def test_feed_forward_several_spikes_per_neuron(tau_mem, tau_syn, w_mean):
    """Two LIF layers, synaptic delays spread over and beyond the trial, a loss on every spike
    time of both layers (tau_mem = tau_syn uses the limit forms)."""
    rng = np.random.default_rng(0)
    w1, d1 = rng.normal(w_mean, 1.5, (8, 6)), rng.uniform(0.0, 60.0, (8, 6))
    w2, d2 = rng.normal(0.5 * w_mean, 1.5, (3, 8)), rng.uniform(0.0, 10.0, (3, 8))
    counts = []

    def build(backward):
        x = _inputs(2, 6, 40.0, 10, seed=1)
        t = {"w1": _leaf(w1), "d1": _leaf(d1), "w2": _leaf(w2), "d2": _leaf(d2),
             "input times": x.times}  # fmt: skip
        s = exact.ExactSettings(tau_mem, tau_syn, backward=backward)
        h = exact.lif(x, t["w1"], t["d1"], s)
        out = exact.lif(h, t["w2"], t["d2"], s)
        counts.append((int(h.counts_per_unit().max()), out.n_spikes))
        return _spike_loss(out, 2) + _spike_loss(h, 3), t

    _assert_agree(build)
    most_in_a_neuron, n_out = counts[0]
    assert most_in_a_neuron >= 5 and n_out >= 6


@pytest.mark.parametrize("kinds", [("axonal", "dendritic"), ("dendritic", "axonal")])
def test_axonal_and_dendritic_delays_through_autograd(kinds):
    """Delay parametrisations broadcast into the synaptic matrix; their gradients are sums of
    the synaptic ones (autograd), with first-spike outputs and the Yin-Yang loss."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        dp.LIF(4, 12, dt=None, max_delay=8.0, delay_kind=kinds[0], delay_init=(0.0, 8.0),
               weight_init=dp.Normal(3.0, 1.5)),
        dp.LIF(12, 3, dt=None, max_delay=8.0, delay_kind=kinds[1], delay_init=(0.0, 8.0),
               weight_init=dp.Normal(1.5, 1.0)),
    )  # fmt: skip
    x = _inputs(4, 4, 40.0, 6, seed=4)

    def build(backward):
        _set_backward(net, backward)
        t_first = losses.first_spike_times(net(x))
        loss = losses.time_invariant_mse(t_first, torch.tensor([0, 1, 2, 1]))
        return loss, dict(net.named_parameters()) | {"input times": x.times}

    _assert_agree(build)


def test_recurrent_zero_delays_into_lif_and_readout():
    """LIF (recurrent, 40 % and every self-connection with zero delay) -> LIF -> LI readout
    trace: cross-entropy on the readout plus a loss on every hidden spike time."""
    rng = np.random.default_rng(5)
    w, d = rng.normal(3.0, 1.0, (7, 5)), rng.uniform(0.0, 10.0, (7, 5))
    w_rec, d_rec = rng.normal(0.0, 0.8, (7, 7)), rng.uniform(0.0, 8.0, (7, 7))
    d_rec[rng.random((7, 7)) < 0.4] = 0.0
    np.fill_diagonal(d_rec, 0.0)
    w2, d2 = rng.normal(2.0, 1.0, (4, 7)), rng.uniform(0.0, 5.0, (4, 7))
    w_out, d_out = rng.normal(0.5, 0.5, (2, 4)), rng.uniform(0.0, 5.0, (2, 4))
    counts = []

    def build(backward):
        x = _inputs(2, 5, 50.0, 8, seed=6)
        t = {name: _leaf(a) for name, a in [("w", w), ("d", d), ("w_rec", w_rec),
                                            ("d_rec", d_rec), ("w2", w2), ("d2", d2),
                                            ("w_out", w_out), ("d_out", d_out)]}  # fmt: skip
        t["input times"] = x.times
        s = exact.ExactSettings(20.0, 5.0, backward=backward)
        readout = exact.ExactSettings(20.0, 5.0, math.inf, sample_dt=0.7, backward=backward)
        h = exact.lif(x, t["w"], t["d"], s, t["w_rec"], t["d_rec"])
        h2 = exact.lif(h, t["w2"], t["d2"], s)
        v = exact.li_readout(h2, t["w_out"], t["d_out"], readout)
        scores = losses.readout(v, "exp_mean")
        counts.append((int(h.counts_per_unit().max()), h.n_spikes, h2.n_spikes))
        return losses.cross_entropy(scores, torch.tensor([1, 0])) + _spike_loss(h, 7), t

    _assert_agree(build)
    most, n_hidden, n_second = counts[0]
    assert most >= 3 and n_hidden >= 20 and n_second >= 8


@pytest.mark.parametrize("max_spikes", [1, 2])
def test_refractory_recurrent_and_spike_limit(max_spikes):
    rng = np.random.default_rng(8)
    w, d = rng.normal(4.0, 1.0, (6, 4)), rng.uniform(0.0, 6.0, (6, 4))
    w_rec, d_rec = rng.normal(0.5, 0.5, (6, 6)), rng.uniform(0.0, 3.0, (6, 6))
    w2 = rng.normal(3.0, 1.0, (3, 6))
    counts = []

    def build(backward):
        x = _inputs(2, 4, 40.0, 8, seed=9)
        t = {"w": _leaf(w), "d": _leaf(d), "w_rec": _leaf(w_rec), "d_rec": _leaf(d_rec),
             "w2": _leaf(w2), "input times": x.times}  # fmt: skip
        hidden = exact.ExactSettings(20.0, 5.0, refractory=2.5, backward=backward)
        limited = exact.ExactSettings(20.0, 5.0, max_spikes=max_spikes, backward=backward)
        h = exact.lif(x, t["w"], t["d"], hidden, t["w_rec"], t["d_rec"])
        out = exact.lif(h, t["w2"], None, limited)
        counts.append((int(h.counts_per_unit().max()), int(out.counts_per_unit().max())))
        return _spike_loss(out, 10) + _spike_loss(h, 11), t

    _assert_agree(build)
    assert counts[0][0] >= 3 and counts[0][1] == max_spikes


def test_spike_count_regulariser():
    """The regulariser's lambda_V kick at each spike is a dL/dt term in timing form."""
    rng = np.random.default_rng(12)
    w, d = rng.normal(4.0, 1.5, (6, 5)), rng.uniform(0.0, 5.0, (6, 5))
    w_rec = rng.normal(0.0, 0.5, (6, 6))
    reg = dp.SpikeCountRegularizer(target=1.0, strength_upper=0.05, strength_lower=0.05)

    def build(backward, regularizer=reg):
        x = _inputs(3, 5, 30.0, 8, seed=13)
        t = {"w": _leaf(w), "d": _leaf(d), "w_rec": _leaf(w_rec), "input times": x.times}
        s = exact.ExactSettings(20.0, 5.0, regularizer=regularizer, backward=backward)
        h = exact.lif(x, t["w"], t["d"], s, t["w_rec"], None)
        return _spike_loss(h, 14), t

    with_reg = _assert_agree(build)
    without = _gradients(lambda backward: build(backward, None), "eventprop")
    assert not torch.allclose(with_reg["w"], without["w"], rtol=1e-3)  # the kick matters here


def test_readout_peak_value_and_time():
    """LI readout maxima: smooth peaks, peaks on arrivals of negative weights, window ends."""
    rng = np.random.default_rng(15)
    w, d = rng.normal(0.0, 1.5, (4, 6)), rng.uniform(0.0, 8.0, (4, 6))
    a, b = torch.from_numpy(rng.normal(size=(2, 3, 4)))
    kinds = []

    def build(backward):
        x = _inputs(3, 6, 30.0, 10, seed=13)
        t = {"w": _leaf(w), "d": _leaf(d), "input times": x.times}
        s = exact.ExactSettings(20.0, 5.0, math.inf, backward=backward)
        v_max, t_max = exact.li_peak(x, t["w"], t["d"], s)
        arrivals = x.times.detach()[:, None] + t["d"].detach()[:, x.units.long()].t()
        on_arrival = torch.stack([(arrivals[x.samples == k] == t_max[k].detach()).any(dim=0)
                                  for k in range(3)])  # fmt: skip
        kinds.append((int(on_arrival.sum()), int(((t_max > 0) & ~on_arrival).sum())))
        return (a * v_max).sum() + (b * torch.sin(0.2 * t_max)).sum(), t

    _assert_agree(build)
    assert kinds[0][0] >= 2 and kinds[0][1] >= 2


def test_near_tangential_crossing_and_slope_floor():
    """A first spike whose crossing slope tau_mem dV/dt = I - theta is ~1e-4 theta (below the
    default floor 1e-3 theta), then later spikes chained to it through the reset: both backward
    passes floor the slope alike, and agree without a floor too."""
    tau_mem, tau_syn, t0 = 20.0, 5.0, 1.0
    h_peak = math.log(tau_mem / tau_syn) / (1 / tau_syn - 1 / tau_mem)
    w_tangent = math.exp(h_peak / tau_syn)  # one input of this weight peaks exactly at theta
    w = np.array([[w_tangent * (1 + 1.25e-9), 10.0]])
    spikes = []

    def build(backward, floor):
        x = dp.Spikes.from_lists([([t0, 20.0], [0, 1])], 2, 60.0, dtype=F64).requires_grad_()
        t = {"w": _leaf(w), "input times": x.times}
        s = exact.ExactSettings(tau_mem, tau_syn, vdot_floor=floor, backward=backward)
        out = exact.lif(x, t["w"], None, s)
        spikes.append(out.times.detach())
        return (out.times**2).sum(), t

    floored = _assert_agree(lambda backward: build(backward, 1e-3))
    exact_slope = _assert_agree(lambda backward: build(backward, 0.0))
    t_spikes = spikes[0]
    assert len(t_spikes) >= 2
    slope = w[0, 0] * math.exp(-(float(t_spikes[0]) - t0) / tau_syn) - 1.0  # I - theta
    assert 1e-5 < slope < 3e-4
    # the floor was active: it shrinks the near-singular gradient of the tangential weight
    ratio = float(exact_slope["w"][0, 0] / floored["w"][0, 0])
    assert ratio > 3.0, ratio


def test_backward_option_is_validated():
    with pytest.raises(ValueError, match="backward must be one of"):
        exact.ExactSettings(20.0, 5.0, backward="bptt")
    with pytest.raises(ValueError, match="backward must be one of"):
        dp.LIF(2, 2, dt=None, backward="adjoint")
    with pytest.raises(ValueError, match="needs the exact engine"):
        dp.LIF(2, 2, dt=1.0, backward="timing")
    with pytest.raises(ValueError, match="needs the exact engine"):
        dp.LIReadout(2, 2, dt=0.5, backward="timing")
    net = torch.nn.Sequential(dp.LIF(2, 3, dt=None, backward="timing"))
    assert "backward='timing'" in repr(net)
    on_grid = with_engine(net, 0.1)  # switching to a time grid keeps no silent wrong backward
    x = dp.Spikes.from_lists([([1.0], [0])], 2, 10.0)
    with pytest.raises(ValueError, match="needs the exact engine"):
        on_grid(x)


@pytest.mark.parametrize("dt,dtype", [(None, F64), (1.0, torch.float32)])
def test_recurrent_parameters_take_the_engine_dtype(dt, dtype):
    """Recurrent weights and delays are as precise as the feed-forward ones (they were float32
    in float64 exact-engine layers, which rounded their gradients)."""
    layer = dp.LIF(3, 4, dt=dt, recurrent=True, rec_max_delay=2.0)
    dtypes = {p.dtype for p in layer.parameters()}
    assert dtypes == {dtype}


@pytest.mark.parametrize("layer", ["lif", "trace", "peak"])
def test_in_place_change_before_backward_is_an_error(layer):
    """The timing backward reads the parameters at backward time: they are saved through
    ``save_for_backward``, so changing one in place after the forward pass raises (instead of
    silently giving the gradient of other parameters)."""
    x = _inputs(2, 4, 20.0, 5, seed=3)
    w = _leaf(np.random.default_rng(3).normal(1.5, 0.5, size=(3, 4)))
    d = _leaf(np.full((3, 4), 1.0))
    if layer == "lif":
        out = exact.lif(x, w, d, exact.ExactSettings(20.0, 5.0, backward="timing"))
        loss = out.times.sum()
    elif layer == "trace":
        s = exact.ExactSettings(20.0, 5.0, math.inf, sample_dt=1.0, backward="timing")
        loss = exact.li_readout(x, w, d, s).sum()
    else:
        value, t_peak = exact.li_peak(x, w, d, exact.ExactSettings(20.0, 5.0, math.inf,
                                                                   backward="timing"))
        loss = (value + t_peak).sum()
    with torch.no_grad():
        w.add_(0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()

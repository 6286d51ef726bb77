"""Exact engine: forward against an ODE-integrator simulation, layer API, options, bad input."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import delayprop as dp
from delayprop import exact, losses
from delayprop.kernels.host import SpikeCapacity
from problems import random_spikes

F64 = torch.float64


def _ode_network(trains, w, d, w_rec, d_rec, *, tm, ts, duration, refractory=0.0, max_spikes=None):
    """Independent reference: scipy integrates the ODEs between arrivals, locates threshold
    crossings as integration events, and pushes recurrent arrivals on a heap."""
    n = w.shape[0]
    queue = [(t + d[j, u], j, w[j, u]) for t, u in zip(*trains) for j in range(n)]
    heapq.heapify(queue)
    v, i = np.zeros(n), np.zeros(n)
    free_at = np.zeros(n)  # V is held at 0 until then (refractory / silenced)
    count = np.zeros(n, int)
    spikes, t = [], 0.0
    while t < duration:
        t_next = min(queue[0][0] if queue else math.inf, duration)
        t_next = min([t_next] + [f for f in free_at if t < f < t_next])
        active = free_at <= t

        def rhs(_s, y, active=active):
            return np.concatenate([np.where(active, (-y[:n] + y[n:]) / tm, 0.0), -y[n:] / ts])

        events = []
        for j in np.flatnonzero(active):

            def ev(_s, y, j=j):
                return y[j] - 1.0

            ev.terminal, ev.direction = True, 1
            events.append(ev)
        sol = solve_ivp(rhs, (t, t_next), np.concatenate([v, i]), events=events or None,
                        rtol=1e-12, atol=1e-14)  # fmt: skip
        v, i = sol.y[:n, -1].copy(), sol.y[n:, -1].copy()
        hits = [(te[0], j) for te, j in zip(sol.t_events or [], np.flatnonzero(active))
                if len(te)]  # fmt: skip
        if hits:
            t, j = min(hits)
            spikes.append((t, j))
            v[j] = 0.0
            count[j] += 1
            if max_spikes and count[j] >= max_spikes:
                free_at[j] = math.inf
            elif refractory:
                free_at[j] = t + refractory
            for k in range(n):
                heapq.heappush(queue, (t + d_rec[k, j], k, w_rec[k, j]))
            continue
        t = t_next
        while queue and queue[0][0] <= t:
            _, j, wj = heapq.heappop(queue)
            i[j] += wj
    return [s for s in spikes if s[0] < duration]


@pytest.mark.parametrize("refractory,max_spikes", [(0.0, None), (1.5, None), (0.0, 2)])
def test_recurrent_forward_matches_ode_reference(refractory, max_spikes):
    rng = np.random.default_rng(0)
    n_in, n, duration = 4, 5, 30.0
    trains = (rng.uniform(0, 20, 10), rng.integers(0, n_in, 10))
    w, d = rng.normal(3.0, 1.0, (n, n_in)), rng.uniform(0, 5, (n, n_in))
    w_rec, d_rec = rng.normal(0.3, 0.6, (n, n)), rng.uniform(0, 3, (n, n))
    d_rec[0, 1] = d_rec[2, 2] = 0.0
    expect = _ode_network(trains, w, d, w_rec, d_rec, tm=20.0, ts=5.0, duration=duration,
                          refractory=refractory, max_spikes=max_spikes)  # fmt: skip
    x = dp.Spikes.from_lists([trains], n_in, duration, dtype=F64)
    settings = exact.ExactSettings(20.0, 5.0, refractory=refractory, max_spikes=max_spikes)
    t64 = [torch.from_numpy(a) for a in (w, d, w_rec, d_rec)]
    out = exact.lif(x, t64[0], t64[1], settings, t64[2], t64[3])
    assert len(expect) >= 8
    assert out.units.tolist() == [j for _, j in expect]
    assert np.allclose(out.times.detach().numpy(), [t for t, _ in expect], atol=1e-7)


def _layer(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    defaults = dict(dt=None, max_delay=10.0, delay_init=(0.0, 10.0), weight_init=dp.Normal(3, 1))
    return dp.LIF(8, 6, **(defaults | kw))


def test_layer_output_is_a_valid_float64_event_list():
    layer = _layer(recurrent=True, rec_max_delay=2.0, rec_delay_init=(0.0, 2.0))
    assert layer.weight.dtype == F64 and layer.dt is None
    x = random_spikes(3, 8, 40.0, 15, seed=1)
    x = x.with_times(x.times.float())  # float32 input times, as from a data set
    with dp.SpikeRecorder([layer]) as recorder:
        out = layer(x)
    assert out.times.dtype == F64 and out.units.dtype == torch.int32
    assert out.n_spikes > 3 * 6 and out.duration == 40.0 and out.n_units == 6
    out.validate()
    assert float(out.times.detach().max()) < 40.0
    assert torch.equal(recorder.counts[0], torch.bincount(out.units.long(), minlength=6))
    assert recorder.batch_sizes == [3] and not hasattr(layer, "spike_counts")
    first = recorder.counts_of(layer)
    layer(x)  # closed: no longer recorded
    assert recorder.counts[0] is first and not layer._forward_hooks


def test_capacity_overflow_reruns_exactly():
    x = random_spikes(5, 8, 60.0, 40, seed=2)
    for kw in ({}, dict(recurrent=True, rec_max_delay=3.0, rec_delay_init=(0.0, 3.0))):
        layer = _layer(**kw)
        layer.spike_capacity = SpikeCapacity(100_000)
        big = layer(x)
        counts = big.counts()
        partial = int(counts[1:].min())
        assert big.n_spikes > 5 * 4 and int(counts[0]) > partial
        # all samples overflow; then sample 0 and others but not all (re-run, the rest kept)
        for capacity in (1, partial):
            layer.spike_capacity = SpikeCapacity(capacity)
            small = layer(x)
            assert torch.equal(small.times, big.times) and torch.equal(small.units, big.units)
            assert torch.equal(small.offsets, big.offsets)


def test_spike_limit_and_refractory():
    x = random_spikes(3, 8, 50.0, 30, seed=3)
    free = _layer()(x)
    first = _layer(max_spikes=1)(x)
    assert int(first.counts_per_unit().max()) == 1 < int(free.counts_per_unit().max())
    # a feed-forward neuron's first spike does not depend on what it does afterwards
    assert torch.equal(losses.first_spike_times(first), losses.first_spike_times(free))
    refr = _layer(refractory=4.0)(x)
    for times, units in refr.to_lists():
        for j in np.unique(units):
            assert np.diff(times[units == j]).min(initial=np.inf) >= 4.0
    assert refr.n_spikes < free.n_spikes


def test_zero_recurrent_weights_equal_feed_forward():
    x = random_spikes(2, 8, 40.0, 20, seed=4).requires_grad_()
    ff = _layer()
    rec = _layer(recurrent=True, rec_max_delay=3.0, rec_delay_init=(0.0, 3.0))
    with torch.no_grad():
        rec.rec_weight.zero_()
    outs = []
    for layer in (ff, rec):
        out = layer(x)
        (out.times * torch.cos(out.times)).sum().backward()
        outs.append(out)
    # the zero-weight arrivals only split the closed-form flow into more pieces
    assert torch.equal(outs[0].units, outs[1].units)
    assert torch.allclose(outs[0].times, outs[1].times, rtol=0, atol=1e-12)
    assert torch.allclose(ff.weight.grad, rec.weight.grad, rtol=1e-10, atol=1e-14)
    assert torch.allclose(ff.delay.raw.grad, rec.delay.raw.grad, rtol=1e-10, atol=1e-14)
    assert float(rec.rec_weight.grad.abs().max()) > 0  # zero weights still have a gradient


def test_sequential_with_losses_and_float32_parameters():
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        dp.LIF(8, 10, dt=None, weight_init=dp.Normal(3, 1), dtype=torch.float32),
        dp.LIReadout(10, 3, dt=None, sample_dt=0.5, weight_init=dp.Normal(0, 1),
                     dtype=torch.float32),
    )  # fmt: skip
    x = random_spikes(4, 8, 30.0, 10, seed=6)
    v = net(x)
    assert v.shape == (4, 60, 3) and v.dtype == F64
    loss = losses.cross_entropy(losses.readout(v, "max"), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for p in net.parameters():
        assert p.grad.dtype == torch.float32 and bool(torch.isfinite(p.grad).all())
        assert float(p.grad.abs().max()) > 0


def test_peak_readout_bounds_the_sampled_trace():
    torch.manual_seed(7)
    readout = dp.LIReadout(8, 4, dt=None, sample_dt=0.01, max_delay=5.0, delay_init=(0, 5.0),
                           weight_init=dp.Normal(0.0, 1.0))  # fmt: skip
    x = random_spikes(3, 8, 25.0, 10, seed=8)
    v = readout(x).detach()
    v_max, t_max = readout.max_over_time(x)
    sampled = v.max(dim=1).values
    assert bool((v_max.detach() >= sampled - 1e-12).all())
    assert float((v_max.detach() - sampled).max()) < 1e-4
    step = torch.round(t_max.detach() / 0.01).long().clamp(max=v.shape[1] - 1)
    near = v.gather(1, step.unsqueeze(1)).squeeze(1)
    assert torch.allclose(near, v_max.detach(), atol=1e-3)


def test_empty_inputs():
    layer = _layer()
    x = dp.Spikes.from_lists([([], []), ([1.0, 2.0], [0, 3]), ([], [])], 8, 30.0)
    assert layer(x).batch_size == 3
    none = dp.Spikes.from_lists([([], [])], 8, 30.0)
    assert layer(none).n_spikes == 0
    readout = dp.LIReadout(8, 2, dt=None, sample_dt=1.0)
    v = readout(none)
    assert v.shape == (1, 30, 2) and float(v.detach().abs().sum()) == 0.0
    v_max, t_max = readout.max_over_time(none)
    assert float(v_max.detach().abs().sum()) == 0.0 == float(t_max.detach().abs().sum())


def test_bad_input_is_named():
    x = random_spikes(1, 8, 30.0, 5, seed=9)
    layer = _layer()
    with torch.no_grad():
        layer.delay.raw[0, 0] = -0.5
    with pytest.raises(ValueError, match="delay must be >= 0 ms.*constrain_"):
        layer(x)
    with torch.no_grad():
        layer.delay.raw[0, 0] = 0.0
        layer.weight[1, 1] = math.nan
    with pytest.raises(ValueError, match="weight contains NaN"):
        layer(x)
    with pytest.raises(ValueError, match="input has 5 units but the weight matrix expects 8"):
        _layer()(random_spikes(1, 5, 30.0, 5, seed=9))
    with pytest.raises(ValueError, match="refractory and max_spikes need precise=False"):
        dp.LIF(4, 3, dt=1.0, precise=True, refractory=2.0)
    with pytest.raises(ValueError, match="refractory and max_spikes need precise=False"):
        dp.LIF(4, 3, dt=0.1, precise=True, max_spikes=1)
    with pytest.raises(ValueError, match="max_spikes must be a positive integer"):
        dp.LIF(4, 3, dt=None, max_spikes=0)
    for bad in (0, -1, 1.5, True):  # "no limit" is None on the layers and in the engine alike
        with pytest.raises(ValueError, match="max_spikes must be a positive integer or None"):
            exact.ExactSettings(20.0, 5.0, max_spikes=bad)
    with pytest.raises(ValueError, match="sample_dt=0.5 needs the exact engine"):
        dp.LIReadout(4, 3, dt=1.0, sample_dt=0.5)
    with pytest.raises(ValueError, match="needs settings.sample_dt"):
        dp.LIReadout(8, 3, dt=None, sample_dt=None)(x)
    with pytest.raises(ValueError, match="refractory must be"):
        exact.ExactSettings(20.0, 5.0, refractory=-1.0)
    with pytest.raises(ValueError, match="tau_syn must be > 0"):
        exact.ExactSettings(20.0, 0.0)
    w = torch.ones(6, 8, dtype=F64)
    with pytest.raises(ValueError, match=r"rec_weight must be \[6, 6\]"):
        exact.lif(x, w, None, exact.ExactSettings(20.0, 5.0), torch.ones(5, 5, dtype=F64))
    with pytest.raises(TypeError, match="Spikes"):
        exact.lif(torch.zeros(3), w, None, exact.ExactSettings(20.0, 5.0))

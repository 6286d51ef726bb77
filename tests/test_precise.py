"""Precise mode of the time-stepped engine: the exact engine's spikes and gradients on a grid.

The oracle is the exact continuous-time engine (dt=None), itself checked against finite
differences (test_exact_fd.py); finite differences on the precise engine itself check that its
backward is the gradient of its own forward.
"""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop import losses
from delayprop.verify import check_gradients

F64 = torch.float64
DURATION = 60.0  # ms, a whole number of steps for every dt below


def _inputs(seed: int, n_in: int = 10, per_sample: int = 80, batch: int = 3) -> dp.Spikes:
    g = torch.Generator().manual_seed(seed)
    n = per_sample * batch
    return dp.Spikes.from_arrays(
        torch.rand(n, generator=g, dtype=F64) * 50.0, torch.randint(0, n_in, (n,), generator=g),
        torch.randint(0, batch, (n,), generator=g), batch, n_in, DURATION, dtype=F64,
    )  # fmt: skip


def _network(dt: float | None, seed: int, w_mean: float, *, lif_out: bool = False):
    torch.manual_seed(seed)
    kw = {"dtype": F64, "precise": dt is not None}
    hidden = dp.LIF(10, 16, dt=dt, max_delay=20.0, delay_init=(0.0, 20.0),
                    weight_init=dp.Normal(w_mean, 1.0), **kw)  # fmt: skip
    if lif_out:
        out = dp.LIF(16, 3, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                     weight_init=dp.Normal(0.8, 0.8), **kw)  # fmt: skip
    else:
        out = dp.LIReadout(16, 3, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                           sample_dt=None if dt else 1.0, weight_init=dp.Normal(0.0, 1.0),
                           **kw)  # fmt: skip
    return torch.nn.Sequential(hidden, out)


def _trace_loss(v: torch.Tensor) -> torch.Tensor:
    """Every readout the library offers, on one trace."""
    return sum(losses.readout(v, name).square().sum() for name in losses.READOUTS)


def _run(net, spikes, loss_of):
    net.zero_grad(set_to_none=True)
    s = spikes.with_times(spikes.times.detach().clone().requires_grad_())
    hidden = net[0](s)
    out = net[1](hidden)
    loss_of(out).backward()
    grads = [p.grad.detach().clone() for p in net.parameters()] + [s.times.grad.clone()]
    return hidden, out, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("w_mean", [0.3, 1.0])  # mixed-sign weights; ~1 to ~15 spikes per neuron
def test_precise_grid_equals_the_exact_engine_with_a_voltage_readout(seed, w_mean):
    spikes = _inputs(seed)
    exact = _network(None, seed, w_mean)
    for dt in (1.0, 0.5):
        grid = _network(dt, seed, w_mean)
        grid.load_state_dict(exact.state_dict())
        h_g, v_g, g_g = _run(grid, spikes, _trace_loss)
        exact[1].sample_dt = dt
        h_e, v_e, g_e = _run(exact, spikes, _trace_loss)
        assert h_e.n_spikes > 0 and h_g.n_spikes == h_e.n_spikes
        assert torch.equal(h_g.units, h_e.units)
        assert _max_diff(h_g.times, h_e.times) < 1e-9
        assert _max_diff(v_g, v_e) < 1e-9 * float(v_e.detach().abs().max())
        for a, b in zip(g_g, g_e):
            assert _rel(a, b) < 1e-6


@pytest.mark.parametrize("seed", [0, 3])
def test_precise_grid_equals_the_exact_engine_with_first_spike_times(seed):
    spikes = _inputs(seed)
    exact = _network(None, seed, 1.0, lif_out=True)
    grid = _network(1.0, seed, 1.0, lif_out=True)
    grid.load_state_dict(exact.state_dict())

    def loss(out: dp.Spikes) -> torch.Tensor:
        t_first = losses.first_spike_times(out)
        labels = torch.arange(out.batch_size) % 3
        return losses.time_invariant_mse(t_first, labels) + 1e-3 * out.times.square().sum()

    h_g, o_g, g_g = _run(grid, spikes, loss)
    h_e, o_e, g_e = _run(exact, spikes, loss)
    assert o_e.n_spikes > 0 and o_g.n_spikes == o_e.n_spikes
    assert _max_diff(o_g.times, o_e.times) < 1e-9
    for a, b in zip(g_g, g_e):
        assert _rel(a, b) < 1e-6


def test_precise_backward_matches_finite_differences_of_its_own_forward():
    spikes = _inputs(5, per_sample=60)
    net = _network(1.0, 5, 1.0)
    times = spikes.times.detach().clone().requires_grad_()
    inputs = {"w": net[0].weight, "d": net[0].delay.raw, "w_out": net[1].weight,
              "d_out": net[1].delay.raw, "t_in": times}  # fmt: skip

    def loss_fn():
        v = net(spikes.with_times(times))
        return _trace_loss(v)

    report = check_gradients(loss_fn, inputs, eps=1e-6, max_entries=25, watch=net,
                             lower_bounds={"d": 0.0, "d_out": 0.0, "t_in": 0.0})  # fmt: skip
    report.assert_ok(rtol=1e-4, min_checked=20)


def test_several_spikes_of_one_neuron_in_one_step():
    # a strong, steady input makes the neuron fire every ~0.3 ms: several crossings per step
    spikes = dp.Spikes.from_lists([([0.2, 0.2, 5.3], [0, 1, 0])], 2, 8.0, dtype=F64)
    kw = {"dtype": F64, "weight_init": dp.Normal(60.0, 10.0)}
    exact = dp.LIF(2, 2, dt=None, **kw)
    grid = dp.LIF(2, 2, dt=2.0, precise=True, **kw)
    grid.load_state_dict(exact.state_dict())
    outs = []
    for layer in (grid, exact):
        times = spikes.times.detach().clone().requires_grad_()
        out = layer(spikes.with_times(times))
        (out.times * torch.linspace(1.0, 2.0, out.n_spikes, dtype=F64)).sum().backward()
        outs.append((out, layer.weight.grad.clone(), times.grad.clone()))
    (o_g, w_g, t_g), (o_e, w_e, t_e) = outs
    per_step = torch.bincount((o_g.times / 2.0).long() * 2 + o_g.units.long())
    assert int(per_step.max()) >= 3
    assert o_g.n_spikes == o_e.n_spikes
    assert _max_diff(o_g.times, o_e.times) < 1e-9
    assert _rel(w_g, w_e) < 1e-6 and _rel(t_g, t_e) < 1e-6


@pytest.mark.parametrize("dt", [None, 0.1, 0.01, 0.001])
def test_maximum_on_an_inhibitory_arrival_has_the_derivative_of_the_kink(dt):
    # V rises from the excitatory input, the inhibitory input arrives at 3.3 + 2 ms and V falls:
    # the maximum is the kink; d max / d t_inh = dV/dt just before the arrival (> 0)
    readout = dp.LIReadout(2, 1, dt=dt, max_delay=10.0, dtype=F64)
    with torch.no_grad():
        readout.weight.copy_(torch.tensor([[5.0, -10.0]]))
        readout.delay.raw.copy_(torch.tensor([[0.0, 2.0]]))
    times = torch.tensor([1.0, 3.3], dtype=F64, requires_grad=True)
    spikes = dp.Spikes.from_lists([([1.0, 3.3], [0, 1])], 2, 40.0, dtype=F64).with_times(times)
    value, when = readout.max_over_time(spikes)
    value.sum().backward()
    assert abs(float(when.detach()) - 5.3) < 1e-12
    torch.testing.assert_close(times.grad, torch.tensor([-0.0738, 0.0738], dtype=F64),
                               atol=1e-4, rtol=0)  # fmt: skip


def test_float32_precise_mode_agrees_with_float64():
    spikes = _inputs(7)
    net64 = _network(1.0, 7, 1.0)
    net32 = _network(1.0, 7, 1.0).float()
    net32.load_state_dict({k: v.float() for k, v in net64.state_dict().items()})
    _, v64, g64 = _run(net64, spikes, lambda v: losses.mean_over_time(v).sum())
    s32 = spikes.with_times(spikes.times.float())
    _, v32, g32 = _run(net32, s32, lambda v: losses.mean_over_time(v).sum())
    assert v32.dtype == torch.float32
    assert _max_diff(v32.double(), v64) < 1e-3 * float(v64.detach().abs().max())
    for a, b in zip(g32, g64):
        assert _rel(a.double(), b) < 1e-2


def test_precise_mode_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="time-stepped engine"):
        dp.LIF(2, 2, dt=None, precise=True)
    with pytest.raises(ValueError, match="tau_mem and tau_syn to differ"):
        dp.LIF(2, 2, dt=1.0, tau_mem=5.0, tau_syn=5.0, precise=True)(_inputs(0, n_in=2))
    with pytest.raises(ValueError, match="recurrent"):
        dp.LIF(10, 4, dt=1.0, recurrent=True, precise=True)(_inputs(0))
    with pytest.raises(ValueError, match="too long for"):  # e^(2 dt / tau_syn) > float32 max
        dp.LIF(2, 2, dt=1.0, tau_syn=0.02, precise=True, dtype=torch.float32)(_inputs(0, n_in=2))
    dp.LIF(2, 2, dt=1.0, tau_syn=0.02, precise=True, dtype=F64)(_inputs(0, n_in=2))  # fits
    # 2^11 + 1 inputs of one sample into 2^20 neurons: more arrivals than int32 list nodes name
    n = 2**11 + 1
    wide = dp.LIF(1, 2**20, dt=1.0, precise=True)
    many = dp.Spikes.from_arrays(torch.linspace(0.0, 50.0, n), torch.zeros(n, dtype=int),
                                 torch.zeros(n, dtype=int), 1, 1, DURATION)  # fmt: skip
    with pytest.raises(ValueError, match="arrival lists"):
        wide(many)


def test_training_configs_select_the_precise_mode():
    from delayprop.methods import build_model

    model = build_model("eventprop", n_in=4, hidden=[5], n_out=3, dt=0.5, precise=True)
    assert all(layer.precise for layer in model)
    with pytest.raises(ValueError, match="precise is not supported by method 'bptt'"):
        build_model("bptt", n_in=4, hidden=[5], n_out=3, dt=0.5, precise=True)

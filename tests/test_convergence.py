"""Time-stepped engine -> exact engine as dt -> 0: spike times and every gradient, including
recurrent weights and delays (zero delays among them) and the spike-count regulariser.

The problems here also make the curve of docs/convergence.md (benchmarks/exact_convergence.py).
"""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop import losses
from delayprop.verify import engine_gap, with_engine
from problems import random_spikes

DTS = (1.0, 0.5, 0.1, 0.01)


def inputs() -> dp.Spikes:
    return random_spikes(4, 6, 30.0, 6, seed=1)


def spike_loss(out: dp.Spikes) -> torch.Tensor:
    r = torch.linspace(-1, 1, out.n_units, dtype=torch.float64)
    return (r[out.units.long()] * torch.cos(0.3 * out.times)).sum()


def feed_forward() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        dp.LIF(6, 10, dt=None, max_delay=8.0, delay_init=(0.0, 8.0),
               weight_init=dp.Normal(2.5, 1.0)),
        dp.LIF(10, 3, dt=None, max_delay=4.0, delay_init=(0.0, 4.0),
               weight_init=dp.Normal(1.5, 1.0)),
    )  # fmt: skip


def recurrent() -> torch.nn.Sequential:
    torch.manual_seed(0)
    reg = dp.SpikeCountRegularizer(target=1.0, strength_upper=0.05)
    net = torch.nn.Sequential(
        dp.LIF(6, 10, dt=None, max_delay=8.0, delay_init=(0.0, 8.0),
               weight_init=dp.Normal(2.5, 1.0), recurrent=True, rec_max_delay=3.0,
               rec_delay_init=(0.0, 3.0), rec_weight_init=dp.Normal(0.0, 0.4), regularizer=reg),
        dp.LIReadout(10, 2, dt=None, max_delay=4.0, delay_init=(0.0, 4.0),
                     weight_init=dp.Normal(0.0, 1.0)),
    )  # fmt: skip
    with torch.no_grad():
        net[0].rec_delay.raw[torch.arange(100).reshape(10, 10) % 5 < 2] = 0.0  # 40 % zero
    return net


def trace_loss(v: torch.Tensor) -> torch.Tensor:
    return losses.cross_entropy(losses.readout(v, "exp_mean"), torch.tensor([0, 1, 1, 0]))


def _assert_converges(gaps, *, final_time, final_grad):
    by_dt = {g.dt: g for g in gaps}
    coarse, mid, fine = by_dt[1.0], by_dt[0.1], by_dt[0.01]
    assert fine.count_mismatch == 0.0 and mid.count_mismatch < coarse.count_mismatch
    coarse_t = max(coarse.spike_time_error, by_dt[0.5].spike_time_error)
    assert fine.spike_time_error < 0.2 * mid.spike_time_error < 0.2 * coarse_t
    assert fine.spike_time_error < final_time
    for name in fine.grad_error:
        assert fine.grad_error[name] < 0.2 * mid.grad_error[name] or (
            fine.grad_error[name] < 0.2 * final_grad
        ), name
    assert fine.max_grad_error < final_grad < mid.max_grad_error < coarse.max_grad_error


def test_feed_forward_converges():
    gaps = engine_gap(feed_forward(), inputs(), spike_loss, DTS)
    _assert_converges(gaps, final_time=0.1, final_grad=0.03)


def test_recurrent_readout_converges():
    net = recurrent()
    x = inputs()
    hidden = net[0](x)
    assert hidden.n_spikes > 4 * 10 and float(net[0].rec_delay.raw.eq(0).float().mean()) > 0.3
    gaps = engine_gap(net, x, trace_loss, DTS)
    _assert_converges(gaps, final_time=0.1, final_grad=0.03)
    fine = gaps[-1]
    for name in ("0.rec_weight", "0.rec_delay.raw"):
        assert fine.grad_error[name] < 0.02


def test_regularizer_enters_both_engines():
    """The kick changes the gradient by far more than the dt = 0.01 gap (so the convergence above
    covers it)."""
    net = recurrent()
    x = inputs()
    plain = with_engine(net, None, sample_dt=0.5)
    plain[0].regularizer = None
    kicked = with_engine(net, None, sample_dt=0.5)
    grads = []
    for model in (plain, kicked):
        trace_loss(model(x)).backward()
        grads.append(model[0].weight.grad)
    assert float((grads[0] - grads[1]).norm() / grads[1].norm()) > 0.1


@pytest.mark.parametrize("dt", [0.1, 0.01])
def test_readout_trace_matches_grid_samples(dt):
    """Without spikes in between, grid and exact readout sample the same voltage up to the
    rounding of the arrival times to the grid."""
    torch.manual_seed(2)
    readout = dp.LIReadout(6, 3, dt=None, max_delay=5.0, delay_init=(0.0, 5.0),
                           weight_init=dp.Normal(0.0, 1.0))  # fmt: skip
    x = random_spikes(2, 6, 20.0, 8, seed=3)
    v_exact = with_engine(readout, None, sample_dt=dt)(x)
    v_grid = with_engine(readout, dt).double()(x)
    assert v_exact.shape == v_grid.shape
    err = float((v_exact - v_grid).detach().abs().max() / v_exact.detach().abs().max())
    assert err < 0.5 * dt


def test_with_engine_refuses_options_the_precise_mode_lacks():
    assert with_engine(dp.LIF(3, 2, dt=None, max_spikes=1), 0.1).dt == 0.1
    with pytest.raises(ValueError, match="need precise=False"):
        with_engine(dp.LIF(3, 2, dt=None, max_spikes=1), 0.1, precise=True)

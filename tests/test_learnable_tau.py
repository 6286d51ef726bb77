"""Learnable time constants: exact-engine gradients of tau_mem and tau_syn == central finite
differences (float64), and training with ``learn_tau``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact
from delayprop.verify import check_gradients

F64 = torch.float64
RTOL = 1e-5


def _inputs(batch: int, n_in: int, duration: float, per_sample: int, seed: int) -> dp.Spikes:
    rng = np.random.default_rng(seed)
    trains = [(rng.uniform(0, 0.7 * duration, per_sample), rng.integers(0, n_in, per_sample))
              for _ in range(batch)]  # fmt: skip
    return dp.Spikes.from_lists(trains, n_in, duration, dtype=F64)


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=F64, requires_grad=True)


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time, independent of the spike order."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _first_spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth function of the first spike time of every (sample, neuron) that fires."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    total = spikes.times.new_zeros(())
    for b in range(spikes.batch_size):
        lo, hi = int(spikes.offsets[b]), int(spikes.offsets[b + 1])
        seen: set[int] = set()
        for k in range(lo, hi):
            u = int(spikes.units[k])
            if u not in seen:
                seen.add(u)
                total = total + r[u] * torch.sin(0.2 * spikes.times[k])
    return total


def _check(loss_fn, inputs: dict[str, torch.Tensor]) -> None:
    """Step 1e-5 ms: these networks have events that change order (not count) within 2e-4 ms
    of the time constants, where the loss has a kink."""
    report = check_gradients(loss_fn, inputs, eps=1e-5)
    report.assert_ok(rtol=RTOL, min_checked=1)
    for name in inputs:
        assert float(inputs[name].grad.abs()) > 0.0, name
    print(report)


CASES = [
    # tau_mem, tau_syn, refractory (ms)
    (20.0, 5.0, 0.0),
    (10.0, 5.0, 0.0),
    (5.0005, 5.0, 0.0),
    (5.0, 5.0, 0.0),
    (20.0, 5.0, 2.0),
    (5.0005, 5.0, 1.5),
]


@pytest.mark.parametrize("tau_mem,tau_syn,refractory", CASES)
def test_lif_to_readout_time_constants(tau_mem, tau_syn, refractory):
    """LIF (mixed-sign weights, several spikes per neuron) -> LI readout; a trace loss and a
    first-spike loss on the hidden layer; both layers' time constants."""
    duration = 40.0
    rng = np.random.default_rng(3)
    x = _inputs(2, 6, duration, 14, seed=4)
    w1 = torch.from_numpy(rng.normal(2.0, 2.5, (7, 6)))
    d1 = torch.from_numpy(rng.uniform(0.0, 12.0, (7, 6)))
    w2 = torch.from_numpy(rng.normal(0.0, 1.0, (3, 7)))
    d2 = torch.from_numpy(rng.uniform(0.0, 6.0, (3, 7)))
    target = torch.from_numpy(rng.normal(0.0, 0.3, (2, 40, 3)))
    taus = {"tau_mem 1": _scalar(tau_mem), "tau_syn 1": _scalar(tau_syn),
            "tau_mem 2": _scalar(0.7 * tau_mem), "tau_syn 2": _scalar(1.3 * tau_syn)}
    s1 = exact.ExactSettings(tau_mem, tau_syn, refractory=refractory)
    s2 = exact.ExactSettings(1.0, 1.0, threshold=float("inf"), sample_dt=1.0)

    def loss():
        h = exact.lif(x, w1, d1, s1,
                      time_constants=torch.stack([taus["tau_mem 1"], taus["tau_syn 1"]]))
        v = exact.li_readout(h, w2, d2, s2,
                             time_constants=torch.stack([taus["tau_mem 2"], taus["tau_syn 2"]]))
        return ((v - target) ** 2).sum() + _first_spike_loss(h, 5) + _spike_loss(h, 6), h

    _, h = loss()
    assert int(h.counts_per_unit().max()) >= 4  # several spikes per neuron
    _check(loss, taus)


@pytest.mark.parametrize("tau_mem,tau_syn", [(20.0, 5.0), (5.0005, 5.0)])
def test_recurrent_two_layers_time_constants(tau_mem, tau_syn):
    """ff + recurrent LIF layer -> LIF layer, spike-time losses on both."""
    duration = 50.0
    rng = np.random.default_rng(7)
    x = _inputs(2, 5, duration, 10, seed=8)
    w = torch.from_numpy(rng.normal(2.0, 1.5, (6, 5)))
    d = torch.from_numpy(rng.uniform(0.0, 10.0, (6, 5)))
    w_rec = torch.from_numpy(rng.normal(0.0, 1.0, (6, 6)))
    d_rec = torch.from_numpy(rng.uniform(0.5, 8.0, (6, 6)))
    w2 = torch.from_numpy(rng.normal(1.0, 1.5, (3, 6)))
    d2 = torch.from_numpy(rng.uniform(0.0, 5.0, (3, 6)))
    taus = {"tau_mem 1": _scalar(tau_mem), "tau_syn 1": _scalar(tau_syn),
            "tau_mem 2": _scalar(tau_mem), "tau_syn 2": _scalar(tau_syn)}
    s = exact.ExactSettings(tau_mem, tau_syn)

    def loss():
        h = exact.lif(x, w, d, s, w_rec, d_rec,
                      time_constants=torch.stack([taus["tau_mem 1"], taus["tau_syn 1"]]))
        out = exact.lif(h, w2, d2, s,
                        time_constants=torch.stack([taus["tau_mem 2"], taus["tau_syn 2"]]))
        return _spike_loss(out, 9) + _spike_loss(h, 10), h, out

    _, h, out = loss()
    assert int(h.counts_per_unit().max()) >= 4 and out.n_spikes >= 4
    _check(loss, taus)


def test_timing_backward_refuses_time_constant_gradients():
    x = _inputs(1, 3, 20.0, 4, seed=0)
    s = exact.ExactSettings(10.0, 5.0, backward="timing")
    with pytest.raises(ValueError, match="eventprop"):
        exact.lif(x, torch.ones(2, 3, dtype=F64), None, s,
                  time_constants=torch.tensor([10.0, 5.0], dtype=F64, requires_grad=True))

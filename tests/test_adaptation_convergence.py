"""The adaptive LIF neuron (``tau_adapt``) across engines: the time grid converges to the exact
engine's spikes and gradients (weights, delays, input times and the adaptation jumps b) as
dt -> 0 (first order, as the plain neuron), on random networks with mixed-sign weights and
several spikes per neuron; and the options reach the layers from a configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop.config import load_config
from delayprop.training.model import build_network
from problems import random_spikes


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(b.norm(), 1e-30))


def _layer(dt: float | None, seed: int, **kw) -> dp.LIF:
    torch.manual_seed(seed)
    layer = dp.LIF(12, 9, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                   weight_init=dp.Normal(0.45, 0.4), rec_delay_init=(0.0, 6.0),
                   rec_weight_init=dp.Normal(0.0, 0.3), tau_adapt=30.0, adapt_jump=0.3,
                   learn_adapt=True, dtype=torch.float64, **kw)  # fmt: skip
    with torch.no_grad():  # a different jump per neuron
        layer.adaptation.copy_(torch.linspace(0.1, 0.6, 9, dtype=torch.float64))
    return layer


def _spikes_and_grads(layer: dp.LIF, x: dp.Spikes, c: torch.Tensor):
    x_in = x.with_times(x.times.detach().requires_grad_())
    out = layer(x_in)
    (c[out.samples.long(), out.units.long()] * out.times).sum().backward()
    key = out.samples.long() * layer.n_out + out.units.long()
    order = torch.argsort(key * 1e4 + out.times.detach(), stable=True)
    grads = {"weight": layer.weight.grad.reshape(-1), "delay": layer.delay.raw.grad.reshape(-1),
             "input times": x_in.times.grad, "adaptation": layer.adaptation.grad}  # fmt: skip
    if layer.recurrent:
        grads["rec_weight"] = layer.rec_weight.grad.reshape(-1)
    return key[order], out.times.detach()[order], grads


@pytest.mark.parametrize("options", [{}, dict(recurrent=True, rec_max_delay=6.0),
                                     dict(refractory=1.5)])  # fmt: skip
def test_grid_converges_to_the_exact_engine(options):
    """The exact engine's spikes at dt = 1e-3 and 1e-4 ms, and spike times and every gradient
    (including dL/db) converging at first order: the error falls at least 5x from 1e-3 to 1e-4
    ms (measured ~10x; at 1e-2 ms the recurrent network still fires differently)."""
    x = random_spikes(3, 12, 60.0, 50, seed=5, on_grid=0.1)
    c = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 9)))
    exact_layer = _layer(None, seed=3, **options)
    key_e, t_e, g_e = _spikes_and_grads(exact_layer, x, c)
    assert int(torch.bincount(key_e).max()) >= 3, "several spikes per neuron"
    assert bool((exact_layer.weight < 0).any()), "mixed-sign weights"
    assert float(g_e["adaptation"].abs().min()) > 0, "every jump has a gradient"
    time_errors, errors = [], {name: [] for name in g_e}
    for dt in (1e-3, 1e-4):
        key, t, g = _spikes_and_grads(_layer(dt, seed=3, **options), x, c)
        assert torch.equal(key, key_e), f"spike counts differ at dt={dt}"
        time_errors.append(float((t - t_e).abs().max()))
        for name in g_e:
            errors[name].append(_rel(g[name], g_e[name]))
    # a shallow crossing (recurrent case) turns the O(dt) error of V into ~25 steps in time
    assert time_errors[1] < 0.2 * time_errors[0] and time_errors[1] < 0.005, time_errors
    for name, e in errors.items():
        assert e[1] < 0.2 * e[0] and e[1] < 0.02, (name, e)


def test_adaptation_lengthens_the_intervals_of_a_regularly_driven_neuron():
    """One neuron, one input spike every 2 ms of weight 0.6: without adaptation the
    inter-spike intervals settle at once; with it they grow, on both engines alike."""
    times = np.arange(0.0, 200.0, 2.0)
    x = dp.Spikes.from_lists([(times, np.zeros(times.size, dtype=np.int64))], n_units=1,
                             duration=200.0)
    intervals = {}
    for dt in (None, 0.01):
        for b in (0.0, 0.5):
            layer = dp.LIF(1, 1, dt=dt, weight_init=0.6, tau_adapt=50.0, adapt_jump=b,
                           dtype=torch.float64)  # fmt: skip
            with torch.no_grad():
                intervals[dt, b] = layer(x).times.diff()
    plain, adapted = intervals[None, 0.0], intervals[None, 0.5]
    assert float(plain[-5:].max() - plain[-5:].min()) < 0.05
    assert bool((adapted.diff() > 0).all()) and float(adapted[-1]) > 1.25 * float(adapted[0])
    assert float(adapted[0]) > float(plain[0]) and len(adapted) < len(plain)
    for b in (0.0, 0.5):
        assert len(intervals[0.01, b]) == len(intervals[None, b])
        assert float((intervals[0.01, b] - intervals[None, b]).abs().max()) < 0.05


@pytest.mark.parametrize("dt", [0.5, None])
def test_the_options_reach_an_adaptive_layer_from_the_configuration(dt):
    overrides = ["model.hidden=[9]", "model.weight_init=[]", f"model.dt={dt or 'null'}",
                 "model.tau_adapt=40", "model.adapt_jump=0.3",
                 "model.learn_adapt=true"]  # fmt: skip
    cfg = load_config("digits", overrides)
    layer = build_network(cfg.model, 12, 2)[0]
    assert layer.tau_adapt == 40.0 and layer.adaptation.requires_grad
    assert torch.equal(layer.adaptation, torch.full((9,), 0.3, dtype=layer.weight.dtype))
    with torch.no_grad():
        layer.adaptation.fill_(-1.0)
    dp.constrain_(layer)
    assert float(layer.adaptation.detach().min()) == 0.0

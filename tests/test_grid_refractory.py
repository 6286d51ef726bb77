"""Refractory period and spike limit on the time grid (grid mode, CPU kernels).

The Numba kernels against the torch reference (bit-close in float64), the options' hold
semantics on the grid, and convergence to the exact engine's spikes and gradients as dt -> 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop.config import load_config
from delayprop.kernels.reference import lif_reference
from delayprop.training.model import build_network
from problems import random_spikes, spike_loss_weights


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(b.norm(), 1e-30))


def _layer(dt: float | None, seed: int = 0, **kw) -> dp.LIF:
    torch.manual_seed(seed)
    return dp.LIF(12, 9, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                  weight_init=dp.Normal(0.35, 0.4), rec_delay_init=(0.0, 6.0),
                  rec_weight_init=dp.Normal(0.0, 0.3), dtype=torch.float64, **kw)  # fmt: skip


def _grid_and_reference(layer: dp.LIF, x: dp.Spikes, grad_fn):
    x_in = x.with_times(x.times.detach().requires_grad_())
    out = layer(x_in)
    steps = torch.round(out.times.detach() / layer.dt).long()
    (grad_fn(steps, out.units, out.samples) * out.times).sum().backward()
    rec = {}
    if layer.recurrent:
        rec = dict(w_rec=layer.rec_weight.detach(), d_rec=layer.rec_delay().detach(),
                   rec_max_delay_steps=int(round(layer.rec_max_delay / layer.dt)))  # fmt: skip
    ref = lif_reference(
        x.times.detach(), x.units, x.samples, x.batch_size, int(round(x.duration / layer.dt)),
        layer.weight.detach(), layer.delays().detach(), grad_fn, dt=layer.dt,
        tau_mem=layer.tau_mem, tau_syn=layer.tau_syn, threshold=layer.threshold,
        max_delay_steps=int(round(layer.max_delay / layer.dt)), refractory=layer.refractory,
        max_spikes=layer.max_spikes, **rec,
    )  # fmt: skip
    return x_in, out, steps, ref


CASES = {
    "refractory_whole_steps": dict(dt=1.0, refractory=3.0),
    "refractory_rounded_up": dict(dt=0.5, refractory=1.3),
    "limit": dict(dt=1.0, max_spikes=2),
    "both_recurrent": dict(dt=0.5, refractory=2.0, max_spikes=3, recurrent=True,
                           rec_max_delay=6.0),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_grid_kernels_match_reference_float64(case):
    kw = dict(CASES[case])
    layer = _layer(kw.pop("dt"), **kw)
    x = random_spikes(3, 12, 60.0, 40, seed=1)
    grad_fn = spike_loss_weights(2, 3, 9)
    x_in, out, steps, ref = _grid_and_reference(layer, x, grad_fn)
    free = _layer(layer.dt, recurrent=layer.recurrent, rec_max_delay=layer.rec_max_delay)(x)
    assert out.n_spikes > 2 * 9 and out.n_spikes < free.n_spikes, "the options must act"
    assert torch.equal(steps, ref.out_steps)
    assert torch.equal(out.units.long(), ref.out_units)
    assert torch.equal(out.samples.long(), ref.out_samples)
    for got, want in [(x_in.times.grad, ref.grad_in_times), (layer.weight.grad, ref.grad_w),
                      (layer.delay.raw.grad, ref.grad_d)]:  # fmt: skip
        assert _rel(got, want) < 1e-10
    if layer.recurrent:
        assert _rel(layer.rec_weight.grad, ref.grad_w_rec) < 1e-10
        assert _rel(layer.rec_delay.raw.grad, ref.grad_d_rec) < 1e-10
    # the hold: ceil(refractory / dt) silent steps after each spike, at most max_spikes spikes
    ref_steps = -int(-layer.refractory // layer.dt) if layer.refractory else 0
    key = out.samples.long() * 9 + out.units.long()
    counts = torch.bincount(key, minlength=27)
    if layer.max_spikes is not None:
        assert int(counts.max()) == layer.max_spikes
    for k in torch.unique(key):
        s = steps[key == k]
        assert bool((s.diff() >= ref_steps + 1).all())


def test_a_limit_that_is_never_reached_changes_nothing():
    """The kernels' path with options (a limit never reached) == the path without, bit for
    bit, forward and backward."""
    x = random_spikes(3, 12, 60.0, 40, seed=4)
    grad_fn = spike_loss_weights(5, 3, 9)
    results = []
    for limit in (None, 10**6):
        layer = _layer(0.5, recurrent=True, rec_max_delay=6.0, max_spikes=limit)
        x_in, out, _, _ = _grid_and_reference(layer, x, grad_fn)
        results.append((out.times, x_in.times.grad, layer.weight.grad, layer.delay.raw.grad,
                        layer.rec_weight.grad))  # fmt: skip
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _spikes_and_grads(layer: dp.LIF, x: dp.Spikes, c: torch.Tensor):
    x_in = x.with_times(x.times.detach().requires_grad_())
    out = layer(x_in)
    (c[out.samples.long(), out.units.long()] * out.times).sum().backward()
    key = out.samples.long() * layer.n_out + out.units.long()
    order = torch.argsort(key * 1e4 + out.times.detach(), stable=True)
    grads = torch.cat([layer.weight.grad.reshape(-1), layer.delay.raw.grad.reshape(-1)])
    return key[order], out.times.detach()[order], grads


@pytest.mark.parametrize("options", [dict(refractory=2.0), dict(max_spikes=2),
                                     dict(refractory=1.5, max_spikes=3)])  # fmt: skip
def test_grid_converges_to_the_exact_engine(options):
    """Same spikes as the exact engine at dt = 0.1, 0.01, 0.001 ms, times and gradients
    converging; the hold of ceil(refractory / dt) steps ends at most one step late."""
    x = random_spikes(3, 12, 50.0, 40, seed=11, on_grid=0.1)
    c = torch.from_numpy(np.random.default_rng(3).normal(size=(3, 9)))
    exact_layer = _layer(None, seed=2, **options)
    key_e, t_e, g_e = _spikes_and_grads(exact_layer, x, c)
    assert int(torch.bincount(key_e).max()) >= 2, "several spikes per neuron"
    assert bool((exact_layer.weight < 0).any()), "mixed-sign weights"
    time_errors, errors = [], []
    for dt in (0.1, 0.01, 0.001):
        layer = _layer(dt, seed=2, **options)
        key, t, g = _spikes_and_grads(layer, x, c)
        assert torch.equal(key, key_e), f"spike counts differ at dt={dt}"
        time_errors.append(float((t - t_e).abs().max()))
        errors.append(_rel(g, g_e))
    # spike times within a few steps at the finest dt (a shallow crossing turns the O(dt) error
    # of V into a larger one in time); gradients of weights and delays converge
    assert time_errors[2] < 0.3 * time_errors[0] and time_errors[2] < 10 * 0.001, time_errors
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.01, errors


def test_the_options_reach_a_grid_layer_from_the_configuration():
    overrides = ["model.hidden=[9]", "model.weight_init=[]", "model.dt=0.5",
                 "model.refractory=2.0", "model.max_spikes=3"]  # fmt: skip
    cfg = load_config("digits", overrides)
    layer = build_network(cfg.model, 12, 2)[0]
    assert (layer.dt, layer.refractory, layer.max_spikes) == (0.5, 2.0, 3)
    with torch.no_grad():
        layer.weight.copy_(_layer(0.5).weight.to(layer.weight.dtype))
    out = layer(random_spikes(3, 12, 60.0, 40, seed=1))
    key = out.samples.long() * 9 + out.units.long()
    assert int(torch.bincount(key).max()) == 3
    steps = torch.round(out.times / 0.5).long()
    assert all(bool((steps[key == k].diff() >= 5).all()) for k in torch.unique(key))

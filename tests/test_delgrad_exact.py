"""DelGrad's closed forms (methods/delgrad.py) == the exact engine with first-spike neurons.

DelGrad neurons fire once, so the reference is ``LIF(dt=None, max_spikes=1)``: the same spike
times and the same gradients (weights, delays of every parametrisation, input spike times) to
1e-9 in float64, for both tau ratios with closed forms, through two layers, with either backward
pass of the exact engine.  Both networks share the very same parameter tensors and delay modules.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import losses
from delayprop.delays import make_delay
from delayprop.methods.delgrad import TTFSLayer, TTFSNetwork

F64 = torch.float64
TOL = 1e-9
DURATION = 300.0  # ms: longer than any DelGrad spike time here (the exact engine stops there)
LATE = 200.0  # ms: a late input spike, after every output spike


def _layer_pair(n_in: int, n_out: int, ratio: float, kind: str, bound: str, w_mean: float,
                seed: int) -> tuple[TTFSLayer, dp.LIF]:  # fmt: skip
    """A DelGrad layer and an exact first-spike LIF layer sharing weights and one delay module."""
    torch.manual_seed(seed)
    tau_syn = 5.0
    delay = make_delay(kind, n_out, n_in, max_delay=6.0, init=(0.5, 5.5), bound=bound, dtype=F64)
    ttfs = TTFSLayer(n_in, n_out, tau_syn=tau_syn, tau_ratio=ratio,
                     weight_init=dp.Normal(w_mean, 1.5))  # fmt: skip
    ttfs.delay = delay
    lif = dp.LIF(n_in, n_out, dt=None, tau_mem=ratio * tau_syn, tau_syn=tau_syn, delay=delay,
                 max_spikes=1)  # fmt: skip
    lif.weight = ttfs.weight
    return ttfs, lif


def _inputs(batch: int, n_in: int, seed: int) -> dp.Spikes:
    """At most one spike per channel (DelGrad's inputs), some channels silent; sample 0 also
    gets a late spike on a silent channel."""
    rng = np.random.default_rng(seed)
    trains = []
    for _ in range(batch):
        fire = rng.random(n_in) < 0.8
        trains.append((rng.uniform(0.0, 10.0, n_in)[fire], np.flatnonzero(fire)))
    silent = np.setdiff1d(np.arange(n_in), trains[0][1])[0]
    trains[0] = (np.append(trains[0][0], LATE), np.append(trains[0][1], silent))
    return dp.Spikes.from_lists(trains, n_in, DURATION, dtype=F64).requires_grad_()


def _finite(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(t), t, torch.zeros_like(t))


def _assert_same_spikes(t_delgrad: torch.Tensor, t_exact: torch.Tensor) -> None:
    fired = torch.isfinite(t_delgrad)
    assert torch.equal(fired, torch.isfinite(t_exact))
    assert float(t_delgrad[fired].max()) < LATE
    torch.testing.assert_close(_finite(t_exact), _finite(t_delgrad), rtol=0.0, atol=TOL)


@pytest.mark.parametrize("ratio", [2.0, 1.0])
@pytest.mark.parametrize("kind", ["synaptic", "axonal", "dendritic"])
def test_two_layers_spike_times_and_gradients(ratio, kind):
    """tau_mem = ratio * tau_syn; hidden layer with clamped delays, output layer with DelGrad's
    sigmoid-bounded ones."""
    ttfs1, lif1 = _layer_pair(5, 10, ratio, kind, "clamp", 1.2, seed=1)
    ttfs2, lif2 = _layer_pair(10, 3, ratio, kind, "sigmoid", 2.0, seed=2)
    delgrad, reference = TTFSNetwork([ttfs1, ttfs2]), torch.nn.Sequential(lif1, lif2)
    x = _inputs(6, 5, seed=0)
    c = torch.from_numpy(np.random.default_rng(3).normal(size=(6, 3)))
    tensors = list(delgrad.parameters()) + [x.times]
    assert len(tensors) == 5  # two weights, two delay parameters, the input times

    hidden_delgrad = ttfs1(losses.first_spike_times(x, no_spike=math.inf))
    out_delgrad = losses.first_spike_times(delgrad(x), no_spike=math.inf)
    fired = torch.isfinite(hidden_delgrad)
    assert 0 < int(fired.sum()) < fired.numel()  # some hidden neurons stay silent
    assert int(torch.isfinite(out_delgrad).sum()) >= 12
    loss = (c * _finite(out_delgrad)).sum()
    expected = torch.autograd.grad(loss, tensors)
    late = x.times.detach() == LATE

    for backward in ("eventprop", "timing"):
        for m in (lif1, lif2):
            m.backward = backward
        hidden_exact = losses.first_spike_times(lif1(x), no_spike=math.inf)
        out_exact = losses.first_spike_times(reference(x), no_spike=math.inf)
        _assert_same_spikes(hidden_delgrad.detach(), hidden_exact.detach())
        _assert_same_spikes(out_delgrad.detach(), out_exact.detach())
        got = torch.autograd.grad((c * _finite(out_exact)).sum(), tensors)
        for name, g, ref in zip(["w1", "delay1", "w2", "delay2", "input times"], got, expected):
            scale = float(ref.abs().max())
            assert scale > 0, name
            label = f"{backward}, {name}"
            torch.testing.assert_close(g, ref, rtol=TOL, atol=TOL * scale,
                                       msg=lambda m, n=label: f"{n}: {m}")  # fmt: skip
        # an input after every output spike has no effect in either method
        assert float(got[-1][late].abs().max()) == 0.0 == float(expected[-1][late].abs().max())


def _one_neuron(weights: list[float], delays: list[float], times: list[float], ratio: float):
    ttfs, lif = _layer_pair(len(weights), 1, ratio, "synaptic", "clamp", 0.0, seed=4)
    with torch.no_grad():
        ttfs.weight.copy_(torch.tensor([weights]))
        ttfs.delay.raw.copy_(torch.tensor([delays]))
    x = dp.Spikes.from_lists([(times, list(range(len(times))))], len(times), 60.0,
                             dtype=F64).requires_grad_()  # fmt: skip
    return ttfs, lif, x


def _assert_same_single_neuron(ttfs: TTFSLayer, lif: dp.LIF, x: dp.Spikes) -> list[torch.Tensor]:
    t_delgrad = ttfs(losses.first_spike_times(x, no_spike=math.inf))
    out = lif(x)
    assert out.n_spikes == 1
    torch.testing.assert_close(out.times, t_delgrad[0], rtol=0.0, atol=TOL)
    tensors = [ttfs.weight, ttfs.delay.raw, x.times]
    expected = torch.autograd.grad(t_delgrad.sum(), tensors)
    got = torch.autograd.grad(out.times.sum(), tensors)
    for g, ref in zip(got, expected):
        torch.testing.assert_close(g, ref, rtol=TOL, atol=TOL * float(ref.abs().max()))
    return got


def test_inputs_after_the_spike_are_ignored_by_both():
    """One neuron, two early inputs that make it fire and two after its spike (an excitatory
    one that would make a free neuron fire again, an inhibitory one): the late ones change
    nothing in either method."""
    ttfs, lif, x = _one_neuron([3.0, 2.0, 6.0, -1.0], [1.0, 2.0, 0.5, 1.5],
                               [1.0, 2.0, 30.0, 31.0], ratio=2.0)  # fmt: skip
    free = dp.LIF(4, 1, dt=None, tau_mem=10.0, tau_syn=5.0, delay=ttfs.delay)  # no spike limit
    free.weight = ttfs.weight
    assert free(x).n_spikes >= 2
    dw, dd, dt_in = _assert_same_single_neuron(ttfs, lif, x)
    assert float(dw[0, 2:].abs().max()) == 0.0 == float(dd[0, 2:].abs().max())
    assert float(dt_in[2:].abs().max()) == 0.0
    assert float(dw[0, :2].abs().min()) > 0.0


def test_tangent_prefix_that_does_not_fire_keeps_gradients_finite():
    """tau_mem = 2 tau_syn: one input of weight 4 theta alone would touch the threshold
    tangentially (discriminant 0) 6.9 ms later, but a second input arrives before that, so that
    prefix is not the causal set.  Its infinite sqrt derivative must not turn the gradients
    into NaN (it did before)."""
    ttfs, lif, x = _one_neuron([4.0, 1.0], [0.0, 0.0], [1.0, 2.0], ratio=2.0)
    dw, dd, dt_in = _assert_same_single_neuron(ttfs, lif, x)
    assert bool(torch.isfinite(dw).all() & torch.isfinite(dt_in).all())

"""Delay parametrisations: broadcasting, bounds, gradients, optimiser groups."""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop.delays import make_delay
from problems import random_spikes


def _grads(kind: str, values: torch.Tensor, bound: str = "clamp"):
    torch.manual_seed(0)
    layer = dp.LIF(6, 5, max_delay=12.0, delay_kind=kind, weight_init=dp.Normal(0.6, 0.3),
                   delay_bound=bound, dtype=torch.float64)  # fmt: skip
    with torch.no_grad():
        layer.delay.raw.copy_(layer.delay._to_raw(values))
    x = random_spikes(3, 6, 40.0, 20, seed=4)
    out = layer(x)
    (out.times * torch.linspace(1, 2, out.n_spikes, dtype=torch.float64)).sum().backward()
    return layer


def test_axonal_and_dendritic_gradients_are_sums_of_synaptic_ones():
    axonal = torch.tensor([1.0, 4.0, 0.0, 7.0, 2.0, 11.0], dtype=torch.float64)
    dendritic = torch.tensor([3.0, 0.0, 9.0, 5.0, 1.0], dtype=torch.float64)
    for kind, values, full, dim in (
        ("axonal", axonal, axonal.expand(5, 6), 0),
        ("dendritic", dendritic, dendritic.view(5, 1).expand(5, 6), 1),
    ):
        shared = _grads(kind, values)
        synaptic = _grads("synaptic", full.clone())
        expected = synaptic.delay.raw.grad.sum(dim=dim)
        assert float(expected.abs().sum()) > 0
        torch.testing.assert_close(shared.delay.raw.grad, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(shared.weight.grad, synaptic.weight.grad)


def test_sigmoid_bound_keeps_delays_in_range_and_chains_the_gradient():
    values = torch.full((5, 6), 6.0, dtype=torch.float64)
    sig = _grads("synaptic", values, bound="sigmoid")
    lin = _grads("synaptic", values)
    torch.testing.assert_close(sig.delays(), lin.delays())
    s = torch.sigmoid(sig.delay.raw.detach())
    torch.testing.assert_close(sig.delay.raw.grad, lin.delay.raw.grad * 12.0 * s * (1 - s))
    with torch.no_grad():
        sig.delay.raw.fill_(100.0)
    assert float(sig.delays().detach().max()) <= 12.0


def test_constrain_clamps_and_split_parameters_separates_delays():
    model = torch.nn.Sequential(
        dp.LIF(3, 4, max_delay=5.0, recurrent=True, rec_max_delay=2.0),
        dp.LIReadout(4, 2, max_delay=3.0),
    )
    with torch.no_grad():
        model[0].delay.raw.fill_(9.0)
        model[0].rec_delay.raw.fill_(-1.0)
    dp.constrain_(model)
    assert float(model[0].delay.raw.detach().max()) == 5.0
    assert float(model[0].rec_delay.raw.detach().min()) == 0.0
    weights, delays = dp.split_parameters(model)
    assert {id(p) for p in delays} == {id(model[0].delay.raw), id(model[0].rec_delay.raw),
                                       id(model[1].delay.raw)}  # fmt: skip
    assert len(weights) == 3


def test_bad_delay_settings():
    with pytest.raises(ValueError, match="initial delays must lie"):
        dp.LIF(3, 4, max_delay=5.0, delay_init=(0.0, 9.0))
    with pytest.raises(ValueError, match="unknown delay kind"):
        make_delay("somatic", 2, 2, max_delay=1.0)
    with pytest.raises(ValueError, match="bound"):
        dp.LIF(3, 4, max_delay=5.0, delay_bound="tanh")
    with pytest.raises(ValueError, match="max_delay"):
        dp.LIF(3, 4, max_delay=float("nan"))
    layer = dp.LIF(3, 4, max_delay=5.0)
    with torch.no_grad():
        layer.delay.raw[0, 0] = float("nan")
    x = dp.Spikes.from_lists([([1.0], [0])], 3, 10.0)
    with pytest.raises(ValueError, match="delay contains NaN"):
        layer(x)


def test_layer_rejects_mismatched_input():
    layer = dp.LIF(3, 4)
    x = dp.Spikes.from_lists([([1.0], [0])], 5, 10.0)
    with pytest.raises(ValueError, match="input has 5 units"):
        layer(x)
    with pytest.raises(TypeError, match="Spikes"):
        layer(torch.zeros(3))

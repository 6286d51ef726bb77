"""Readout reductions and losses."""

from __future__ import annotations

import math

import pytest
import torch

import delayprop as dp
from delayprop import losses


def test_first_spike_times_picks_first_spike_and_routes_gradient():
    t = torch.tensor([1.0, 2.0, 3.0, 0.5, 4.0], dtype=torch.float64, requires_grad=True)
    s = dp.Spikes.from_arrays(t, [1, 0, 1, 2, 2], [0, 0, 0, 1, 1], 2, 3, 10.0,
                              dtype=torch.float64)  # fmt: skip
    first = losses.first_spike_times(s)
    assert first.tolist() == [[2.0, 1.0, 10.0], [10.0, 10.0, 0.5]]
    first.sum().backward()
    # only the first spike of each (sample, unit) receives gradient
    assert t.grad.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_time_invariant_mse_value():
    t = torch.tensor([[3.0, 1.0, 4.0]])
    loss = losses.time_invariant_mse(t, torch.tensor([1]), delta=2.0)
    assert loss.item() == pytest.approx(0.5 * ((3 - 1 - 2) ** 2 + (4 - 1 - 2) ** 2))
    # invariant to a common shift of all times
    assert losses.time_invariant_mse(t + 7.0, torch.tensor([1])).item() == pytest.approx(0.5)


def test_ttfs_cross_entropy_prefers_early_true_class():
    t = torch.tensor([[1.0, 5.0], [5.0, 1.0]])
    good = losses.ttfs_cross_entropy(t, torch.tensor([0, 1]), xi=1.0, tau_syn=5.0)
    bad = losses.ttfs_cross_entropy(t, torch.tensor([1, 0]), xi=1.0, tau_syn=5.0)
    assert good < bad
    expected = -math.log(math.exp(-1 / 5) / (math.exp(-1 / 5) + math.exp(-5 / 5)))
    assert good.item() == pytest.approx(expected, rel=1e-6)


def test_voltage_reductions():
    v = torch.arange(24, dtype=torch.float64).view(2, 4, 3)
    assert torch.equal(losses.max_over_time(v), v[:, -1])
    assert torch.allclose(losses.mean_over_time(v), v.mean(1))
    assert torch.allclose(losses.sum_over_time(v), v.sum(1))
    w = torch.exp(-torch.arange(4, dtype=torch.float64) / 4)
    assert torch.allclose(losses.exp_weighted_mean(v), (v * w.view(1, 4, 1)).sum(1) / 4)
    assert torch.equal(losses.readout(v, "max"), losses.max_over_time(v))
    with pytest.raises(ValueError, match="unknown readout"):
        losses.readout(v, "median")
    with pytest.raises(ValueError, match=r"\[batch, steps, n_out\]"):
        losses.max_over_time(v[0])


def test_label_checks():
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="labels must lie"):
        losses.cross_entropy(scores, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must be"):
        losses.cross_entropy(scores, torch.tensor([0]))
    assert losses.accuracy(torch.tensor([[0.0, 1.0], [2.0, 1.0]]), torch.tensor([1, 1])) == 0.5

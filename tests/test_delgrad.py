"""DelGrad closed forms: spike times, analytic vs implicit vs finite-difference gradients."""

from __future__ import annotations

import math

import pytest
import torch

import delayprop as dp
from delayprop.methods.delgrad import (
    TTFSLayer,
    TTFSNetwork,
    lambert_w0,
    observed_ttfs,
    psp_kernel,
    spikes_from_times,
    ttfs_times,
)
from delayprop.methods.hardware import HardwareModel, straight_through_round

RATIOS = [(10.0, 5.0), (5.0, 5.0)]


def _problem(seed: int, batch=5, n_in=6, n_out=7):
    g = torch.Generator().manual_seed(seed)
    t_in = torch.rand(batch, n_in, generator=g, dtype=torch.float64) * 10
    t_in[0, 1] = math.inf  # an input that never fires
    w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * 1.5 + 1.0
    d = torch.rand(n_out, n_in, generator=g, dtype=torch.float64) * 5
    return t_in, w, d


def _voltage(t, t_in, w, d, tau_mem, tau_syn):
    """V_j(t) of every (sample, neuron) at times t [..., n_t] from the PSP kernel."""
    t_eff = t_in.unsqueeze(1) + d.unsqueeze(0)  # [b, j, i]
    s = t.unsqueeze(-1) - t_eff.unsqueeze(-2)  # [b, j, n_t, i]
    k, _ = psp_kernel(torch.where(torch.isfinite(s), s, torch.full_like(s, -1.0)),
                      tau_mem, tau_syn)  # fmt: skip
    return (k * w.view(1, w.shape[0], 1, w.shape[1])).sum(-1)


@pytest.mark.parametrize("tau_mem,tau_syn", RATIOS)
def test_spike_times_are_the_first_threshold_crossings(tau_mem, tau_syn):
    t_in, w, d = _problem(0)
    t_out = ttfs_times(t_in, w, d, tau_mem=tau_mem, tau_syn=tau_syn)
    fired = torch.isfinite(t_out)
    assert 0 < int(fired.sum()) < fired.numel()
    v_at = _voltage(torch.where(fired, t_out, torch.zeros_like(t_out)).unsqueeze(-1), t_in, w, d,
                    tau_mem, tau_syn)[..., 0]  # fmt: skip
    assert torch.allclose(v_at[fired], torch.ones_like(v_at[fired]), atol=1e-9)
    grid = torch.linspace(0, 80, 20001, dtype=torch.float64).expand(*t_out.shape, -1)
    v = _voltage(grid, t_in, w, d, tau_mem, tau_syn)
    before = grid < t_out.unsqueeze(-1) - 1e-6
    assert float(v[before].max()) < 1.0  # no earlier crossing; silent neurons never cross


@pytest.mark.parametrize("tau_mem,tau_syn", RATIOS)
def test_closed_form_gradients_equal_implicit_and_finite_differences(tau_mem, tau_syn):
    t_in, w, d = _problem(1)
    c = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    def loss(t_in, w, d, observed=None):
        t = (ttfs_times(t_in, w, d, tau_mem=tau_mem, tau_syn=tau_syn) if observed is None else
             observed_ttfs(t_in, w, d, observed, tau_mem=tau_mem, tau_syn=tau_syn))  # fmt: skip
        return (torch.where(torch.isfinite(t), t, torch.zeros_like(t)) * c).sum()

    params = [p.clone().requires_grad_() for p in (t_in, w, d)]
    analytic = torch.autograd.grad(loss(*params), params)
    observed = ttfs_times(t_in, w, d, tau_mem=tau_mem, tau_syn=tau_syn)
    implicit = torch.autograd.grad(loss(*params, observed=observed), params)
    for a, b in zip(analytic, implicit):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # central finite differences on a few entries of each tensor
    eps = 1e-6
    for k, p in enumerate((t_in, w, d)):
        for idx in [(2, 0), (3, 4), (4, 5)]:
            if not math.isfinite(float(p[idx])):
                continue
            plus, minus = [q.clone() for q in (t_in, w, d)], [q.clone() for q in (t_in, w, d)]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            fd = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert float(analytic[k][idx]) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("kind", ["synaptic", "axonal", "dendritic"])
def test_delay_kinds_in_a_layer(kind):
    torch.manual_seed(0)
    layer = TTFSLayer(6, 7, tau_syn=5.0, tau_ratio=2.0, delay_kind=kind, max_delay=5.0,
                      delay_init=(0.5, 4.5), weight_init=dp.Normal(2.0, 1.5))  # fmt: skip
    t_in, _, _ = _problem(2)
    t = layer(t_in)
    (torch.where(torch.isfinite(t), t, torch.zeros_like(t))).sum().backward()
    grad = layer.delay.raw.grad.clone()
    # the same gradient through the implicit (observed-spikes) path
    layer.zero_grad()
    t2 = layer(t_in, t_observed=t.detach())
    (torch.where(torch.isfinite(t2), t2, torch.zeros_like(t2))).sum().backward()
    torch.testing.assert_close(layer.delay.raw.grad, grad, rtol=1e-9, atol=1e-12)
    assert float(grad.abs().sum()) > 0


def test_lambert_w0_values_and_derivative():
    z = torch.tensor([-math.exp(-1) + 1e-9, -0.3, -0.1, 0.0, 0.5, 2.0, 10.0, 1e4],
                     dtype=torch.float64, requires_grad=True)  # fmt: skip
    w = lambert_w0(z)
    torch.testing.assert_close(w * torch.exp(w), z.detach(), rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(w.sum(), z)
    zz = z.detach()[1:]
    fd = (lambert_w0(zz + 1e-7) - lambert_w0(zz - 1e-7)) / 2e-7
    torch.testing.assert_close(g[1:], fd, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="-1/e"):
        lambert_w0(torch.tensor([-0.5], dtype=torch.float64))


def test_bad_input():
    t_in, w, d = _problem(0)
    with pytest.raises(ValueError, match="tau_mem == tau_syn"):
        ttfs_times(t_in, w, d, tau_mem=15.0, tau_syn=5.0)
    with pytest.raises(ValueError, match=r"\[batch, n_in=6\]"):
        ttfs_times(t_in[:, :3], w, d, tau_mem=10.0, tau_syn=5.0)
    with pytest.raises(ValueError, match="NaN"):
        ttfs_times(t_in * math.nan, w, d, tau_mem=10.0, tau_syn=5.0)
    with pytest.raises(ValueError, match="tau_ratio"):
        TTFSLayer(2, 2, tau_ratio=3.0)


def test_hardware_model():
    hw = HardwareModel(
        threshold_fixed_sd=0.08, threshold_trial_sd=0.04, delay_jitter_sd=0.05, weight_clip=2.1,
        weight_step=1 / 30, delay_step=0.5, multiplex=5,
    )  # fmt: skip
    torch.testing.assert_close(hw.fixed_pattern(30, torch.float64),
                               hw.fixed_pattern(30, torch.float64))  # fmt: skip
    assert hw.multiplex_inputs(torch.zeros(3, 4)).shape == (3, 20)
    w = torch.tensor([3.0, -0.51, 0.02], requires_grad=True)
    q = hw.weights(w)
    assert q.tolist() == pytest.approx([2.1, -0.5, 0.0333333333], abs=1e-6)
    q.sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0]  # clipped entry has no gradient; STE elsewhere
    x = torch.tensor([0.26, 0.74], requires_grad=True)
    r = straight_through_round(x, 0.5)
    assert r.tolist() == [0.5, 0.5]
    r.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    d = hw.delays(torch.full((2, 3), 1.2, dtype=torch.float64), batch=4)
    assert d.shape == (4, 2, 3) and float(d.min()) >= 0
    with pytest.raises(ValueError, match="multiplex"):
        HardwareModel(multiplex=0)


def test_network_maps_spikes_to_spikes_with_hardware_noise():
    hw = HardwareModel(threshold_fixed_sd=0.08, threshold_trial_sd=0.04, multiplex=2)
    torch.manual_seed(0)
    net = TTFSNetwork([TTFSLayer(8, 10, weight_init=dp.Normal(2.5, 1.0), hardware=hw,
                                 delay_kind="axonal", max_delay=4.0, delay_init=1.0),
                       TTFSLayer(10, 3, weight_init=dp.Normal(2.0, 0.5))], hardware=hw)  # fmt: skip
    x = dp.Spikes.from_lists([([1.0, 2.0, 3.0, 4.0], [0, 1, 2, 3]), ([0.5], [1])], 4, 40.0)
    out = net(x)
    assert isinstance(out, dp.Spikes) and out.n_units == 3 and out.batch_size == 2
    assert int(out.counts_per_unit().max()) <= 1
    t = dp.losses.first_spike_times(out)
    t.sum().backward()
    assert net.layers[0].delay.raw.grad is not None
    back = spikes_from_times(torch.tensor([[1.0, math.inf], [50.0, 2.0]]), 40.0)
    assert back.to_lists()[1][0].tolist() == [2.0]

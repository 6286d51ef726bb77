"""BPTT and DCLS baselines: same forward as the engine, correct surrogate BPTT, DCLS kernel."""

from __future__ import annotations

import math

import pytest
import torch

import delayprop as dp
from delayprop import losses
from delayprop.methods import (
    BPTTNetwork,
    DCLSNetwork,
    DCLSProjection,
    build_model,
    copy_parameters,
    sigma_schedule,
)
from delayprop.methods._scan import ScanSettings, li_scan, lif_scan
from problems import random_spikes

N_IN, HIDDEN, N_OUT, DURATION = 12, [9, 7], 3, 60.0
EXCITING = [dp.Normal(0.4, 0.4), dp.Normal(1.2, 0.5), dp.Normal(0.0, 0.5)]


def _engine_run(model, x):
    """Hidden spike rasters [batch, n, steps] and readout voltage of an eventprop Sequential."""
    hidden = []
    h = x
    for layer in model[:-1]:
        h = layer(h)
        hidden.append(h.to_raster(layer.dt, int(DURATION / layer.dt)).transpose(1, 2))
    return hidden, model[-1](h)


def _pair(method, *, dt=1.0, max_delay=0.0, readout_max_delay=0.0, seed=0):
    torch.manual_seed(seed)
    kw = dict(
        n_in=N_IN, hidden=HIDDEN, n_out=N_OUT, dt=dt, max_delay=max_delay,
        delay_init=(0.0, max_delay), readout_max_delay=readout_max_delay,
        readout_delay_init=(0.0, readout_max_delay), weight_init=EXCITING, dtype=torch.float64,
    )  # fmt: skip
    engine = build_model("eventprop", **kw)
    baseline = build_model(method, **kw)
    copy_parameters(engine, baseline)
    return engine, baseline


@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("integer_delays", [True, False])
def test_dcls_one_hot_forward_equals_engine(dt, integer_delays):
    engine, dcls = _pair("dcls", dt=dt, max_delay=10.0, readout_max_delay=6.0)
    if integer_delays:  # delays on the grid; otherwise both must round them the same way
        for layer in engine:
            layer.delay.raw.data = torch.round(layer.delay.raw.data / dt) * dt
        copy_parameters(engine, dcls)
    dcls.eval()
    x = random_spikes(3, N_IN, DURATION, 40, seed=1)
    hid_e, v_e = _engine_run(engine, x)
    hid_d, v_d = dcls.run(x)
    for k, (a, b) in enumerate(zip(hid_e, hid_d)):
        assert float(a.sum()) >= 3 * HIDDEN[k], f"layer {k}: too few spikes for a real test"
        assert torch.equal(a, b), f"hidden layer {k}: spikes differ"
    assert v_d.shape == v_e.shape == (3, int(DURATION / dt), N_OUT)
    assert torch.allclose(v_d, v_e, rtol=0, atol=1e-12)


def test_dcls_delays_change_the_forward():
    """Guards the test above: the one-hot kernel really delays (shifting delays changes V)."""
    engine, dcls = _pair("dcls", max_delay=10.0, readout_max_delay=6.0)
    dcls.eval()
    x = random_spikes(3, N_IN, DURATION, 40, seed=1)
    v0 = dcls(x)
    with torch.no_grad():
        dcls.projections[-1].delay.raw.add_(1.0).clamp_(0, 6.0)
    assert not torch.allclose(dcls(x), v0)


def test_bptt_forward_equals_engine_without_delays():
    engine, bptt = _pair("bptt")
    x = random_spikes(3, N_IN, DURATION, 40, seed=2)
    hid_e, v_e = _engine_run(engine, x)
    hid_b, v_b = bptt.run(x)
    for k, (a, b) in enumerate(zip(hid_e, hid_b)):
        assert float(a.sum()) >= 3 * HIDDEN[k]
        assert torch.equal(a, b), f"hidden layer {k}: spikes differ"
    assert torch.allclose(v_b, v_e, rtol=0, atol=1e-12)
    assert [int(c.sum()) for c in bptt.spike_counts] == [int(h.sum()) for h in hid_e]


def test_input_on_engine_grid_including_late_and_duplicate_spikes():
    """Rounding to the nearest step, several spikes in one bin, and spikes past the last step."""
    x = dp.Spikes.from_lists([([0.4, 0.6, 0.6, 9.6, 9.9], [0, 1, 1, 2, 2])], 3, 10.0)
    net = BPTTNetwork(3, [2], 1, dt=1.0, weight_init=[1.0, 1.0])
    from delayprop.methods._dense import rasterise

    r = rasterise(x, 1.0, torch.float32)
    assert r.shape == (1, 3, 10)
    assert r[0, 0, 0] == 1 and r[0, 1, 1] == 2 and float(r[0, 2].sum()) == 0
    assert net(x).shape == (1, 10, 1)


# ---------------------------------------------------------------------------- surrogate BPTT
class _ATanSpike(torch.autograd.Function):
    """Heaviside with the ATan surrogate derivative (independent oracle for the scan kernel)."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        return g * (a / 2) / (1 + (math.pi * a * x / 2) ** 2), None


def _loop_scan(current, s: ScanSettings, spiking: bool):
    """Plain torch loop over steps, differentiated by autograd."""
    c = dp.kernels.grid_constants(s.dt, s.tau_mem, s.tau_syn, s.threshold)
    v = torch.zeros_like(current[..., 0])
    i = torch.zeros_like(v)
    out = []
    for n in range(current.shape[-1]):
        vp = c.alpha * v + c.c_vi * i
        i = c.beta * i + current[..., n]
        if spiking:
            spike = _ATanSpike.apply(vp - s.threshold, s.surrogate_alpha)
            out.append(spike)
            v = vp * (1 - spike.detach())
        else:
            out.append(vp)
            v = vp
    return torch.stack(out, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lif_scan_matches_autograd_through_a_loop(dtype):
    torch.manual_seed(3)
    s = ScanSettings(dt=1.0, tau_mem=20.0, tau_syn=5.0, threshold=1.0, surrogate_alpha=5.0)
    current = (torch.rand(2, 5, 80, dtype=dtype) < 0.3).to(dtype) * 0.9
    r = torch.randn(2, 5, 80, dtype=dtype)
    a = current.clone().requires_grad_()
    b = current.clone().requires_grad_()
    out_a = lif_scan(a, s)
    out_b = _loop_scan(b, s, True)
    assert float(out_b.detach().sum()) > 10
    assert torch.equal(out_a, out_b)
    (out_a * r).sum().backward()
    (out_b * r).sum().backward()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(a.grad, b.grad, rtol=tol, atol=tol)
    assert float(a.grad.abs().sum()) > 0


def test_li_scan_gradient_by_finite_differences():
    s = ScanSettings(dt=0.5, tau_mem=10.0, tau_syn=5.0, threshold=1.0)
    current = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: li_scan(c, s), (current,))


def test_scan_rejects_bad_input():
    s = ScanSettings(dt=1.0, tau_mem=20.0, tau_syn=5.0, threshold=1.0)
    with pytest.raises(ValueError, match="batch, neurons, n_steps"):
        lif_scan(torch.zeros(3, 4), s)
    with pytest.raises(TypeError, match="float32 or float64"):
        li_scan(torch.zeros(1, 2, 3, dtype=torch.int64), s)


# ---------------------------------------------------------------------------- DCLS kernel
def _projection(seed=0, kernel_size=9, dt=1.0):
    torch.manual_seed(seed)
    return DCLSProjection(
        4, 3, dt=dt, max_delay=(kernel_size - 1) * dt, weight_init=dp.Normal(0, 1),
        dtype=torch.float64,
    )  # fmt: skip


def test_gaussian_kernel_sums_to_the_weight_and_matches_the_formula():
    proj = _projection()
    with torch.no_grad():  # include the edges of the kernel
        proj.delay.raw[0, 0] = 0.0
        proj.delay.raw[0, 1] = 8.0
    for sigma in (4.0, 1.3, 0.23):
        proj.sigma.fill_(sigma)
        k = proj.kernel().detach()
        w = proj.weight.detach()
        assert torch.allclose(k.sum(-1), w, rtol=1e-6)
        # one entry from the published formula, evaluated with scalar math
        d = float(proj.delay.raw.detach()[2, 3])
        s = sigma + 0.27
        g = [math.exp(-0.5 * ((t - (8 - d)) / s) ** 2) for t in range(9)]
        expect = float(w[2, 3]) * g[5] / (sum(g) + 1e-7)
        assert k[2, 3, 5].item() == pytest.approx(expect, rel=1e-12)


def test_gaussian_kernel_peaks_at_the_delay_and_eval_kernel_is_one_hot():
    proj = _projection(dt=0.5)
    with torch.no_grad():
        proj.delay.raw.fill_(1.5)  # 3 steps -> tap 8 - 3 = 5
    proj.sigma.fill_(0.23)
    assert torch.equal(proj.kernel().abs().argmax(-1), torch.full((3, 4), 5))
    proj.eval()
    k = proj.kernel()
    assert torch.equal((k != 0).sum(-1), torch.ones(3, 4, dtype=torch.long))
    assert torch.equal(k[..., 5], proj.weight.detach())


def test_dcls_projection_gradient_by_finite_differences():
    """Gaussian-tap kernel and convolution: dL/dw and dL/d(delay) against finite differences."""
    proj = _projection(kernel_size=7)
    proj.sigma.fill_(1.0)
    x = torch.rand(2, 4, 15, dtype=torch.float64)
    w = proj.weight.detach().clone().requires_grad_()
    d = (proj.delay.raw.detach().clone() * 0.9 + 0.3).requires_grad_()

    def current(w_, d_):
        return torch.func.functional_call(proj, {"weight": w_, "delay.raw": d_}, (x,))

    assert current(w, d).shape == (2, 3, 15)
    assert torch.autograd.gradcheck(current, (w, d))


def test_sigma_schedule():
    d = 65  # kernel of a 64-step max delay: sigma starts at 32
    assert sigma_schedule(0, 100, d) == 32.0
    assert sigma_schedule(25, 100, d) == pytest.approx(0.23)
    assert sigma_schedule(99, 100, d) == pytest.approx(0.23)
    mid = [sigma_schedule(e, 100, d) for e in range(26)]
    ratios = [b / a for a, b in zip(mid[:-1], mid[1:])]
    assert all(r == pytest.approx((0.23 / 32) ** (1 / 25)) for r in ratios)
    assert sigma_schedule(0, 3, d) == pytest.approx(0.23)  # fewer than 4 epochs: no annealing
    with pytest.raises(ValueError, match="n_epochs"):
        sigma_schedule(0, 0, d)
    with pytest.raises(ValueError, match="epoch"):
        sigma_schedule(-1, 10, d)


def test_set_epoch_anneals_every_projection():
    net = DCLSNetwork(4, [5], 2, max_delay=8.0, readout_max_delay=4.0)
    net.set_epoch(10, 40)
    s = [float(p.sigma) for p in net.projections]
    assert s == pytest.approx([0.23, 0.23])
    net.set_epoch(0, 40)
    assert [float(p.sigma) for p in net.projections] == [4.0, 2.0]


# ---------------------------------------------------------------------------- training plumbing
@pytest.mark.parametrize("method", ["bptt", "dcls"])
def test_gradients_flow_to_every_parameter(method):
    torch.manual_seed(4)
    delays = dict(max_delay=10.0, readout_max_delay=5.0) if method == "dcls" else {}
    model = build_model(method, n_in=N_IN, hidden=HIDDEN, n_out=N_OUT, weight_init=EXCITING,
                        **delays)  # fmt: skip
    x = random_spikes(4, N_IN, DURATION, 40, seed=5)
    labels = torch.tensor([0, 1, 2, 0])
    loss = losses.cross_entropy(losses.exp_weighted_mean(model(x)), labels)
    loss.backward()
    weights, delay_params = dp.split_parameters(model)
    assert len(weights) == 3 and len(delay_params) == (3 if method == "dcls" else 0)
    for p in weights + delay_params:
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())
        assert float(p.grad.abs().sum()) > 0
    if method == "dcls":  # one optimiser step, then the delays are clamped into the kernel
        opt = torch.optim.Adam([{"params": weights}, {"params": delay_params, "lr": 50.0}])
        opt.step()
        dp.constrain_(model)
        for p in delay_params:
            assert float(p.detach().min()) >= 0 and float(p.detach().max()) <= 10.0


def test_build_model_rejects_unsupported_combinations():
    base = dict(n_in=4, hidden=[3], n_out=2)
    with pytest.raises(ValueError, match="unknown method"):
        build_model("slayer", **base)
    with pytest.raises(ValueError, match="no delays"):
        build_model("bptt", max_delay=5.0, **base)
    with pytest.raises(ValueError, match="feed-forward only"):
        build_model("dcls", max_delay=5.0, recurrent=True, **base)
    with pytest.raises(ValueError, match="LI"):
        build_model("dcls", max_delay=5.0, readout="lif", **base)
    with pytest.raises(ValueError, match="dt must be > 0"):
        build_model("bptt", dt=None, **base)
    with pytest.raises(ValueError, match="clamp"):
        build_model("dcls", max_delay=5.0, delay_bound="sigmoid", **base)
    with pytest.raises(ValueError, match="one entry per projection"):
        build_model("dcls", max_delay=5.0, weight_init=[None], **base)
    with pytest.raises(ValueError, match="multiple of dt"):
        build_model("dcls", max_delay=2.5, dt=1.0, **base)
    net = build_model("eventprop", recurrent=True, max_delay=2.0, **base)
    assert isinstance(net, torch.nn.Sequential) and net[0].recurrent


def test_baselines_reject_bad_input():
    net = build_model("dcls", n_in=4, hidden=[3], n_out=2, max_delay=3.0)
    with pytest.raises(ValueError, match="4"):
        net(random_spikes(2, 5, 20.0, 5, seed=0))
    with pytest.raises(TypeError, match="Spikes"):
        net(torch.zeros(2, 4, 20))


def test_copy_parameters_checks_delays():
    ep = build_model("eventprop", n_in=4, hidden=[3], n_out=2, max_delay=6.0,
                     delay_init=(1.0, 6.0))  # fmt: skip
    bptt = build_model("bptt", n_in=4, hidden=[3], n_out=2)
    with pytest.raises(ValueError, match="drop_delays"):
        copy_parameters(ep, bptt)
    copy_parameters(ep, bptt, drop_delays=True)
    assert torch.equal(bptt.projections[0].weight, ep[0].weight)
    small = build_model("dcls", n_in=4, hidden=[3], n_out=2, max_delay=2.0)
    with pytest.raises(ValueError, match="max_delay"):
        copy_parameters(ep, small)

"""Numba kernels == pure-torch dense reference (same spikes, same gradients)."""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop.kernels.host import SpikeCapacity
from delayprop.kernels.reference import li_reference, lif_reference
from problems import random_spikes, spike_loss_weights


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(b.norm(), 1e-30))


def _make_lif(dtype, *, max_delay, recurrent=False, rec_max_delay=0.0, dt=1.0, seed=0, **kw):
    torch.manual_seed(seed)
    return dp.LIF(
        12,
        9,
        dt=dt,
        max_delay=max_delay,
        delay_init=(0.0, max_delay),
        weight_init=dp.Normal(0.35, 0.4),
        recurrent=recurrent,
        rec_max_delay=rec_max_delay,
        rec_delay_init=(0.0, rec_max_delay),
        rec_weight_init=dp.Normal(0.0, 0.3),
        dtype=dtype,
        **kw,
    )


def _run_lif(layer: dp.LIF, x: dp.Spikes, grad_fn):
    x = x.with_times(x.times.to(layer.weight.dtype).detach().requires_grad_())
    out = layer(x)
    steps = torch.round(out.times.detach() / layer.dt).long()
    g = grad_fn(steps, out.units, out.samples).to(out.times.dtype)
    (g * out.times).sum().backward()
    return x, out


def _reference_lif(layer: dp.LIF, x: dp.Spikes, grad_fn, kick=None):
    w = layer.weight.detach().double()
    d = layer.delays().detach().double() if layer.delay is not None else torch.zeros_like(w)
    rec = {}
    if layer.recurrent:
        rec = dict(
            w_rec=layer.rec_weight.detach().double(),
            d_rec=(
                layer.rec_delay().detach().double()
                if layer.rec_delay is not None
                else torch.zeros_like(layer.rec_weight.detach().double())
            ),
            rec_max_delay_steps=int(round(layer.rec_max_delay / layer.dt)),
        )
    n_steps = int(round(x.duration / layer.dt))
    return lif_reference(
        x.times.detach().to(layer.weight.dtype), x.units, x.samples, x.batch_size, n_steps, w, d,
        grad_fn, dt=layer.dt, tau_mem=layer.tau_mem, tau_syn=layer.tau_syn,
        threshold=layer.threshold, max_delay_steps=int(round(layer.max_delay / layer.dt)),
        kick=kick, **rec,
    )  # fmt: skip


CASES = {
    "ff_no_delay": dict(max_delay=0.0),
    "ff_delay": dict(max_delay=25.0),
    "rec_zero_delay": dict(max_delay=10.0, recurrent=True, rec_max_delay=0.0),
    "rec_delay": dict(max_delay=10.0, recurrent=True, rec_max_delay=15.0),
    "fine_dt": dict(max_delay=8.0, dt=0.25),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lif_kernel_matches_reference_float64(case):
    layer = _make_lif(torch.float64, **CASES[case])
    x = random_spikes(3, 12, 60.0, 40, seed=1)
    grad_fn = spike_loss_weights(2, 3, 9)
    x_in, out = _run_lif(layer, x, grad_fn)
    ref = _reference_lif(layer, x, grad_fn)

    assert out.n_spikes > 3 * 9, "problem should make several spikes per neuron"
    assert torch.equal(torch.round(out.times.detach() / layer.dt).long(), ref.out_steps)
    assert torch.equal(out.units.long(), ref.out_units)
    assert torch.equal(out.samples.long(), ref.out_samples)
    assert _rel(x_in.times.grad, ref.grad_in_times) < 1e-10
    assert _rel(layer.weight.grad, ref.grad_w) < 1e-10
    if layer.delay is not None:
        assert _rel(layer.delay.raw.grad, ref.grad_d) < 1e-10
        assert float(ref.grad_d.abs().sum()) > 0
    if layer.recurrent:
        assert _rel(layer.rec_weight.grad, ref.grad_w_rec) < 1e-10
        if layer.rec_delay is not None:
            assert _rel(layer.rec_delay.raw.grad, ref.grad_d_rec) < 1e-10


@pytest.mark.parametrize("case", ["ff_delay", "rec_delay"])
def test_lif_kernel_float32_close_to_float64_reference(case):
    layer = _make_lif(torch.float32, **CASES[case])
    x = random_spikes(3, 12, 60.0, 40, seed=3)
    grad_fn = spike_loss_weights(4, 3, 9)
    x_in, out = _run_lif(layer, x, grad_fn)
    ref = _reference_lif(layer, x, grad_fn)
    assert torch.equal(torch.round(out.times.detach() / layer.dt).long(), ref.out_steps)
    assert torch.equal(out.units.long(), ref.out_units)
    assert _rel(x_in.times.grad, ref.grad_in_times) < 1e-5
    assert _rel(layer.weight.grad, ref.grad_w) < 1e-5
    assert _rel(layer.delay.raw.grad, ref.grad_d) < 1e-5


def test_regularizer_kick_matches_reference():
    reg = dp.SpikeCountRegularizer(target=1.0, strength_upper=1.0, strength_lower=0.5)
    layer = _make_lif(torch.float64, max_delay=10.0, regularizer=reg)
    x = random_spikes(4, 12, 60.0, 40, seed=5)
    grad_fn = spike_loss_weights(6, 4, 9)
    x_in, out = _run_lif(layer, x, grad_fn)
    counts = torch.bincount(out.units.long(), minlength=9)
    kick = reg.kick(counts, 4)
    assert bool((kick != 0).any())
    ref = _reference_lif(layer, x, grad_fn, kick=kick)
    assert _rel(layer.weight.grad, ref.grad_w) < 1e-10
    # and the kick changes the gradient
    no_kick = _reference_lif(layer, x, grad_fn)
    assert _rel(no_kick.grad_w, ref.grad_w) > 1e-2


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("max_delay", [0.0, 20.0])
def test_li_kernel_matches_reference(dtype, tol, max_delay):
    torch.manual_seed(7)
    layer = dp.LIReadout(
        12, 5, max_delay=max_delay, delay_init=(0.0, max_delay), weight_init=dp.Normal(0, 0.5),
        dtype=dtype,
    )  # fmt: skip
    x = random_spikes(3, 12, 50.0, 30, seed=8)
    x_in = x.with_times(x.times.to(dtype).detach().requires_grad_())
    r = torch.randn(3, 50, 5, dtype=torch.float64)
    v = layer(x_in)
    (v * r.to(dtype)).sum().backward()
    w = layer.weight.detach().double()
    d = layer.delays().detach().double() if layer.delay is not None else torch.zeros_like(w)
    ref = li_reference(
        x.times.detach().to(dtype), x.units, x.samples, 3, 50, w, d, lambda v: r, dt=1.0,
        tau_mem=20.0, tau_syn=5.0, max_delay_steps=int(max_delay),
    )  # fmt: skip
    assert _rel(v.detach(), ref.voltage) < tol
    assert _rel(x_in.times.grad, ref.grad_in_times) < tol
    assert _rel(layer.weight.grad, ref.grad_w) < tol
    if layer.delay is not None:
        assert _rel(layer.delay.raw.grad, ref.grad_d) < tol


def test_capacity_overflow_reruns_exactly():
    """A layer whose spike-capacity guess is far too small gives the same result."""
    layer = _make_lif(torch.float64, max_delay=10.0)
    x = random_spikes(5, 12, 60.0, 60, seed=9)
    layer.spike_capacity = SpikeCapacity(2)
    out_small = layer(x)
    assert layer.spike_capacity.per_sample > 2  # the host layer sized it from the counts
    layer.spike_capacity = SpikeCapacity(100_000)
    out_big = layer(x)
    assert out_small.n_spikes > 5 * 2
    assert torch.equal(out_small.times, out_big.times)
    assert torch.equal(out_small.units, out_big.units)
    assert torch.equal(out_small.offsets, out_big.offsets)


def test_empty_samples_and_empty_batch():
    layer = _make_lif(torch.float32, max_delay=5.0)
    x = dp.Spikes.from_lists([([], []), ([1.0, 2.0], [0, 3]), ([], [])], 12, 30.0)
    out = layer(x)
    assert out.batch_size == 3
    x0 = dp.Spikes.from_lists([([], [])], 12, 30.0)
    out0 = layer(x0)
    assert out0.n_spikes == 0
    readout = dp.LIReadout(12, 2)
    v = readout(x0)
    assert v.shape == (1, 30, 2) and float(v.detach().abs().sum()) == 0.0

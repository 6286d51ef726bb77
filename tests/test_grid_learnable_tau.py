"""Learnable time constants (``learn_tau``) on the time grid: the one-step coefficients against
the closed-form flow, the Numba kernels against the torch reference (float64), convergence to
the exact engine's dL/dtau_mem, dL/dtau_syn as dt -> 0, training through the CLI, and the
refusals (precise mode, adaptation).  The CUDA kernels' time-constant gradients are checked
against the CPU kernels in tests/cuda_checks.py (simulator, and GPU where there is one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop.cli import main
from delayprop.functional import GridSettings, li_readout, lif
from delayprop.kernels import formulas
from delayprop.kernels._grid_math import TAU_STEP, grid_constants
from delayprop.kernels.lif_flow import tau_sensitivity_flow
from delayprop.kernels.reference import li_reference, lif_reference
from problems import random_spikes, spike_loss_weights

F64 = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(b.norm(), 1e-30))


@pytest.mark.parametrize("tau_mem,tau_syn", [(20.0, 5.0), (5.0, 20.0), (5.0005, 5.0), (5.0, 5.0)])
@pytest.mark.parametrize("dt", [1e-3, 0.5, 4.0])
def test_one_step_is_the_closed_form_flow(tau_mem, tau_syn, dt):
    """``tau_adjoint_step`` with the packed coefficients == ``tau_sensitivity_flow`` over dt."""
    c = grid_constants(dt, tau_mem, tau_syn, 1.0)
    k = tuple(c.packed(np.float64)[TAU_STEP:].tolist())
    assert k == c.tau_step and len(k) == 8
    delta = formulas.rate_difference(tau_mem, tau_syn)
    for x in np.random.default_rng(0).normal(size=(20, 5)):
        want = tau_sensitivity_flow(*x, dt, tau_mem, tau_syn, delta)
        got = formulas.tau_adjoint_step(*x, k)
        assert np.allclose(got, want, rtol=1e-13, atol=1e-13 * np.abs(x).max() * max(dt, 1.0))


def _layer(dt: float, seed: int = 0, **kw) -> dp.LIF:
    torch.manual_seed(seed)
    return dp.LIF(12, 9, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                  weight_init=dp.Normal(0.35, 0.4), rec_delay_init=(0.0, 6.0),
                  rec_weight_init=dp.Normal(0.0, 0.3), dtype=F64, learn_tau=True, tau_mem=10.0,
                  tau_syn=4.0, **kw)  # fmt: skip


CASES = {
    "feed_forward": dict(dt=0.5),
    "recurrent": dict(dt=0.5, recurrent=True, rec_max_delay=6.0),
    "refractory_recurrent": dict(dt=0.25, refractory=1.3, recurrent=True, rec_max_delay=6.0),
    "refractory_limit": dict(dt=1.0, refractory=2.0, max_spikes=4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lif_kernels_match_reference_float64(case):
    kw = dict(CASES[case])
    dt = kw.pop("dt")
    layer = _layer(dt, **kw)
    x = random_spikes(3, 12, 60.0, 40, seed=1)
    grad_fn = spike_loss_weights(2, 3, 9)
    out = layer(x)
    steps = torch.round(out.times.detach() / dt).long()
    (grad_fn(steps, out.units, out.samples) * out.times).sum().backward()
    assert int(torch.bincount(out.samples.long() * 9 + out.units.long()).max()) >= 3
    assert bool((layer.weight < 0).any()), "mixed-sign weights"
    rec = {}
    if layer.recurrent:
        rec = dict(w_rec=layer.rec_weight.detach(), d_rec=layer.rec_delay().detach(),
                   rec_max_delay_steps=int(round(layer.rec_max_delay / dt)))  # fmt: skip
    ref = lif_reference(
        x.times.detach(), x.units, x.samples, x.batch_size, int(round(x.duration / dt)),
        layer.weight.detach(), layer.delays().detach(), grad_fn, dt=dt, tau_mem=layer.tau_mem,
        tau_syn=layer.tau_syn, threshold=layer.threshold,
        max_delay_steps=int(round(layer.max_delay / dt)), refractory=layer.refractory,
        max_spikes=layer.max_spikes, **rec,
    )  # fmt: skip
    assert torch.equal(steps, ref.out_steps)
    assert float(ref.grad_tau.abs().min()) > 0
    assert _rel(layer.time_constants.grad, ref.grad_tau) < 1e-10
    assert _rel(layer.weight.grad, ref.grad_w) < 1e-10


def test_readout_kernels_match_reference_float64():
    torch.manual_seed(1)
    readout = dp.LIReadout(12, 4, dt=0.5, max_delay=10.0, delay_init=(0.0, 10.0),
                           weight_init=dp.Normal(0.0, 1.0), dtype=F64, learn_tau=True)  # fmt: skip
    x = random_spikes(3, 12, 60.0, 40, seed=2)
    v = readout(x)
    g = torch.randn(v.shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    (v * g).sum().backward()
    ref = li_reference(
        x.times.detach(), x.units, x.samples, x.batch_size, v.shape[1], readout.weight.detach(),
        readout.delays().detach(), lambda _v: g, dt=0.5, tau_mem=readout.tau_mem,
        tau_syn=readout.tau_syn, max_delay_steps=20,
    )  # fmt: skip
    assert float(ref.grad_tau.abs().min()) > 0
    assert _rel(readout.time_constants.grad, ref.grad_tau) < 1e-10


def test_learn_tau_changes_no_other_result():
    """Spikes and the gradients of weights, delays and input times are bit for bit those of a
    layer without learn_tau."""
    x = random_spikes(3, 12, 60.0, 40, seed=4)
    grad_fn = spike_loss_weights(5, 3, 9)
    results = []
    for learn in (False, True):
        torch.manual_seed(0)
        layer = dp.LIF(12, 9, dt=0.5, max_delay=10.0, delay_init=(0.0, 10.0),
                       weight_init=dp.Normal(0.35, 0.4), recurrent=True, rec_max_delay=6.0,
                       rec_delay_init=(0.0, 6.0), rec_weight_init=dp.Normal(0.0, 0.3),
                       refractory=1.0, dtype=F64, learn_tau=learn)  # fmt: skip
        x_in = x.with_times(x.times.detach().requires_grad_())
        out = layer(x_in)
        steps = torch.round(out.times.detach() / 0.5).long()
        (grad_fn(steps, out.units, out.samples) * out.times).sum().backward()
        results.append((out.times, x_in.times.grad, layer.weight.grad, layer.delay.raw.grad,
                        layer.rec_weight.grad, layer.rec_delay.raw.grad))  # fmt: skip
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def _network(dt: float | None, **kw) -> tuple[dp.LIF, dp.LIReadout]:
    torch.manual_seed(3)
    hidden = dp.LIF(12, 9, dt=dt, max_delay=10.0, delay_init=(0.0, 10.0),
                    weight_init=dp.Normal(0.45, 0.4), rec_delay_init=(0.0, 6.0),
                    rec_weight_init=dp.Normal(0.0, 0.3), dtype=F64, learn_tau=True,
                    tau_mem=10.0, tau_syn=5.0, **kw)  # fmt: skip
    readout = dp.LIReadout(9, 3, dt=dt, max_delay=5.0, delay_init=(0.0, 5.0),
                           weight_init=dp.Normal(0.0, 1.0), dtype=F64, learn_tau=True,
                           tau_mem=8.0, tau_syn=4.0)  # fmt: skip
    return hidden, readout


def _tau_grads(dt: float | None, x: dp.Spikes, c: torch.Tensor, c_v: torch.Tensor, **kw):
    """Spike keys (sample * n_out + unit, sorted) and dL/d(tau_mem, tau_syn) of both layers for
    a loss on the hidden spike times and on the readout voltage at t = 0, 1, 2, ... ms."""
    hidden, readout = _network(dt, **kw)
    h = hidden(x)
    v = readout(h)
    if dt is not None:  # the exact trace is sampled every 1 ms (sample_dt)
        v = v[:, :: int(round(1.0 / dt))]
    loss = (c[h.samples.long(), h.units.long()] * h.times).sum() + (c_v * v).sum()
    loss.backward()
    key = torch.sort(h.samples.long() * 9 + h.units.long()).values
    return key, hidden.time_constants.grad, readout.time_constants.grad


@pytest.mark.parametrize("options", [{}, dict(recurrent=True, rec_max_delay=6.0),
                                     dict(refractory=1.5)])  # fmt: skip
def test_grid_converges_to_the_exact_engine(options):
    """dL/dtau_mem, dL/dtau_syn of a LIF layer and of an LI readout at dt = 1e-2, 1e-3, 1e-4 ms
    approach the exact engine's at first order: the same spike counts at the two finer steps
    and an error that falls at least 4x over the last decade (measured 6x to 30x)."""
    x = random_spikes(3, 12, 60.0, 50, seed=5, on_grid=0.1)
    c = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 9)))
    c_v = torch.from_numpy(np.random.default_rng(6).normal(size=(3, 60, 3)))
    key_e, hidden_e, readout_e = _tau_grads(None, x, c, c_v, **options)
    assert int(torch.bincount(key_e).max()) >= 3, "several spikes per neuron"
    errors: dict[str, list[float]] = {"hidden": [], "readout": []}
    for dt in (1e-2, 1e-3, 1e-4):
        key, g_hidden, g_readout = _tau_grads(dt, x, c, c_v, **options)
        if dt < 1e-2:
            assert torch.equal(key, key_e), f"spike counts differ at dt={dt}"
        errors["hidden"].append(_rel(g_hidden, hidden_e))
        errors["readout"].append(_rel(g_readout, readout_e))
    for name, e in errors.items():
        assert e[2] < 0.25 * e[1] < 0.25 * e[0] and e[2] < 0.02, (name, e)


def test_training_through_the_cli_moves_the_time_constants(tmp_path):
    out = tmp_path / "digits"
    code = main(["train", "digits", "--out", str(out), "--quiet", "--set", "train.epochs=2",
                 "train.max_batches=2", "train.batch_size=8", "train.eval_batch_size=16",
                 "model.dt=0.5", "model.learn_tau=true"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2
    start = torch.load(out / "initial.pt", weights_only=False)["model"]
    end = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    names = [k for k in start if k.endswith("time_constants")]
    assert len(names) == 2
    for k in names:
        assert bool(torch.isfinite(end[k]).all())
        assert float((end[k] - start[k]).abs().min()) > 0.0, k


def _settings(**kw) -> GridSettings:
    return GridSettings(**{"tau_mem": 10.0, "tau_syn": 5.0, "threshold": 1.0, "dt": 0.5,
                           "n_steps": 40, "max_delay_steps": 0, **kw})  # fmt: skip


def test_time_constants_replace_the_settings_and_are_checked():
    x = random_spikes(2, 3, 20.0, 6, seed=0)
    w = torch.full((2, 3), 2.0, dtype=F64)
    taus = torch.tensor([10.0, 5.0], dtype=F64, requires_grad=True)
    other = lif(x, w, None, _settings(tau_mem=30.0, tau_syn=1.0))
    same = lif(x, w, None, _settings(tau_mem=30.0, tau_syn=1.0), time_constants=taus)
    assert torch.equal(same.times, lif(x, w, None, _settings()).times)
    assert not torch.equal(same.times, other.times)
    for bad in (torch.ones(3, dtype=F64), torch.ones(1, 2, dtype=F64)):
        with pytest.raises(ValueError, match=r"time_constants must be a tensor \[2\]"):
            lif(x, w, None, _settings(), time_constants=bad)
        with pytest.raises(ValueError, match=r"time_constants must be a tensor \[2\]"):
            li_readout(x, w, None, _settings(), time_constants=bad)
    with pytest.raises(ValueError, match="tau_mem"):
        lif(x, w, None, _settings(), time_constants=torch.tensor([-1.0, 5.0], dtype=F64))


def test_refusals():
    x = random_spikes(1, 3, 20.0, 4, seed=0)
    w = torch.ones(2, 3, dtype=F64)
    taus = torch.tensor([10.0, 5.0], dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="precise=False"):
        lif(x, w, None, _settings(precise=True), time_constants=taus)
    with pytest.raises(ValueError, match="precise=False"):
        li_readout(x, w, None, _settings(precise=True), time_constants=taus)
    with pytest.raises(ValueError, match="adaptive neurons"):
        lif(x, w, None, _settings(tau_adapt=30.0), adaptation=torch.zeros(2, dtype=F64),
            time_constants=taus)  # fmt: skip
    with pytest.raises(ValueError, match="learn_tau needs precise=False"):
        dp.LIF(3, 4, dt=0.5, learn_tau=True, precise=True)
    with pytest.raises(ValueError, match="learn_tau and tau_adapt"):
        dp.LIF(3, 4, dt=0.5, learn_tau=True, tau_adapt=30.0)
    layer = dp.LIF(3, 4, dt=0.5, learn_tau=True)
    layer.precise = True
    with pytest.raises(ValueError, match=r"\(learn_tau\) need precise=False"):
        layer(x)

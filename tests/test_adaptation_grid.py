"""Adaptive LIF neurons on the time grid (``functional.lif`` with ``GridSettings.tau_adapt`` and
``adaptation=b``), CPU kernels.

The Numba kernels against the torch reference (float64, bit-close), b = 0 against no
adaptation (bit for bit), one neuron against an independent dense simulation of the model and
its gradients against finite differences of the forward pass, and the errors of the API.  The
CUDA kernels are compared with the CPU kernels in ``cuda_checks.py`` (cases ``lif_adapt_*``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop.functional import GridSettings, lif
from delayprop.kernels import grid_constants
from delayprop.kernels.reference import lif_reference
from problems import random_spikes, spike_loss_weights

TAU_MEM, TAU_SYN, THRESHOLD = 20.0, 5.0, 1.0
N_IN, N_OUT, BATCH, DURATION = 12, 9, 3, 60.0


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(b.norm(), 1e-30))


def _params(seed: int, recurrent: bool, b_scale: float = 1.0) -> dict[str, torch.Tensor | None]:
    """Mixed-sign weights [n_out, n_in], delays (ms), recurrent ones, and jumps b > 0."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    p = dict(
        weight=torch.randn(N_OUT, N_IN, generator=g, dtype=torch.float64) * 0.5 + 0.5,
        delay=rnd(N_OUT, N_IN) * 10.0,
        rec_weight=torch.randn(N_OUT, N_OUT, generator=g, dtype=torch.float64) * 0.3,
        rec_delay=rnd(N_OUT, N_OUT) * 6.0,
        adaptation=(0.1 + 0.5 * rnd(N_OUT)) * b_scale,
    )
    if not recurrent:
        p["rec_weight"] = p["rec_delay"] = None
    return {k: None if v is None else v.requires_grad_() for k, v in p.items()}


def _settings(dt: float, tau_adapt: float | None, **kw) -> GridSettings:
    return GridSettings(TAU_MEM, TAU_SYN, THRESHOLD, dt, int(round(DURATION / dt)),
                        max_delay_steps=int(round(10.0 / dt)),
                        rec_max_delay_steps=int(round(6.0 / dt)), tau_adapt=tau_adapt,
                        **kw)  # fmt: skip


def _run(x: dp.Spikes, p: dict, s: GridSettings, grad_fn, adaptive: bool = True):
    """Output spikes (steps, units, samples) and the gradients of sum grad_fn * t."""
    x_in = x.with_times(x.times.detach().requires_grad_())
    for t in p.values():
        if t is not None:
            t.grad = None
    out = lif(x_in, p["weight"], p["delay"], s, p["rec_weight"], p["rec_delay"],
              adaptation=p["adaptation"] if adaptive else None)  # fmt: skip
    steps = torch.round(out.times.detach() / s.dt).long()
    (grad_fn(steps, out.units, out.samples) * out.times).sum().backward()
    grads = {"in": x_in.times.grad}
    grads.update({k: t.grad for k, t in p.items() if t is not None})
    return out, steps, grads


@pytest.mark.parametrize("tau_adapt", [5.0, 20.0, 150.0])
def test_adaptation_coefficients_are_those_of_a_current_with_tau_adapt(tau_adapt):
    """beta_a, c_va, c_adj_a: beta, c_vi, c_adj of a synaptic current with tau_adapt for tau_syn
    (also where tau_adapt == tau_mem), packed after the spike limit; none without adaptation."""
    c = grid_constants(0.5, TAU_MEM, TAU_SYN, THRESHOLD, tau_adapt=tau_adapt)
    like = grid_constants(0.5, TAU_MEM, tau_adapt, THRESHOLD)
    assert (c.beta_a, c.c_va, c.c_adj_a) == (like.beta, like.c_vi, like.c_adj)
    assert c.adaptive and c.packed(np.float64)[11:15].tolist() == [c.beta_a, c.c_va, c.c_adj_a,
                                                                   tau_adapt]  # fmt: skip
    plain = grid_constants(0.5, TAU_MEM, TAU_SYN, THRESHOLD)
    assert not plain.adaptive and plain.packed(np.float64)[11:15].tolist() == [0.0] * 4
    assert plain.packed(np.float64)[:11].tolist() == c.packed(np.float64)[:11].tolist()


CASES = {
    "feed_forward": dict(dt=0.5),
    "recurrent": dict(dt=0.5, recurrent=True),
    "refractory": dict(dt=0.5, refractory=2.0),
    "recurrent_refractory_limit": dict(dt=0.25, recurrent=True, refractory=1.3, max_spikes=4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_match_reference_float64(case):
    kw = dict(CASES[case])
    dt, recurrent = kw.pop("dt"), kw.pop("recurrent", False)
    p = _params(3, recurrent)
    assert bool((p["weight"] < 0).any()), "mixed-sign weights"
    x = random_spikes(BATCH, N_IN, DURATION, 80, seed=1)
    grad_fn = spike_loss_weights(2, BATCH, N_OUT)
    s = _settings(dt, 40.0, **kw)
    out, steps, grads = _run(x, p, s, grad_fn)
    free, _, _ = _run(x, p, _settings(dt, None, **kw), grad_fn, adaptive=False)
    assert out.n_spikes > 3 * BATCH * N_OUT, f"too few spikes to test: {out.n_spikes}"
    assert out.n_spikes < free.n_spikes, "the adaptation must act"
    rec = {}
    if recurrent:
        rec = dict(w_rec=p["rec_weight"].detach(), d_rec=p["rec_delay"].detach(),
                   rec_max_delay_steps=s.rec_max_delay_steps)  # fmt: skip
    ref = lif_reference(
        x.times, x.units, x.samples, BATCH, s.n_steps, p["weight"].detach(),
        p["delay"].detach(), grad_fn, dt=dt, tau_mem=TAU_MEM, tau_syn=TAU_SYN,
        threshold=THRESHOLD, max_delay_steps=s.max_delay_steps, refractory=s.refractory,
        max_spikes=s.max_spikes, tau_adapt=40.0, adaptation=p["adaptation"].detach(), **rec,
    )  # fmt: skip
    assert torch.equal(steps, ref.out_steps)
    assert torch.equal(out.units.long(), ref.out_units)
    assert torch.equal(out.samples.long(), ref.out_samples)
    want = {"in": ref.grad_in_times, "weight": ref.grad_w, "delay": ref.grad_d,
            "adaptation": ref.grad_b}  # fmt: skip
    if recurrent:
        want.update(rec_weight=ref.grad_w_rec, rec_delay=ref.grad_d_rec)
    assert grads.keys() == want.keys()
    assert float(grads["adaptation"].abs().min()) > 0, "every neuron's dL/db is used"
    for name, value in want.items():
        assert _rel(grads[name], value) < 1e-10, name


@pytest.mark.parametrize("case", ["recurrent", "recurrent_refractory_limit"])
def test_zero_jumps_are_bit_identical_to_no_adaptation(case):
    """b = 0: the adaptive path of the kernels gives the spikes and gradients of the plain path
    bit for bit (A stays 0), and dL/db is still returned."""
    kw = dict(CASES[case])
    dt, recurrent = kw.pop("dt"), kw.pop("recurrent", False)
    x = random_spikes(BATCH, N_IN, DURATION, 80, seed=4)
    grad_fn = spike_loss_weights(5, BATCH, N_OUT)
    p = _params(6, recurrent, b_scale=0.0)
    out_a, _, grads_a = _run(x, p, _settings(dt, 40.0, **kw), grad_fn)
    out_p, _, grads_p = _run(x, p, _settings(dt, None, **kw), grad_fn, adaptive=False)
    assert out_p.n_spikes > 3 * BATCH * N_OUT
    for name in ("times", "units", "offsets"):
        assert torch.equal(getattr(out_a, name), getattr(out_p, name)), name
    b_grad = grads_a.pop("adaptation")
    assert grads_p.pop("adaptation") is None
    assert b_grad.shape == (N_OUT,) and float(b_grad.abs().max()) > 0
    for name, value in grads_p.items():
        assert torch.equal(grads_a[name], value), name


# ----------------------------------------------------------------------------- one neuron
DRIVE_PERIOD, DRIVE_W = 0.01, 0.005  # ms, V units: I ~ DRIVE_W tau_syn / DRIVE_PERIOD = 2.5
ONE_DURATION, ONE_TAU_MEM, ONE_TAU_ADAPT = 150.0, 10.0, 100.0


def _drive() -> dp.Spikes:
    """One input unit firing every DRIVE_PERIOD ms from t = 0: a nearly constant current."""
    t = np.arange(0.0, ONE_DURATION - 1.0, DRIVE_PERIOD)
    return dp.Spikes.from_lists([(t, np.zeros(t.size, dtype=np.int64))], 1, ONE_DURATION,
                                dtype=torch.float64)  # fmt: skip


def _one_neuron(dt: float, w: float, b: float, tau_adapt: float | None = ONE_TAU_ADAPT,
                **kw) -> tuple[dp.Spikes, torch.Tensor, torch.Tensor]:  # fmt: skip
    weight = torch.tensor([[w]], dtype=torch.float64, requires_grad=True)
    jump = torch.tensor([b], dtype=torch.float64, requires_grad=True)
    s = GridSettings(ONE_TAU_MEM, TAU_SYN, THRESHOLD, dt, int(round(ONE_DURATION / dt)), 0,
                     tau_adapt=tau_adapt, **kw)  # fmt: skip
    out = lif(_drive(), weight, None, s, adaptation=jump if tau_adapt is not None else None)
    return out, weight, jump


def _dense_simulation(w: float, b: float, h: float) -> np.ndarray:
    """Spike times (ms) of the model, integrated independently of the kernels: V by forward
    Euler with step h, I and A decaying exactly, I += w at the input times (after the
    threshold test, as on the grid), V <- 0 and A += b when V reaches the threshold."""
    n_per_input = int(round(DRIVE_PERIOD / h))
    n_inputs = len(np.arange(0.0, ONE_DURATION - 1.0, DRIVE_PERIOD))
    decay_i, decay_a = math.exp(-h / TAU_SYN), math.exp(-h / ONE_TAU_ADAPT)
    v = i = a = 0.0
    spikes = []
    for n in range(int(round(ONE_DURATION / h))):
        v += h / ONE_TAU_MEM * (-v + i - a)
        i *= decay_i
        a *= decay_a
        if v >= THRESHOLD:
            spikes.append(n * h)
            v = 0.0
            a += b
        if n % n_per_input == 0 and n // n_per_input < n_inputs:
            i += w
    return np.array(spikes)


def test_one_neuron_matches_a_dense_simulation_and_adapts():
    """A regularly driven neuron: the grid's spike times agree with an independent dense
    simulation, and with adaptation its inter-spike intervals grow (without, they do not)."""
    dt, h = 0.01, 0.002
    out, _, _ = _one_neuron(dt, DRIVE_W, 0.3)
    times = out.times.detach().numpy()
    dense = _dense_simulation(DRIVE_W, 0.3, h)
    assert times.size == dense.size and times.size >= 8, (times, dense)
    # each spike is found up to a step late (and V reset then): the lag grows by < dt + h
    lag = np.abs(times - dense)
    assert (lag < (dt + h) * np.arange(1, times.size + 1)).all(), lag
    isi = np.diff(times)
    assert (np.diff(isi) > 0).all() and isi[-1] > 2 * isi[0], isi
    # without adaptation the intervals shrink while I builds up, then stay (within a step)
    plain = np.diff(_one_neuron(0.01, DRIVE_W, 0.0, tau_adapt=None)[0].times.detach().numpy())
    assert plain.size > 2 * isi.size and (np.diff(plain) < 0.011).all(), plain


@pytest.mark.parametrize("refractory", [0.0, 2.0])
def test_one_neuron_gradients_match_finite_differences(refractory):
    """dL/db and dL/dw of L = sum_k c_k t_k over the first spikes, against central differences
    of the forward pass on a fine grid (the spikes move by many steps)."""
    dt, w, b, n = 0.001, DRIVE_W, 0.3, 8
    c = torch.from_numpy(np.random.default_rng(0).normal(size=n))

    def loss(w_: float, b_: float, grad: bool = False):
        out, weight, jump = _one_neuron(dt, w_, b_, refractory=refractory)
        assert out.n_spikes >= n
        value = (c * out.times[:n]).sum()
        if grad:
            value.backward()
            return float(weight.grad[0, 0]), float(jump.grad[0])
        return float(value.detach())

    grad_w, grad_b = loss(w, b, grad=True)
    for h_w, h_b, got in ((2e-5, 0.0, grad_w), (0.0, 0.01, grad_b)):
        h = h_w + h_b
        fd = (loss(w + h_w, b + h_b) - loss(w - h_w, b - h_b)) / (2 * h)
        assert abs(got - fd) < 0.03 * abs(fd), (got, fd)


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    x = random_spikes(2, N_IN, DURATION, 20, seed=0)
    p = _params(0, False)
    w, d, b = p["weight"], p["delay"], p["adaptation"].detach()
    s = _settings(0.5, 40.0)
    bad = {
        "needs the adaptation jumps": (s, None),
        "tau_adapt is None": (_settings(0.5, None), b),
        "adaptation must be [9]": (s, b[:5]),
        "adaptation contains NaN": (s, torch.where(b > 0.3, math.nan, b)),
        "must be >= 0": (s, b - 1.0),
        "adaptation is torch.float32": (s, b.float()),
        "tau_adapt must be > 0": (_settings(0.5, 0.0), b),
        "tau_adapt must be > 0 and finite": (_settings(0.5, math.inf), b),
        "precise=True has no adaptation": (_settings(0.5, 40.0, precise=True), b),
    }
    for message, (settings, jumps) in bad.items():
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            lif(x, w, d, settings, adaptation=jumps)

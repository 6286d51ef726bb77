"""Learnable time constants: exact-engine gradients of tau_mem and tau_syn == central finite
differences (float64), and training with ``learn_tau``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact
from delayprop.verify import check_gradients
from problems import random_spikes

F64 = torch.float64
RTOL = 1e-5


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=F64, requires_grad=True)


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time, independent of the spike order."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _first_spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth function of the first spike time of every (sample, neuron) that fires."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    total = spikes.times.new_zeros(())
    for b in range(spikes.batch_size):
        lo, hi = int(spikes.offsets[b]), int(spikes.offsets[b + 1])
        seen: set[int] = set()
        for k in range(lo, hi):
            u = int(spikes.units[k])
            if u not in seen:
                seen.add(u)
                total = total + r[u] * torch.sin(0.2 * spikes.times[k])
    return total


def _check(loss_fn, inputs: dict[str, torch.Tensor]) -> None:
    """Step 1e-5 ms: these networks have events that change order (not count) within 2e-4 ms
    of the time constants, where the loss has a kink."""
    report = check_gradients(loss_fn, inputs, eps=1e-5)
    report.assert_ok(rtol=RTOL, min_checked=1)
    for name in inputs:
        assert float(inputs[name].grad.abs()) > 0.0, name


CASES = [
    # tau_mem, tau_syn, refractory (ms)
    (20.0, 5.0, 0.0),
    (10.0, 5.0, 0.0),
    (5.0005, 5.0, 0.0),
    (5.0, 5.0, 0.0),
    (20.0, 5.0, 2.0),
    (5.0005, 5.0, 1.5),
]


@pytest.mark.parametrize("tau_mem,tau_syn,refractory", CASES)
def test_lif_to_readout_time_constants(tau_mem, tau_syn, refractory):
    """LIF (mixed-sign weights, several spikes per neuron) -> LI readout; a trace loss and a
    first-spike loss on the hidden layer; both layers' time constants."""
    duration = 40.0
    rng = np.random.default_rng(3)
    x = random_spikes(2, 6, duration, 14, seed=4, span=0.7)
    w1 = torch.from_numpy(rng.normal(2.0, 2.5, (7, 6)))
    d1 = torch.from_numpy(rng.uniform(0.0, 12.0, (7, 6)))
    w2 = torch.from_numpy(rng.normal(0.0, 1.0, (3, 7)))
    d2 = torch.from_numpy(rng.uniform(0.0, 6.0, (3, 7)))
    target = torch.from_numpy(rng.normal(0.0, 0.3, (2, 40, 3)))
    taus = {"tau_mem 1": _scalar(tau_mem), "tau_syn 1": _scalar(tau_syn),
            "tau_mem 2": _scalar(0.7 * tau_mem), "tau_syn 2": _scalar(1.3 * tau_syn)}
    s1 = exact.ExactSettings(tau_mem, tau_syn, refractory=refractory)
    s2 = exact.ExactSettings(1.0, 1.0, threshold=float("inf"), sample_dt=1.0)

    def loss():
        h = exact.lif(x, w1, d1, s1,
                      time_constants=torch.stack([taus["tau_mem 1"], taus["tau_syn 1"]]))
        v = exact.li_readout(h, w2, d2, s2,
                             time_constants=torch.stack([taus["tau_mem 2"], taus["tau_syn 2"]]))
        return ((v - target) ** 2).sum() + _first_spike_loss(h, 5) + _spike_loss(h, 6), h

    _, h = loss()
    assert int(h.counts_per_unit().max()) >= 4  # several spikes per neuron
    _check(loss, taus)


@pytest.mark.parametrize("tau_mem,tau_syn", [(20.0, 5.0), (5.0005, 5.0)])
def test_recurrent_two_layers_time_constants(tau_mem, tau_syn):
    """ff + recurrent LIF layer -> LIF layer, spike-time losses on both."""
    duration = 50.0
    rng = np.random.default_rng(7)
    x = random_spikes(2, 5, duration, 10, seed=8, span=0.7)
    w = torch.from_numpy(rng.normal(2.0, 1.5, (6, 5)))
    d = torch.from_numpy(rng.uniform(0.0, 10.0, (6, 5)))
    w_rec = torch.from_numpy(rng.normal(0.0, 1.0, (6, 6)))
    d_rec = torch.from_numpy(rng.uniform(0.5, 8.0, (6, 6)))
    w2 = torch.from_numpy(rng.normal(1.0, 1.5, (3, 6)))
    d2 = torch.from_numpy(rng.uniform(0.0, 5.0, (3, 6)))
    taus = {"tau_mem 1": _scalar(tau_mem), "tau_syn 1": _scalar(tau_syn),
            "tau_mem 2": _scalar(tau_mem), "tau_syn 2": _scalar(tau_syn)}
    s = exact.ExactSettings(tau_mem, tau_syn)

    def loss():
        h = exact.lif(x, w, d, s, w_rec, d_rec,
                      time_constants=torch.stack([taus["tau_mem 1"], taus["tau_syn 1"]]))
        out = exact.lif(h, w2, d2, s,
                        time_constants=torch.stack([taus["tau_mem 2"], taus["tau_syn 2"]]))
        return _spike_loss(out, 9) + _spike_loss(h, 10), h, out

    _, h, out = loss()
    assert int(h.counts_per_unit().max()) >= 4 and out.n_spikes >= 4
    _check(loss, taus)


@pytest.mark.parametrize("tau_mem,tau_syn", [(10.0, 5.0), (5.0, 5.0)])
def test_peak_readout_time_constants(tau_mem, tau_syn):
    """Loss on the LI readout's exact maximum (value and time), mixed-sign weights."""
    rng = np.random.default_rng(11)
    x = random_spikes(3, 6, 30.0, 10, seed=12, span=0.7)
    w = torch.from_numpy(rng.normal(0.5, 1.5, (4, 6)))
    d = torch.from_numpy(rng.uniform(0.0, 8.0, (4, 6)))
    taus = {"tau_mem": _scalar(tau_mem), "tau_syn": _scalar(tau_syn)}
    s = exact.ExactSettings(tau_mem, tau_syn, threshold=float("inf"))

    def loss():
        value, time = exact.li_peak(x, w, d, s,
                                    time_constants=torch.stack([taus["tau_mem"], taus["tau_syn"]]))
        return (value**2).sum() + torch.sin(0.2 * time).sum()

    _check(loss, taus)


def test_timing_backward_refuses_time_constant_gradients():
    x = random_spikes(1, 3, 20.0, 4, seed=0, span=0.7)
    s = exact.ExactSettings(10.0, 5.0, backward="timing")
    with pytest.raises(ValueError, match="eventprop"):
        exact.lif(x, torch.ones(2, 3, dtype=F64), None, s,
                  time_constants=torch.tensor([10.0, 5.0], dtype=F64, requires_grad=True))


def test_learn_tau_makes_parameters_and_refuses_the_precise_mode():
    layer = dp.LIF(3, 4, dt=None, learn_tau=True, tau_mem=10.0, tau_syn=2.0)
    readout = dp.LIReadout(4, 2, dt=None, learn_tau=True)
    assert layer.time_constants.tolist() == [10.0, 2.0] and readout.time_constants is not None
    assert dp.time_constant_parameters(torch.nn.Sequential(layer, readout)) == [
        layer.time_constants, readout.time_constants]
    assert dp.LIF(3, 4, dt=None).time_constants is None
    with pytest.raises(ValueError, match="learn_tau needs precise=False"):
        dp.LIF(3, 4, dt=0.5, learn_tau=True, precise=True)
    with pytest.raises(ValueError, match="tau_min"):
        dp.LIF(3, 4, dt=None, learn_tau=True, tau_mem=300.0)
    layer.dt = 0.5
    layer.precise = True
    with pytest.raises(ValueError, match=r"\(learn_tau\) need precise=False"):
        layer(random_spikes(1, 3, 20.0, 4, seed=0, span=0.7))


def test_training_moves_tau_and_keeps_it_within_bounds():
    """Adam on the time constants alone, with a large rate: they move, constrain_ keeps them
    in [tau_min, tau_max], and the forward pass uses the learned values."""
    torch.manual_seed(0)
    x = random_spikes(4, 5, 30.0, 12, seed=1, span=0.7)
    hidden = dp.LIF(5, 8, dt=None, learn_tau=True, tau_min=2.0, tau_max=30.0,
                    weight_init=2.0)
    readout = dp.LIReadout(8, 2, dt=None, learn_tau=True, tau_min=2.0, tau_max=30.0)
    model = torch.nn.Sequential(hidden, readout)
    taus = dp.time_constant_parameters(model)
    start = [t.detach().clone() for t in taus]
    opt = torch.optim.Adam(taus, lr=3.0)
    for _ in range(6):
        opt.zero_grad()
        loss = -model(x).sum()
        loss.backward()
        assert all(float(t.grad.abs().min()) > 0.0 for t in taus)
        opt.step()
        dp.constrain_(model)
        for t in taus:
            assert float(t.detach().min()) >= 2.0 and float(t.detach().max()) <= 30.0
    assert all(float((t.detach() - s).abs().min()) > 0.5
               for t, s in zip(taus, start, strict=True))  # fmt: skip
    model(x)
    assert [hidden.tau_mem, hidden.tau_syn] == hidden.time_constants.tolist()


def test_trainer_gives_time_constants_their_own_group():
    from delayprop.config import load_config
    from delayprop.data import load_dataset
    from delayprop.training import Splits, Trainer

    cfg = load_config("yinyang", ["model.learn_tau=true", "train.tau_lr=0.5", "train.epochs=1",
                                  "train.batch_size=50"])  # fmt: skip
    opts = cfg.data.options
    train = load_dataset("yinyang", "train", **opts).subset(np.arange(100))
    val = load_dataset("yinyang", "validation", **opts)
    trainer = Trainer(cfg, quiet=True, splits=Splits(train, val.subset(np.arange(50)),
                                                     val.subset(np.arange(50, 100))))
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    taus = dp.time_constant_parameters(trainer.model)
    assert len(taus) == 2 and groups["time constants"]["params"] == taus
    assert all(all(p is not t for t in taus) for p in groups["weights"]["params"])
    start = [t.detach().clone() for t in taus]
    trainer.fit()
    moved = [float((t.detach() - s).abs().max()) for t, s in zip(taus, start, strict=True)]
    assert max(moved) > 0.0
    for t in taus:
        assert cfg.model.tau_min <= float(t.detach().min())
        assert float(t.detach().max()) <= cfg.model.tau_max


def test_loaded_or_constrained_time_constants_reach_the_attributes_and_the_export():
    source = torch.nn.Sequential(dp.LIF(3, 4, dt=None, learn_tau=True, tau_mem=12.0, tau_syn=3.0),
                                 dp.LIReadout(4, 2, dt=None, learn_tau=True))  # fmt: skip
    target = torch.nn.Sequential(dp.LIF(3, 4, dt=None, learn_tau=True),
                                 dp.LIReadout(4, 2, dt=None, learn_tau=True))  # fmt: skip
    target.load_state_dict(source.state_dict())  # no forward pass in between
    assert (target[0].tau_mem, target[0].tau_syn) == (12.0, 3.0)
    with torch.no_grad():
        target[1].time_constants.copy_(torch.tensor([500.0, 0.1], dtype=torch.float64))
    dp.constrain_(target)  # clamped into [tau_min, tau_max] and copied to the attributes
    assert (target[1].tau_mem, target[1].tau_syn) == target[1].tau_bounds[::-1]
    with torch.no_grad():
        target[0].time_constants.copy_(torch.tensor([7.0, 2.5], dtype=torch.float64))
    pytest.importorskip("nir")
    from delayprop.nir import to_graph

    graph = to_graph(target)
    taus = {name: (float(np.asarray(node.tau_mem).flat[0]), float(np.asarray(node.tau_syn).flat[0]))
            for name, node in graph.nodes.items() if hasattr(node, "tau_mem")}  # fmt: skip
    assert (7.0, 2.5) in taus.values()

"""Time constants per neuron (``tau_per_neuron``, ``time_constants`` [2, n_out]) on the exact
engine: dL/dtau_mem[j], dL/dtau_syn[j] of every neuron == central finite differences (float64),
one pair per layer bit for bit the case of equal columns, the layer option, its checks, the
NIR round trip and a training run from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import exact
from delayprop.cli import main
from delayprop.verify import check_gradients
from problems import random_spikes

F64 = torch.float64
RTOL = 1e-6


def _taus(tau_mem: float, tau_syn: float, n_out: int, seed: int, equal: int = 0) -> torch.Tensor:
    """[2, n_out] ms, a pair per neuron spread around (tau_mem, tau_syn); neuron ``equal`` has
    tau_mem == tau_syn exactly (the limit form of the flow)."""
    rng = np.random.default_rng(seed)
    values = np.stack([tau_mem * rng.uniform(0.6, 1.5, n_out),
                       tau_syn * rng.uniform(0.6, 1.5, n_out)])  # fmt: skip
    values[:, equal] = tau_syn
    return torch.tensor(values, dtype=F64, requires_grad=True)


def _spike_loss(spikes: dp.Spikes, seed: int) -> torch.Tensor:
    """A smooth nonlinear function of every spike time, independent of the spike order."""
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=spikes.n_units))
    return (r[spikes.units.long()] * torch.cos(0.3 * spikes.times)).sum()


def _check(loss_fn, inputs: dict[str, torch.Tensor]) -> None:
    """Every entry (every neuron's tau_mem and tau_syn) compared, step 1e-5 ms; perturbations
    that change a spike count are skipped (most entries must remain)."""
    report = check_gradients(loss_fn, inputs, eps=1e-5)
    report.assert_ok(rtol=RTOL, min_checked=1)
    for name, t in inputs.items():
        assert report[name].checked >= 0.75 * t.numel(), report
        assert bool((t.grad != 0).all()), (name, t.grad)


@pytest.mark.parametrize("refractory", [0.0, 1.5])
def test_lif_to_readout_per_neuron_gradients(refractory):
    """LIF (mixed-sign weights, several spikes per neuron) -> LI readout trace, a trace loss
    and a spike-time loss; the pairs differ per neuron, one neuron of each layer has
    tau_mem == tau_syn."""
    rng = np.random.default_rng(3)
    x = random_spikes(2, 6, 40.0, 14, seed=4, span=0.7)
    w1 = torch.from_numpy(rng.normal(2.0, 2.5, (7, 6)))
    d1 = torch.from_numpy(rng.uniform(0.0, 12.0, (7, 6)))
    w2 = torch.from_numpy(rng.normal(0.0, 1.0, (3, 7)))
    d2 = torch.from_numpy(rng.uniform(0.0, 6.0, (3, 7)))
    target = torch.from_numpy(rng.normal(0.0, 0.3, (2, 40, 3)))
    taus = {"hidden": _taus(12.0, 5.0, 7, seed=1, equal=2),
            "readout": _taus(8.0, 4.0, 3, seed=2, equal=1)}  # fmt: skip
    s1 = exact.ExactSettings(20.0, 5.0, refractory=refractory)  # pair unused: per neuron
    s2 = exact.ExactSettings(1.0, 1.0, threshold=float("inf"), sample_dt=1.0)

    def loss():
        h = exact.lif(x, w1, d1, s1, time_constants=taus["hidden"])
        v = exact.li_readout(h, w2, d2, s2, time_constants=taus["readout"])
        return ((v - target) ** 2).sum() + _spike_loss(h, 6), h

    _, h = loss()
    assert int(h.counts_per_unit().max()) >= 4  # several spikes per neuron
    _check(loss, taus)


def test_recurrent_per_neuron_gradients():
    """ff + recurrent LIF layer -> LIF layer, spike-time losses on both."""
    rng = np.random.default_rng(7)
    x = random_spikes(2, 5, 50.0, 10, seed=8, span=0.7)
    w = torch.from_numpy(rng.normal(2.0, 1.5, (6, 5)))
    d = torch.from_numpy(rng.uniform(0.0, 10.0, (6, 5)))
    w_rec = torch.from_numpy(rng.normal(0.0, 1.0, (6, 6)))
    d_rec = torch.from_numpy(rng.uniform(0.5, 8.0, (6, 6)))
    w2 = torch.from_numpy(rng.normal(1.0, 1.5, (3, 6)))
    d2 = torch.from_numpy(rng.uniform(0.0, 5.0, (3, 6)))
    taus = {"recurrent": _taus(15.0, 5.0, 6, seed=3, equal=4),
            "output": _taus(10.0, 5.0, 3, seed=4, equal=0)}  # fmt: skip
    s = exact.ExactSettings(20.0, 5.0)

    def loss():
        h = exact.lif(x, w, d, s, w_rec, d_rec, time_constants=taus["recurrent"])
        out = exact.lif(h, w2, d2, s, time_constants=taus["output"])
        return _spike_loss(out, 9) + _spike_loss(h, 10), h, out

    _, h, out = loss()
    assert int(h.counts_per_unit().max()) >= 4 and out.n_spikes >= 4
    _check(loss, taus)


def test_peak_readout_per_neuron_gradients():
    """Loss on the LI readout's exact maximum (value and time), mixed-sign weights."""
    rng = np.random.default_rng(11)
    x = random_spikes(3, 6, 30.0, 10, seed=12, span=0.7)
    w = torch.from_numpy(rng.normal(0.5, 1.5, (4, 6)))
    d = torch.from_numpy(rng.uniform(0.0, 8.0, (4, 6)))
    taus = {"readout": _taus(10.0, 5.0, 4, seed=5, equal=3)}
    s = exact.ExactSettings(10.0, 5.0, threshold=float("inf"))

    def loss():
        value, time = exact.li_peak(x, w, d, s, time_constants=taus["readout"])
        return (value**2).sum() + torch.sin(0.2 * time).sum()

    _check(loss, taus)


def _network_outputs(time_constants):
    """Spike times, trace, peak and every gradient of a recurrent LIF -> LI network whose
    layers take ``time_constants(tau_mem, tau_syn, n_out)`` (a leaf tensor or None)."""
    rng = np.random.default_rng(21)
    x = random_spikes(2, 5, 40.0, 12, seed=22, span=0.7)
    params = [torch.from_numpy(a).requires_grad_() for a in (
        rng.normal(2.0, 1.5, (6, 5)), rng.uniform(0.0, 10.0, (6, 5)),
        rng.normal(0.0, 1.0, (6, 6)), rng.uniform(0.5, 8.0, (6, 6)),
        rng.normal(0.0, 1.0, (3, 6)), rng.uniform(0.0, 5.0, (3, 6)))]  # fmt: skip
    w, d, w_rec, d_rec, w2, d2 = params
    tc1, tc2 = time_constants(10.0, 10.0, 6), time_constants(7.0, 3.0, 3)  # tm == ts in layer 1
    s1 = exact.ExactSettings(10.0, 10.0, refractory=1.0)
    s2 = exact.ExactSettings(7.0, 3.0, threshold=float("inf"), sample_dt=1.0)
    h = exact.lif(x, w, d, s1, w_rec, d_rec, time_constants=tc1)
    v = exact.li_readout(h, w2, d2, s2, time_constants=tc2)
    value, time = exact.li_peak(h, w2, d2, s2, time_constants=tc2)
    loss = (v**2).sum() + _spike_loss(h, 3) + (value**2).sum() + torch.sin(time).sum()
    loss.backward()
    leaves = params + [t for t in (tc1, tc2) if t is not None]
    return [h.times, v, value, time] + [p.grad for p in leaves]


def test_one_pair_per_layer_is_the_case_of_equal_columns_bit_for_bit():
    """No time constants, a pair [2], and [2, n_out] with every column that pair: the same
    spikes, voltages and gradients bit for bit (one code path), and the per-neuron gradient
    sums to the pair's."""
    none = _network_outputs(lambda tm, ts, n: None)
    pair = _network_outputs(lambda tm, ts, n: torch.tensor([tm, ts], dtype=F64,
                                                           requires_grad=True))  # fmt: skip
    columns = _network_outputs(lambda tm, ts, n: torch.tensor([[tm] * n, [ts] * n], dtype=F64,
                                                              requires_grad=True))  # fmt: skip
    assert none[0].numel() > 20
    n = len(none)
    for a, b, c in zip(none, pair[:n], columns[:n], strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    for g_pair, g_cols in zip(pair[n:], columns[n:], strict=True):
        assert g_cols.dim() == 2 and g_pair.shape == (2,)
        torch.testing.assert_close(g_cols.sum(dim=1), g_pair, rtol=1e-12, atol=0.0)


def test_time_constant_tensors_are_checked():
    x = random_spikes(1, 3, 20.0, 4, seed=0, span=0.7)
    w = torch.ones(4, 3, dtype=F64)
    s = exact.ExactSettings(10.0, 5.0)
    for bad in (torch.ones(2, 3, dtype=F64), torch.ones(3, 4, dtype=F64),
                torch.ones(2, 4, 1, dtype=F64)):  # fmt: skip
        with pytest.raises(ValueError, match=r"\[2, n_out\] = \[2, 4\]"):
            exact.lif(x, w, None, s, time_constants=bad)
    for value in (0.0, -1.0, float("inf"), float("nan")):
        tc = torch.full((2, 4), 5.0, dtype=F64)
        tc[1, 2] = value
        with pytest.raises(ValueError, match="positive finite"):
            exact.lif(x, w, None, s, time_constants=tc)
    readout = exact.ExactSettings(10.0, 5.0, threshold=float("inf"), sample_dt=1.0)
    with pytest.raises(ValueError, match="positive finite"):
        exact.li_readout(x, w, None, readout, time_constants=torch.tensor([5.0, -1.0], dtype=F64))
    with pytest.raises(ValueError, match=r"\[2, n_out\]"):
        exact.li_peak(x, w, None, readout, time_constants=torch.ones(2, 5, dtype=F64))
    timing = exact.ExactSettings(10.0, 5.0, backward="timing")
    with pytest.raises(ValueError, match="eventprop"):
        exact.lif(x, w, None, timing, time_constants=torch.full((2, 4), 5.0, dtype=F64))
    adaptive = exact.ExactSettings(10.0, 5.0, tau_adapt=50.0)
    with pytest.raises(ValueError, match="adaptation"):
        exact.lif(x, w, None, adaptive, time_constants=torch.full((2, 4), 5.0, dtype=F64),
                  adaptation=torch.zeros(4, dtype=F64))


def test_layer_option_constrain_and_the_time_grid():
    layer = dp.LIF(3, 4, dt=None, learn_tau=True, tau_per_neuron=True, tau_mem=10.0,
                   tau_syn=2.0, tau_min=1.0, tau_max=50.0)  # fmt: skip
    readout = dp.LIReadout(4, 2, dt=None, learn_tau=True, tau_per_neuron=True)
    assert layer.time_constants.tolist() == [[10.0] * 4, [2.0] * 4]
    assert readout.time_constants.shape == (2, 2)
    model = torch.nn.Sequential(layer, readout)
    assert dp.time_constant_parameters(model) == [layer.time_constants, readout.time_constants]
    with torch.no_grad():
        layer.time_constants.copy_(torch.tensor([[0.1, 7.0, 60.0, 3.0], [2.0, 2.0, 0.5, 80.0]]))
    dp.constrain_(model)
    assert layer.time_constants.tolist() == [[1.0, 7.0, 50.0, 3.0], [2.0, 2.0, 1.0, 50.0]]
    assert (layer.tau_mem, layer.tau_syn) == (10.0, 2.0)  # the initial values
    assert torch.equal(layer.neuron_time_constants(), layer.time_constants.detach())
    with pytest.raises(ValueError, match="needs learn_tau"):
        dp.LIF(3, 4, dt=None, tau_per_neuron=True)
    with pytest.raises(ValueError, match="exact engine"):
        dp.LIF(3, 4, dt=0.5, learn_tau=True, tau_per_neuron=True)
    layer.dt = 0.5
    with pytest.raises(ValueError, match="time constants per neuron .* only on the exact"):
        layer(random_spikes(1, 3, 20.0, 4, seed=0, span=0.7))


def test_layers_train_their_time_constants_per_neuron():
    """The layers pass their [2, n_out] time constants to the engine: gradients per neuron,
    and after a few Adam steps the neurons' time constants differ."""
    torch.manual_seed(0)
    x = random_spikes(4, 5, 30.0, 12, seed=1, span=0.7)
    hidden = dp.LIF(5, 8, dt=None, learn_tau=True, tau_per_neuron=True, tau_min=2.0,
                    tau_max=30.0, weight_init=2.0)  # fmt: skip
    readout = dp.LIReadout(8, 2, dt=None, learn_tau=True, tau_per_neuron=True, tau_min=2.0,
                           tau_max=30.0)  # fmt: skip
    model = torch.nn.Sequential(hidden, readout)
    taus = dp.time_constant_parameters(model)
    opt = torch.optim.Adam(taus, lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        (-model(x).sum() - readout.max_over_time(hidden(x))[0].sum()).backward()
        assert all(t.grad.shape == t.shape for t in taus)
        opt.step()
        dp.constrain_(model)
    for t in taus:
        assert float(t.detach()[0].std()) > 0.0 and float(t.detach()[1].std()) > 0.0


def test_nir_round_trip_keeps_time_constants_per_neuron(tmp_path):
    nir = pytest.importorskip("nir")
    from delayprop.nir import export, load

    model = torch.nn.Sequential(
        dp.LIF(3, 4, dt=None, learn_tau=True, tau_per_neuron=True, max_delay=2.0),
        dp.LIReadout(4, 2, dt=None, learn_tau=True, tau_per_neuron=True),
    )
    with torch.no_grad():
        model[0].time_constants.copy_(torch.tensor([[4.0, 9.0, 5.0, 250.0], [2.0, 3.0, 5.0, 1.0]]))
    export(model, tmp_path / "net.nir")
    node = nir.read(str(tmp_path / "net.nir")).nodes["layer0.neurons"]
    assert np.asarray(node.tau_mem).tolist() == [4.0, 9.0, 5.0, 250.0]
    assert np.asarray(node.tau_syn).tolist() == np.asarray(node.w_in).tolist() == [2, 3, 5, 1]
    back = load(tmp_path / "net.nir")
    assert torch.equal(back[0].time_constants, model[0].time_constants)
    assert back[0].tau_bounds == (0.5, 250.0)  # widened to hold the values
    assert back[1].time_constants is None  # every neuron the same pair: one per layer
    assert (back[1].tau_mem, back[1].tau_syn) == (20.0, 5.0)
    x = random_spikes(2, 3, 30.0, 8, seed=3, span=0.7)
    assert torch.equal(back(x), model(x))
    grid = torch.nn.Sequential(dp.LIF(3, 4, dt=0.5), dp.LIReadout(4, 2, dt=0.5))
    export(grid, tmp_path / "grid.nir")
    graph = nir.read(str(tmp_path / "grid.nir"))
    graph.nodes["layer0.neurons"].tau_mem[1] = 7.0
    from delayprop.nir import from_graph

    with pytest.raises(ValueError, match="layer0.neurons: .* only on the exact engine"):
        from_graph(graph)


def test_cli_trains_time_constants_per_neuron(tmp_path):
    """Two epochs of yinyang from the command line: the time constants become heterogeneous."""
    out = tmp_path / "run"
    code = main(["train", "yinyang", "--out", str(out), "--quiet", "--set", "train.epochs=2",
                 "train.max_batches=3", "train.batch_size=20", "train.eval_batch_size=50",
                 "model.learn_tau=true", "model.tau_per_neuron=true",
                 "train.tau_lr=0.5"])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and np.isfinite(metrics["history"][-1]["train_loss"])
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    found = [v for k, v in _tensors(state) if k.endswith("time_constants")]
    assert found and all(t.dim() == 2 for t in found)
    assert any(float(t[0].std()) > 0.0 and float(t[1].std()) > 0.0 for t in found)


def _tensors(state, prefix: str = ""):
    """(name, tensor) of every tensor in a saved checkpoint (nested dicts)."""
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))

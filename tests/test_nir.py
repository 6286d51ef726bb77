"""NIR export and import (delayprop.nir) and the export command."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop import nir as dnir
from delayprop.cli import main
from delayprop.hardware import apply_profile
from delayprop.training.runs import load_run


def _net(dt: float | None, kind: str = "synaptic", dtype=None) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        dp.LIF(5, 8, dt=dt, max_delay=3.0, delay_kind=kind, delay_init=(0.0, 3.0),
               weight_init=dp.Normal(1.5, 0.7), recurrent=True, rec_max_delay=2.0,
               rec_delay_init=(0.0, 2.0), rec_weight_init=dp.Normal(0.0, 0.3), dtype=dtype),
        dp.LIReadout(8, 3, dt=dt, max_delay=1.0, delay_init=(0.0, 1.0),
                     weight_init=dp.Normal(0.0, 0.5), sample_dt=None if dt else 0.1,
                     dtype=dtype),
    )  # fmt: skip


def _spikes(dtype) -> dp.Spikes:
    g = torch.Generator().manual_seed(1)
    return dp.Spikes.from_raster((torch.rand(4, 200, 5, generator=g) < 0.03).float(), 0.1,
                                 dtype=dtype)  # fmt: skip


@pytest.mark.parametrize("kind", ["synaptic", "axonal", "dendritic"])
@pytest.mark.parametrize("dt", [0.1, None])
def test_round_trip_reproduces_outputs_bit_for_bit(tmp_path, kind, dt):
    net = _net(dt, kind)
    if dt is not None:
        apply_profile(net, "loihi")  # the file holds the quantised values the forward uses
    x = _spikes(net[0].weight.dtype)
    dnir.export(net, tmp_path / "net.nir")
    back = dnir.load(tmp_path / "net.nir")
    with dp.SpikeRecorder([net[0]]) as recorder:
        assert torch.equal(net(x), back(x))
    assert recorder.counts[0].sum() > 0  # the hidden layer is active, so spikes matter
    assert back[0].recurrent and back[0].delay.kind == kind


def test_round_trip_keeps_the_precise_mode(tmp_path):
    torch.manual_seed(2)
    net = torch.nn.Sequential(
        dp.LIF(5, 8, dt=0.5, max_delay=3.0, delay_init=(0.0, 3.0), precise=True,
               weight_init=dp.Normal(1.5, 0.7)),
        dp.LIReadout(8, 3, dt=0.5, max_delay=1.0, delay_init=(0.0, 1.0), precise=True),
    )  # fmt: skip
    x = _spikes(torch.float32)
    dnir.export(net, tmp_path / "net.nir")
    back = dnir.load(tmp_path / "net.nir")
    assert back[0].precise and back[1].precise
    with dp.SpikeRecorder([net[0]]) as recorder:
        assert torch.equal(net(x), back(x))
    assert recorder.counts[0].sum() > 0


def test_graph_structure_follows_the_mapping():
    net = _net(0.1)
    g = dnir.to_graph(net)
    fan, delay, lin = (g.nodes[f"layer0.{n}"] for n in ("fanout", "delay", "linear"))
    assert fan.weight.shape == (40, 5) and np.all(fan.weight.sum(1) == 1)  # one-hot fan-out
    assert delay.delay.shape == (40,)  # one channel per synapse
    w, d = (t.detach().numpy() for t in net[0].effective_parameters())
    assert np.array_equal(lin.weight.sum(1), w.sum(1))
    assert np.array_equal(delay.delay.reshape(8, 5), d)
    lif = g.nodes["layer0.neurons"]
    assert isinstance(lif, nir.CubaLIF) and isinstance(g.nodes["layer1.neurons"], nir.CubaLI)
    assert np.all(lif.w_in == lif.tau_syn) and np.all(lif.r == 1) and np.all(lif.v_leak == 0)
    assert ("layer0.rec.linear", "layer0.neurons") in g.edges  # the recurrent cycle
    assert ("layer0.neurons", "layer0.rec.fanout") in g.edges
    assert g.metadata["time_unit"] == "ms"


def test_time_scale_on_import(tmp_path):
    net = _net(0.1)
    x = _spikes(torch.float32)
    in_steps = dnir.scale_time(dnir.to_graph(net), 10.0)  # durations in units of 0.1 ms
    in_steps.metadata["time_unit"] = "0.1 ms"
    nir.write(str(tmp_path / "steps.nir"), in_steps)
    with pytest.raises(ValueError, match="pass time_scale"):
        dnir.load(tmp_path / "steps.nir")
    back = dnir.load(tmp_path / "steps.nir", time_scale=0.1)
    assert back[0].tau_syn == pytest.approx(5.0) and back[0].dt == pytest.approx(0.1)
    assert torch.allclose(net(x), back(x), atol=1e-5)


def test_export_and_import_errors(tmp_path):
    with pytest.raises(ValueError, match="nn.Sequential of delayprop LIF"):
        dnir.to_graph(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    foreign = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                                  "output": nir.Output(output_type={"output": np.array([1])})},
                           edges=[("input", "output")])  # fmt: skip
    with pytest.raises(ValueError, match="not written by delayprop"):
        dnir.from_graph(foreign)


def test_export_command_writes_the_trained_network(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "sequence_memory", "--out", str(run), "--quiet",
                 "--set", "train.epochs=1"]) == 0  # fmt: skip
    assert main(["export", str(run), "--format", "nir", "--hardware", "spinnaker",
                 "--out", str(tmp_path / "m.nir")]) == 0  # fmt: skip
    model, _ = load_run(run)
    apply_profile(model, "spinnaker")
    back = dnir.load(tmp_path / "m.nir")
    x = dp.Spikes.from_lists([([5.0, 120.0], [0, 1]), ([5.0, 120.0], [1, 0])], 2, 200.0)
    assert torch.equal(model(x), back(x))

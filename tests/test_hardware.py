"""Hardware profiles and constraint-aware training (delayprop.hardware)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import delayprop as dp
from delayprop.cli import main
from delayprop.config import ConfigError, load_config
from delayprop.hardware import (
    HardwareProfile,
    apply_profile,
    get_profile,
    quantise_delay,
    quantise_weight,
)
from delayprop.training import Trainer
from delayprop.training.model import build_network
from delayprop.training.runs import load_run


def _net(dt: float | None = 0.5, **kw) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        dp.LIF(4, 12, dt=dt, max_delay=40.0, delay_init=(0.0, 40.0),
               weight_init=dp.Normal(1.5, 1.0), **kw),
        dp.LIReadout(12, 3, dt=dt, weight_init=dp.Normal(0.0, 1.0),
                     sample_dt=None if dt else 0.5),
    )  # fmt: skip


def _spikes(dtype=torch.float32) -> dp.Spikes:
    g = torch.Generator().manual_seed(3)
    raster = (torch.rand(6, 80, 4, generator=g) < 0.05).float()
    return dp.Spikes.from_raster(raster, 0.5, dtype=dtype)


def test_loihi_weights_are_8_bit_integers_times_one_scale_per_layer():
    w = torch.randn(7, 5, dtype=torch.float64) * 3
    q = quantise_weight(w, get_profile("loihi"))
    step = w.abs().max() / 127
    k = q / step
    assert torch.allclose(k, torch.round(k), atol=1e-9)
    assert float(k.max()) <= 127 and float(k.min()) >= -128
    assert float(k.abs().max()) == pytest.approx(127)  # the largest magnitude uses the range
    assert float((q - w).abs().max()) <= float(step) / 2 + 1e-12  # rounded, not truncated


def test_per_neuron_scale_gives_every_row_its_own_step():
    w = torch.randn(4, 6, dtype=torch.float64) * torch.tensor([[0.1], [1.0], [10.0], [3.0]])
    q = quantise_weight(w, get_profile("loihi", weight_bits=4, weight_scale="neuron"))
    step = w.abs().amax(1, keepdim=True) / 7
    k = q / step
    assert torch.allclose(k, torch.round(k), atol=1e-9)
    assert torch.allclose(k.abs().amax(1), torch.full((4,), 7.0, dtype=torch.float64))


def test_delays_round_to_the_nearest_step_and_clip_to_the_target_range():
    dt = 0.5
    d = torch.tensor([0.0, 1.3 * dt, 2.6 * dt, 61.7 * dt, 70.0 * dt, -1.0])
    loihi = quantise_delay(d, get_profile("loihi"), dt, high=100.0)
    assert (loihi / dt).tolist() == [0, 1, 3, 62, 62, 0]  # 2.6 -> 3: rounding, not truncation
    spin = quantise_delay(d, get_profile("spinnaker"), dt, high=100.0)
    assert (spin / dt).tolist() == [0, 1, 3, 62, 70, 0]
    assert float(quantise_delay(torch.tensor([200.0]), get_profile("spinnaker"), 1.0, 500.0)) \
        == 143.0  # 144 steps in SpiNNaker's count, which includes the one-step latency


def test_constrained_forward_equals_a_float_network_holding_the_quantised_values():
    net = _net()
    apply_profile(net, "loihi")
    ref = _net()
    with torch.no_grad():
        for a, b in zip(net, ref):
            w, d = a.effective_parameters()
            b.weight.copy_(w)
            if d is not None:
                b.delay.raw.copy_(d)
    x = _spikes()
    assert torch.equal(net(x), ref(x))


def test_straight_through_gradients_are_those_at_the_quantised_point():
    """Backward choice: dL/dw = dL/dw_q and dL/dd = dL/dd_q (straight-through estimator)."""
    net, ref = _net(), _net()
    apply_profile(net, "loihi")
    with torch.no_grad():
        for a, b in zip(net, ref):
            w, d = a.effective_parameters()
            b.weight.copy_(w)
            if d is not None:
                b.delay.raw.copy_(d)
    x = _spikes()
    for m in (net, ref):
        m(x).pow(2).sum().backward()
    assert torch.allclose(net[0].weight.grad, ref[0].weight.grad, rtol=1e-6, atol=1e-8)
    assert torch.allclose(net[0].delay.raw.grad, ref[0].delay.raw.grad, rtol=1e-6, atol=1e-8)
    assert float(net[0].delay.raw.grad.abs().sum()) > 0
    assert not torch.equal(net[0].weight, ref[0].weight)  # the float weights stay float


def test_constrain_projects_delays_into_the_target_range():
    net = _net(dt=1.0)
    apply_profile(net, "loihi")
    assert net[0].delay.max_delay == 40.0  # 62 steps of 1 ms allow more than the layer's 40
    net = _net(dt=0.5)
    apply_profile(net, "loihi")
    assert net[0].delay.max_delay == 31.0  # 62 steps of 0.5 ms
    with torch.no_grad():
        net[0].delay.raw.fill_(35.0)
    dp.constrain_(net)
    assert float(net[0].delay.raw.detach().max()) == 31.0


def test_exact_engine_layers_move_to_the_profile_grid():
    net = _net(dt=None)
    apply_profile(net, "loihi")
    assert net[0].dt == 1.0 and net[1].dt == 1.0 and net[1].sample_dt is None
    assert apply_profile(_net(dt=None), "float")[0].dt is None  # no grid for the float target
    with pytest.raises(ValueError, match="refractory"):
        apply_profile(_net(dt=None, refractory=1.0), "loihi")
    with pytest.raises(ValueError, match="dt=0.25"):
        apply_profile(_net(dt=0.5), "loihi", dt=0.25)
    with pytest.raises(ValueError, match="unknown hardware profile 'truenorth'"):
        get_profile("truenorth")
    with pytest.raises(ValueError, match="delay_max_steps"):
        HardwareProfile("bad", delay_min_steps=5, delay_max_steps=2)


def test_config_flag_builds_a_constrained_network_and_rejects_other_methods():
    cfg = load_config("digits", ["model.hardware_profile=loihi"])
    net = build_network(cfg.model, 64, 10)
    assert all(m.constraint is not None for m in net)
    with pytest.raises(ConfigError, match="hardware_profile is not supported by method 'dcls'"):
        load_config("digits", ["model.hardware_profile=loihi", "model.method=dcls"])
    with pytest.raises(ConfigError, match="unknown hardware profile"):
        build_network(load_config("digits", ["model.hardware_profile=x"]).model, 64, 10)
    for task in ("shd_rec", "ssc"):  # the large configs accept the flag (no data needed)
        cfg = load_config(task, ["model.hardware_profile=spinnaker"])
        net = build_network(cfg.model, 700, 20)
        assert net[0].delay.max_delay == 143.0  # 1000 ms capped at 143 steps of 1 ms
        assert float(net[0].delay.raw.detach().max()) <= 143.0


def test_train_with_hardware_flag_saves_a_run_that_reloads_constrained(tmp_path):
    out = tmp_path / "memory"
    assert main(["train", "sequence_memory", "--out", str(out), "--hardware", "loihi", "--quiet",
                 "--set", "train.epochs=1"]) == 0  # fmt: skip
    model, cfg = load_run(out)
    assert cfg.model.hardware_profile == "loihi"
    w, d = (t.detach() for t in model[0].effective_parameters())
    steps = d.detach() / model[0].dt
    assert torch.equal(steps, torch.round(steps)) and float(steps.max()) <= 62
    levels = w / (w.abs().max() / 127)
    assert torch.allclose(levels, torch.round(levels), atol=1e-4)
    assert not torch.equal(w, model[0].weight.detach())


def test_constraint_aware_training_learns():
    cfg = load_config("sequence", ["model.hardware_profile=loihi"])
    result = Trainer(cfg, quiet=True).fit()
    assert result["test_accuracy"] == 1.0
    assert np.isfinite(result["history"][-1]["train_loss"])


def test_weight_noise_is_drawn_in_every_forward_pass_around_the_quantised_weights():
    net = _net()
    apply_profile(net, "loihi", weight_noise_sd=0.05)
    quiet = quantise_weight(net[0].weight, get_profile("loihi")).detach()
    draws = torch.stack([net[0].effective_parameters()[0].detach() for _ in range(400)])
    assert not torch.equal(draws[0], draws[1])
    scale = float(quiet.abs().max())
    assert torch.allclose(draws.mean(0), quiet, atol=0.01 * scale)
    assert float(draws.std(0).mean()) == pytest.approx(0.05 * scale, rel=0.1)

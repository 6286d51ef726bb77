"""One description of a layer's options (``delayprop.options``): the configuration, the
factory and the modules take every option from it, with its default and its check."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import delayprop as dp
from delayprop._util import field_defaults
from delayprop.config import ConfigError, ModelConfig, load_config
from delayprop.methods import build_model
from delayprop.options import LayerOptions, state_options
from delayprop.training.model import build_network
from problems import random_spikes

#: a layer with delays and recurrence on the exact engine, where every option applies
BASE = {"dt": None, "max_delay": 3.0, "recurrent": True, "rec_max_delay": 1.0}
#: a value other than the default for every option, with what else it needs
VALUES: dict[str, tuple[object, dict]] = {
    "tau_mem": (10.0, {}),
    "tau_syn": (2.0, {}),
    "threshold": (0.5, {}),
    "refractory": (1.0, {}),
    "max_spikes": (2, {}),
    "dt": (0.5, {"dt": 0.5}),
    "precise": (True, {"dt": 0.5, "recurrent": False, "rec_max_delay": 0.0}),
    "backward": ("timing", {}),
    "spike_limit": (50, {}),
    "sample_dt": (0.5, {}),
    "max_delay": (4.0, {}),
    "delay_kind": ("axonal", {}),
    "delay_bound": ("sigmoid", {}),
    "learn_delays": (False, {}),
    "recurrent": (False, {"rec_max_delay": 0.0}),
    "rec_max_delay": (2.0, {}),
    "rec_delay_kind": ("dendritic", {}),
    "learn_tau": (True, {}),
    "tau_per_neuron": (True, {"learn_tau": True}),
    "tau_min": (1.0, {}),
    "tau_max": (100.0, {}),
    "tau_adapt": (30.0, {}),
    "adapt_jump": (0.25, {"tau_adapt": 30.0}),
    "learn_adapt": (True, {"tau_adapt": 30.0}),
}
#: where a built layer holds each option that shapes its parameters
CONNECTIONS = {
    "max_delay": lambda layer: layer.max_delay,
    "delay_kind": lambda layer: layer.delay.kind,
    "delay_bound": lambda layer: layer.delay.bound,
    "learn_delays": lambda layer: layer.delay.raw.requires_grad,
    "recurrent": lambda layer: layer.recurrent,
    "rec_max_delay": lambda layer: layer.rec_max_delay,
    "rec_delay_kind": lambda layer: layer.rec_delay.kind,
    "learn_tau": lambda layer: layer.time_constants is not None,
    "tau_per_neuron": lambda layer: tuple(layer.time_constants.shape) == (2, layer.n_out),
    "tau_min": lambda layer: layer.tau_bounds[0],
    "tau_max": lambda layer: layer.tau_bounds[1],
    "adapt_jump": lambda layer: float(layer.adaptation.detach()[0]),
    "learn_adapt": lambda layer: layer.adaptation.requires_grad,
}


def _held(layer: torch.nn.Module, name: str) -> object:
    return CONNECTIONS[name](layer) if name in CONNECTIONS else getattr(layer, name)


def _yaml(value: object) -> str:
    """``value`` as a YAML scalar for ``--set``."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def test_every_option_has_a_test_value():
    assert set(VALUES) == {f.name for f in dataclasses.fields(LayerOptions)}
    assert set(CONNECTIONS) | set(state_options("spikes")) | set(state_options("trace")) == set(
        VALUES
    )


def test_defaults_are_written_once():
    """The configuration and the modules have the defaults of ``LayerOptions``."""
    defaults = field_defaults(LayerOptions)
    config = field_defaults(ModelConfig)
    assert {name: config[name] for name in defaults} == defaults
    lif, readout = dp.LIF(2, 3), dp.LIReadout(2, 3)
    for name in state_options("spikes"):
        assert getattr(lif, name) == defaults[name], name
    for name in state_options("trace"):
        assert getattr(readout, name) == defaults[name], name


@pytest.mark.parametrize("name", sorted(VALUES))
def test_an_option_reaches_the_layers_from_config_factory_and_keywords(name):
    value, needs = VALUES[name]
    options = {**BASE, **needs, name: value}
    overrides = ["model.hidden=[3]", "model.weight_init=[]"]
    overrides += [f"model.{k}={_yaml(v)}" for k, v in options.items()]
    cfg = load_config("digits", overrides)
    assert getattr(cfg.model, name) == value
    k = -1 if name == "sample_dt" else 0  # the readout holds it, else the hidden layer
    from_config = build_network(cfg.model, 4, 2)[k]
    from_factory = build_model("eventprop", n_in=4, hidden=[3], n_out=2, **options)[k]
    module = (dp.LIReadout if k else dp.LIF)(4, 3, LayerOptions(**options))
    keywords = dp.LIF(4, 3, **options) if not k else module  # an LIReadout has no recurrence
    for layer in (from_config, from_factory, module, keywords):
        assert _held(layer, name) == value


def test_keywords_change_a_given_options_object():
    shared = LayerOptions(dt=None, tau_mem=10.0, max_delay=2.0)
    torch.manual_seed(0)
    a = dp.LIF(4, 3, shared, threshold=0.5)
    torch.manual_seed(0)
    b = dp.LIF(4, 3, dt=None, tau_mem=10.0, max_delay=2.0, threshold=0.5)
    assert repr(a) == repr(b)
    assert torch.equal(a.weight, b.weight) and shared.threshold == 1.0
    readout = dp.LIReadout(3, 2, dataclasses.replace(shared, threshold=0.5))  # unused there
    assert not hasattr(readout, "threshold") and readout.tau_mem == 10.0


def test_unknown_and_inapplicable_options_are_named():
    with pytest.raises(TypeError, match="LIF: unknown option 'tau_mems'"):
        dp.LIF(2, 3, tau_mems=10.0)
    with pytest.raises(TypeError, match="build_model: unknown option 'tau_mems'"):
        build_model("eventprop", n_in=2, hidden=[3], n_out=2, tau_mems=10.0)
    with pytest.raises(ConfigError, match="unknown key model.tau_mems"):
        load_config("yinyang", ["model.tau_mems=10"])
    with pytest.raises(TypeError, match="LIReadout: option 'threshold' concerns output spikes"):
        dp.LIReadout(2, 3, threshold=2.0)
    with pytest.raises(TypeError, match="LIF: option 'sample_dt' concerns a voltage trace"):
        dp.LIF(2, 3, dt=None, sample_dt=0.5)


def test_options_are_checked_once_with_the_same_message_everywhere():
    message = "tau_syn must be > 0 and finite, got -1.0"
    for make in (lambda: LayerOptions(tau_syn=-1.0), lambda: dp.LIF(2, 3, tau_syn=-1.0),
                 lambda: build_model("eventprop", n_in=2, hidden=[3], n_out=2, tau_syn=-1.0)):
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(ConfigError, match=f"model.{message}"):
        load_config("yinyang", ["model.tau_syn=-1"])


@pytest.mark.parametrize("name", ["max_spikes", "spike_limit"])
def test_no_spike_limit_is_none_and_zero_is_an_error(name):
    assert getattr(dp.LIF(2, 3, dt=None), name) is None
    message = f"{name} must be a positive integer or None \\(no limit\\), got 0"
    with pytest.raises(ValueError, match=message):
        dp.LIF(2, 3, dt=None, **{name: 0})
    with pytest.raises(ConfigError, match=f"model.{message}"):
        load_config("yinyang", [f"model.{name}=0"])


def test_exact_engine_options_on_a_time_grid():
    with pytest.raises(ValueError, match=r"spike_limit=5 needs the exact engine \(dt=None\); "
                       r"on the time-stepped engine \(dt=0.5 ms\) leave spike_limit at None"):
        dp.LIF(2, 3, dt=0.5, spike_limit=5)
    layer = dp.LIF(2, 3, dt=None, spike_limit=5)
    layer.dt = 0.5  # moved to a grid by hand: refused at the next forward pass
    with pytest.raises(ValueError, match="spike_limit=5 needs the exact engine"):
        layer(random_spikes(1, 2, 10.0, 3, seed=0))


@pytest.mark.parametrize("option", [{"refractory": 1.0}, {"max_spikes": 2}])
def test_refractory_and_spike_limit_on_the_grid_but_not_in_the_precise_mode(option):
    layer = dp.LIF(2, 3, dt=0.5, **option)
    assert layer(random_spikes(1, 2, 10.0, 3, seed=0)).n_units == 3
    with pytest.raises(ValueError, match="refractory and max_spikes need precise=False"):
        dp.LIF(2, 3, dt=0.5, precise=True, **option)
    assert dp.LIReadout(2, 3, dt=0.5, sample_dt=None).sample_dt is None


def test_the_delay_argument_takes_a_module_and_the_kind_is_an_option():
    with pytest.raises(TypeError, match="delay and rec_delay take a Delay module, got 'axonal'"):
        dp.LIF(2, 3, max_delay=2.0, delay="axonal")
    first = dp.LIF(2, 3, max_delay=2.0, delay_kind="dendritic")
    second = dp.LIF(2, 3, delay=first.delay)  # shares the parametrisation, with its range
    assert second.delay is first.delay and second.max_delay == 2.0


def test_an_exact_readout_samples_every_ms_by_default():
    readout = dp.LIReadout(2, 3, dt=None)
    assert readout(random_spikes(2, 2, 10.0, 3, seed=1)).shape == (2, 10, 3)

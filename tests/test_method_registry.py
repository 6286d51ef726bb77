"""One registry of training methods: config validation, the command line and ``build_model``
read it, and every option a method does not support is rejected, naming option and method."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import delayprop as dp
from delayprop.cli import build_parser
from delayprop.config import ConfigError, ModelConfig, TrainConfig, config_from_dict
from delayprop.methods import build_model
from delayprop.methods.factory import _OPTION_DEFAULTS
from delayprop.methods.hardware import HardwareModel
from delayprop.methods.registry import LIF_TRAINING_OPTIONS, METHODS, REGISTRY
from delayprop.options import LayerOptions

#: a value other than the default for every option some method does not support
NON_DEFAULT_CONFIG = {
    "dt": 0.5,
    "recurrent": True,
    "rec_max_delay": 3.0,
    "rec_delay_kind": "axonal",
    "rec_delay_init": 1.0,
    "rec_weight_init": [0.0, 0.1],
    "sample_dt": 0.5,
    "max_spikes": 3,
    "refractory": 1.0,
    "spike_limit": 100,
    "backward": "timing",
    "precise": True,
    "hardware": {"weight_clip": 6.0},
    "hardware_profile": "loihi",
    "max_delay": 5.0,
    "readout_max_delay": 5.0,
    "delay_kind": "axonal",
    "delay_bound": "sigmoid",
    "learn_delays": False,
    "learn_tau": True,
    "tau_per_neuron": True,
    "tau_min": 1.0,
    "tau_max": 100.0,
    "tau_adapt": 30.0,
    "adapt_jump": 0.2,
    "learn_adapt": True,
}
NON_DEFAULT_TRAIN = {
    "reg_target": 14.0,
    "reg_strength_upper": 1e-10,
    "reg_strength_lower": 1e-10,
    "weight_bump": 0.001,
}
NON_DEFAULT_BUILD = {
    **{k: v for k, v in NON_DEFAULT_CONFIG.items() if k not in ("hardware", "hardware_profile")},
    "rec_weight_init": dp.Normal(0.0, 0.1),
    "hardware": HardwareModel(),
    "surrogate_alpha": 3.0,
}

def _base(method: str) -> dict:
    """A valid configuration of ``method`` with every other option at its default."""
    spiking = method in ("delgrad",)
    model = {"method": method, "readout": "lif" if spiking else "li"}
    loss = {"kind": "time_invariant_mse" if spiking else "cross_entropy"}
    return {"model": model, "loss": loss}


def _cases(options: dict) -> list[tuple[str, str]]:
    return [(m, o) for m in METHODS for o in options]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_accepts_its_defaults(method):
    assert config_from_dict(_base(method)).model.method == method


@pytest.mark.parametrize("method, option", _cases(NON_DEFAULT_CONFIG))
def test_config_rejects_unsupported_model_options(method, option):
    values = _base(method)
    values["model"][option] = NON_DEFAULT_CONFIG[option]
    if option not in REGISTRY[method].unsupported:
        try:
            config_from_dict(values)
        except ConfigError as err:  # a value check of a supported option, not this registry
            assert "is not supported by method" not in str(err)
        return
    with pytest.raises(ConfigError, match=f"model.{option} is not supported by method '{method}'"):
        config_from_dict(values)


@pytest.mark.parametrize("method, option", _cases(NON_DEFAULT_TRAIN))
def test_config_rejects_training_options_without_lif_layers(method, option):
    values = _base(method)
    values["train"] = {option: NON_DEFAULT_TRAIN[option]}
    if REGISTRY[method].lif_layers:
        config_from_dict(values)
        return
    with pytest.raises(ConfigError, match=f"train.{option} is not supported by method '{method}'"):
        config_from_dict(values)


@pytest.mark.parametrize(
    "method, option",
    [(m, o) for m, o in _cases(NON_DEFAULT_BUILD) if o in REGISTRY[m].unsupported],
)
def test_build_model_rejects_unsupported_options(method, option):
    kw = dict(n_in=4, hidden=[3], n_out=2, readout="lif" if method == "delgrad" else "li")
    kw[option] = NON_DEFAULT_BUILD[option]
    with pytest.raises(ValueError, match=f"{option} is not supported by method '{method}'"):
        build_model(method, **kw)


def test_registry_names_real_options():
    config_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for method in REGISTRY.values():
        for option in method.unsupported:
            assert option in config_fields or option in _OPTION_DEFAULTS, option
            assert option in NON_DEFAULT_CONFIG or option in NON_DEFAULT_BUILD, option
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(LIF_TRAINING_OPTIONS) <= train_fields
    assert set(NON_DEFAULT_TRAIN) == set(LIF_TRAINING_OPTIONS)


def test_command_line_offers_the_registered_methods():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if a.dest == "method"]
    assert tuple(action.choices) == METHODS == ("eventprop", "bptt", "dcls", "delgrad")
    with pytest.raises(ConfigError, match="model.method must be one of eventprop, bptt"):
        config_from_dict({"model": {"method": "slayer"}})


def test_lif_layers_match_the_built_networks():
    """``lif_layers`` says whether the hidden layers are ``LIF`` modules (what the trainer's
    regulariser, weight bump and spike statistics act on)."""
    for name, method in REGISTRY.items():
        kw = dict(n_in=4, hidden=[3], n_out=2, readout="lif" if name == "delgrad" else "li")
        if name == "delgrad":
            kw.update(tau_mem=10.0, tau_syn=5.0)
        model = build_model(name, dtype=torch.float64, **kw)
        has_lif = any(isinstance(m, dp.LIF) for m in model.modules())
        assert has_lif == method.lif_layers, name


def test_registry_rejects_what_each_method_lacks():
    """Written out independently of the registry, so that dropping an entry fails."""
    recurrence = {"recurrent", "rec_max_delay", "rec_delay_kind", "rec_delay_init",
                  "rec_weight_init"}  # fmt: skip
    event_engine = {"max_spikes", "refractory", "spike_limit", "backward", "precise", "sample_dt"}
    delays = {"max_delay", "readout_max_delay", "delay_kind", "delay_bound", "learn_delays"}
    taus = {"learn_tau", "tau_per_neuron", "tau_min", "tau_max", "tau_adapt", "adapt_jump",
            "learn_adapt"}
    expected = {
        "eventprop": {"hardware", "surrogate_alpha"},
        "bptt": recurrence | event_engine | delays | taus | {"hardware", "hardware_profile"},
        "dcls": recurrence | event_engine | taus | {"hardware", "hardware_profile"},
        "delgrad": recurrence | event_engine | taus | {"dt", "hardware_profile",
                                                       "surrogate_alpha"},
    }
    assert {name: set(m.unsupported) for name, m in REGISTRY.items()} == expected
    assert {name for name, m in REGISTRY.items() if m.lif_layers} == {"eventprop"}


#: the layer options that each method's networks use (``methods.factory``), written out
LAYER_OPTIONS_USED = {
    "eventprop": {f.name for f in dataclasses.fields(LayerOptions)},
    "bptt": {"tau_mem", "tau_syn", "threshold", "dt"},
    "dcls": {"tau_mem", "tau_syn", "threshold", "dt", "max_delay", "delay_kind", "delay_bound",
             "learn_delays"},  # fmt: skip
    "delgrad": {"tau_mem", "tau_syn", "threshold", "max_delay", "delay_kind", "delay_bound",
                "learn_delays"},  # fmt: skip
}


@pytest.mark.parametrize("method", METHODS)
def test_every_layer_option_is_used_or_rejected(method):
    """A new field of ``LayerOptions`` fails here until each method either uses it or its
    registry entry rejects it: no layer option is silently ignored by a method."""
    options = {f.name for f in dataclasses.fields(LayerOptions)}
    rejected = options & set(REGISTRY[method].unsupported)
    assert not rejected & LAYER_OPTIONS_USED[method]
    assert rejected | LAYER_OPTIONS_USED[method] == options

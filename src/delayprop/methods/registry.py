"""The training methods, described once: config validation, the command line and
``build_model`` all read this registry.

Each ``Method`` names the model options it does not support (with the reason) and says whether
its hidden layers are ``delayprop.nn.LIF`` modules: the trainer's spike-count regulariser, weight
bumping and spike statistics act on those only.  The model options are the layer options
(``delayprop.LayerOptions``) and the network's own (the other fields of
``config.ModelConfig``, the other arguments of ``build_model``); an option that a method does
not support is an error when it differs from its default, so that no option is silently
ignored.  A new layer option that a method cannot honour gets an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Method",
    "REGISTRY",
    "METHODS",
    "LIF_TRAINING_OPTIONS",
    "UnsupportedOption",
    "get_method",
]


class UnsupportedOption(ValueError):
    """An option is set that the chosen method does not support."""


#: training options that act on ``LIF`` modules only (see ``Method.lif_layers``), with the reason
LIF_TRAINING_OPTIONS: dict[str, str] = {
    "reg_target": "the spike-count regulariser acts on LIF layers",
    "reg_strength_upper": "the spike-count regulariser acts on LIF layers",
    "reg_strength_lower": "the spike-count regulariser acts on LIF layers",
    "weight_bump": "weight bumping acts on LIF layers",
}


def _differs(value: Any, default: Any) -> bool:
    """Whether ``value`` is not the default (arrays and nested lists compare as a whole)."""
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # an array compared elementwise
        return True


@dataclass(frozen=True)
class Method:
    """One training method.

    ``unsupported`` maps each model option (a ``LayerOptions`` field, or a network field of
    ``ModelConfig`` or argument of ``build_model``) that the method does not support to the
    reason; ``lif_layers`` is whether the hidden layers are ``delayprop.nn.LIF`` modules.
    """

    name: str
    summary: str
    lif_layers: bool
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def check(self, values: Mapping[str, Any], defaults: Mapping[str, Any], where: str = "",
              training: bool = False) -> None:  # fmt: skip
        """Raise ``UnsupportedOption`` naming the option and the method if an unsupported
        option in ``values`` differs from its value in ``defaults``.  ``training``: check the
        training options of ``LIF_TRAINING_OPTIONS`` instead of the model options; ``where``
        prefixes the option in the message (``"model."``)."""
        reasons = self.training_unsupported() if training else self.unsupported
        for option, why in reasons.items():
            if option in values and option in defaults and _differs(values[option],
                                                                    defaults[option]):
                raise UnsupportedOption(
                    f"{where}{option} is not supported by method {self.name!r}: {why}"
                )

    def training_unsupported(self) -> dict[str, str]:
        """The training options that do nothing for this method, with the reason."""
        if self.lif_layers:
            return {}
        return {k: f"{why}, which method {self.name!r} does not have"
                for k, why in LIF_TRAINING_OPTIONS.items()}  # fmt: skip


_EXACT_ONLY = "needs the exact or time-stepped event engine of method 'eventprop'"
_NO_PROFILE = "hardware profiles are for method eventprop (DelGrad's hardware model is hardware)"
_DENSE_FF = "is feed-forward only; use method 'eventprop' for recurrent layers"
_TAU = dict.fromkeys(("learn_tau", "tau_per_neuron", "tau_min", "tau_max"),
                     "learned time constants need method 'eventprop'")
_ADAPT = dict.fromkeys(("tau_adapt", "adapt_jump", "learn_adapt"),
                       "the adaptive LIF neuron needs method 'eventprop'")
_NO_DELAYS = "the bptt baseline has no delays (use method 'dcls' or 'eventprop' to learn delays)"


def _dense(name: str) -> dict[str, str]:
    ff = f"the {name} baseline {_DENSE_FF}"
    return {
        "recurrent": ff,
        "rec_max_delay": ff,
        "rec_delay_kind": ff,
        "rec_delay_init": ff,
        "rec_weight_init": ff,
        "sample_dt": f"the {name} baseline samples its readout at every step of dt",
        "max_spikes": _EXACT_ONLY,
        "refractory": _EXACT_ONLY,
        "spike_limit": _EXACT_ONLY,
        "backward": _EXACT_ONLY,
        "precise": _EXACT_ONLY,
        "hardware": "a hardware model is supported by method 'delgrad'",
        "hardware_profile": _NO_PROFILE,
        **_TAU,
        **_ADAPT,
    }


REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "eventprop",
            "exact event-based gradients (EventProp), time grid or continuous time",
            lif_layers=True,
            unsupported={
                "hardware": "a hardware model is supported by method 'delgrad' (eventprop's "
                "hardware targets are hardware_profile)",
                "surrogate_alpha": "eventprop's gradients are exact, it has no surrogate",
            },
        ),
        Method(
            "bptt",
            "surrogate-gradient LIF network without delays (BPTT baseline)",
            lif_layers=False,
            unsupported={
                **_dense("bptt"),
                **dict.fromkeys(("max_delay", "readout_max_delay", "delay_kind", "delay_bound",
                                 "learn_delays"), _NO_DELAYS),  # fmt: skip
            },
        ),
        Method(
            "dcls",
            "delays as Gaussian-interpolated convolution taps, surrogate gradients",
            lif_layers=False,
            unsupported=_dense("dcls"),
        ),
        Method(
            "delgrad",
            "single-spike neurons with closed-form spike times and exact gradients (DelGrad)",
            lif_layers=False,
            unsupported={
                "dt": "DelGrad computes spike times in closed form, without a time grid",
                "recurrent": "DelGrad networks are feed-forward",
                "rec_max_delay": "DelGrad networks are feed-forward",
                "rec_delay_kind": "DelGrad networks are feed-forward",
                "rec_delay_init": "DelGrad networks are feed-forward",
                "rec_weight_init": "DelGrad networks are feed-forward",
                "sample_dt": "DelGrad has a first-spike readout",
                "max_spikes": "DelGrad neurons spike once",
                "refractory": "DelGrad neurons spike once",
                "spike_limit": "DelGrad neurons spike once",
                "backward": "DelGrad's gradients are those of its closed forms",
                "precise": _EXACT_ONLY,
                "hardware_profile": _NO_PROFILE,
                "surrogate_alpha": "DelGrad's gradients are exact, it has no surrogate",
                **_TAU,
                **_ADAPT,
            },
        ),
    )
}

#: names of the training methods
METHODS: tuple[str, ...] = tuple(REGISTRY)


def get_method(name: str) -> Method:
    """The registry entry of ``name``; ``ValueError`` naming the known methods otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose one of {METHODS}") from None

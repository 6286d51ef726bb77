"""Build the network described by a ``ModelConfig``."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ..config import ConfigError, ModelConfig
from ..hardware import apply_profile
from ..init import Init, Normal
from ..methods import build_model
from ..methods.hardware import HardwareModel
from ..nn import LIF
from ..options import LayerOptions

__all__ = ["build_network", "as_init", "hidden_layers"]


def as_init(value: Any) -> Init:
    """Config value -> initialiser: a number (constant), ``[low, high]`` (uniform range) or a
    nested list (explicit values)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return (float(value[0]), float(value[1]))
        return np.asarray(value, dtype=np.float64)
    raise ConfigError(f"cannot use {value!r} as an initialiser")


def build_network(cfg: ModelConfig, n_in: int, n_out: int) -> nn.Module:
    """The network of ``cfg`` for ``n_in`` input channels and ``n_out`` classes, for any
    training method (see ``delayprop.methods.build_model``): the layer options of ``cfg``
    pass through as one ``LayerOptions``; the network's own fields become its arguments."""
    weight_init = [Normal(float(m), float(s)) for m, s in cfg.weight_init] or None
    rec_init = None if cfg.rec_weight_init is None else Normal(*cfg.rec_weight_init)
    try:
        hardware = HardwareModel(**cfg.hardware) if cfg.hardware else None
    except TypeError as err:
        raise ConfigError(f"model.hardware: {err}") from None
    try:
        model = build_model(
            cfg.method, n_in=n_in, hidden=list(cfg.hidden), n_out=n_out,
            options=LayerOptions.of(cfg), readout=cfg.readout,
            readout_max_delay=cfg.readout_max_delay, weight_init=weight_init,
            delay_init=as_init(cfg.delay_init), rec_weight_init=rec_init,
            rec_delay_init=as_init(cfg.rec_delay_init),
            readout_delay_init=as_init(cfg.readout_delay_init), learn_weights=cfg.learn_weights,
            hardware=hardware,
        )  # fmt: skip
        if cfg.hardware_profile is not None:
            apply_profile(model, cfg.hardware_profile)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    return model


def hidden_layers(model: nn.Module) -> list[LIF]:
    """The LIF layers of ``model`` that are not its readout (for spike statistics)."""
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    last = list(model.children())[-1] if list(model.children()) else None
    return [m for m in lifs if m is not last]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""Build the network described by a ``ModelConfig``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, ModelConfig
from ..init import Init, Normal
from ..nn import LIF, LIReadout

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


def _weight_init(cfg: ModelConfig, k: int) -> Init | None:
    if not cfg.weight_init:
        return None
    mean, std = cfg.weight_init[k]
    return Normal(float(mean), float(std))


def build_network(cfg: ModelConfig, n_in: int, n_out: int) -> nn.Sequential:
    """input -> LIF hidden layers (optionally recurrent) -> LI or LIF readout.

    Feed-forward delays of hidden layers use ``max_delay``/``delay_init``, recurrent ones
    ``rec_max_delay``/``rec_delay_init``, the projection into the readout
    ``readout_max_delay``/``readout_delay_init`` (0 = no delays there).
    """
    if cfg.method != "eventprop":
        raise ConfigError(f"build_network builds eventprop networks, not {cfg.method!r}")
    common = dict(tau_mem=cfg.tau_mem, tau_syn=cfg.tau_syn, dt=cfg.dt)
    delay = dict(delay_bound=cfg.delay_bound, learn_delays=cfg.learn_delays)
    rec_init = None if cfg.rec_weight_init is None else Normal(*cfg.rec_weight_init)
    layers: list[nn.Module] = []
    size = n_in
    for k, width in enumerate(cfg.hidden):
        layers.append(
            LIF(
                size, width, threshold=cfg.threshold, max_delay=cfg.max_delay,
                delay=cfg.delay_kind if cfg.max_delay > 0 else None,
                delay_init=as_init(cfg.delay_init), weight_init=_weight_init(cfg, k),
                recurrent=cfg.recurrent, rec_max_delay=cfg.rec_max_delay,
                rec_delay_init=as_init(cfg.rec_delay_init),
                rec_weight_init=rec_init,
                **common, **delay,
            )  # fmt: skip
        )
        size = width
    out_delay = dict(
        max_delay=cfg.readout_max_delay,
        delay=cfg.delay_kind if cfg.readout_max_delay > 0 else None,
        delay_init=as_init(cfg.readout_delay_init),
        weight_init=_weight_init(cfg, len(cfg.hidden)),
    )
    if cfg.readout == "lif":
        layers.append(LIF(size, n_out, threshold=cfg.threshold, **out_delay, **common, **delay))
    else:
        extra = {"sample_dt": cfg.sample_dt} if cfg.dt is None else {}
        layers.append(LIReadout(size, n_out, **out_delay, **common, **delay, **extra))
    net = nn.Sequential(*layers)
    if not cfg.learn_weights:
        for m in net:
            m.weight.requires_grad_(False)
            if getattr(m, "rec_weight", None) is not None:
                m.rec_weight.requires_grad_(False)
    return net


def hidden_layers(model: nn.Module) -> list[LIF]:
    """The LIF layers of ``model`` that are not its readout (for spike statistics)."""
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    last = list(model.children())[-1] if list(model.children()) else None
    return [m for m in lifs if m is not last]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def spikes_per_neuron(model: nn.Module) -> list[float]:
    """Mean spikes per neuron per sample of each hidden layer in the last forward pass."""
    out = []
    for layer in hidden_layers(model):
        if layer.spike_counts is None or layer.last_batch_size == 0:
            out.append(float("nan"))
        else:
            total = float(torch.as_tensor(layer.spike_counts).sum())
            out.append(total / layer.n_out / layer.last_batch_size)
    return out

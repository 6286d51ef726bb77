"""Readout reductions and losses (plain torch; their gradients drive the EventProp adjoint).

Voltage readouts take the LI trace ``v`` [batch, steps, n_out] (V at t = n dt) and reduce it
over time to [batch, n_out] scores.  Spiking readouts take the output ``Spikes`` of a LIF layer
and use first-spike times [batch, n_out] in ms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .spikes import Spikes
from .validation import check_positive_finite

__all__ = [
    "max_over_time",
    "mean_over_time",
    "sum_over_time",
    "exp_weighted_mean",
    "READOUTS",
    "readout",
    "cross_entropy",
    "first_spike_times",
    "time_invariant_mse",
    "ttfs_cross_entropy",
    "accuracy",
    "first_spike_prediction",
]


def _check_trace(v: Tensor) -> None:
    if v.dim() != 3:
        raise ValueError(f"expected a voltage trace [batch, steps, n_out], got {tuple(v.shape)}")


def max_over_time(v: Tensor) -> Tensor:
    """max_t V(t): the readout of the sequence task and of Wunderlich & Pehle (2021)."""
    _check_trace(v)
    return v.max(dim=1).values


def mean_over_time(v: Tensor) -> Tensor:
    """Mean of V over the trial."""
    _check_trace(v)
    return v.mean(dim=1)


def sum_over_time(v: Tensor) -> Tensor:
    """Sum of V over the steps of the trial."""
    _check_trace(v)
    return v.sum(dim=1)


def exp_weighted_mean(v: Tensor) -> Tensor:
    """Exponentially weighted mean used for SHD/SSC/Braille in the EventProp papers:
    sum_n exp(-n / n_steps) V(t_n) / n_steps (early evidence counts more)."""
    _check_trace(v)
    n_steps = v.shape[1]
    weights = torch.exp(-torch.arange(n_steps, dtype=v.dtype, device=v.device) / n_steps)
    return torch.einsum("bnk,n->bk", v, weights) / n_steps


READOUTS = {
    "max": max_over_time,
    "mean": mean_over_time,
    "sum": sum_over_time,
    "exp_mean": exp_weighted_mean,
}


def readout(v: Tensor, kind: str) -> Tensor:
    """Reduce a voltage trace by name: one of ``READOUTS``."""
    try:
        return READOUTS[kind](v)
    except KeyError:
        raise ValueError(f"unknown readout {kind!r}; choose one of {sorted(READOUTS)}") from None


def _check_labels(scores: Tensor, labels: Tensor) -> None:
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class indices, got {labels.dtype}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be [batch, n_classes], got shape {tuple(scores.shape)}")
    if labels.dim() != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"labels must be [batch={scores.shape[0]}], got shape {tuple(labels.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got {labels.tolist()[:8]}")


def cross_entropy(scores: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of softmax(scores) [batch, n_classes] against integer labels."""
    _check_labels(scores, labels)
    return F.cross_entropy(scores, labels.long())


def accuracy(scores: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose largest score is the label."""
    _check_labels(scores, labels)
    return float((scores.argmax(dim=1) == labels).float().mean()) if len(labels) else math.nan


def first_spike_times(spikes: Spikes, no_spike: float | None = None) -> Tensor:
    """First spike time of every (sample, unit), ms, [batch, n_units].

    Differentiable: each entry is the time of that spike in ``spikes.times``, so its gradient
    flows to that spike (and only that one).  Units that do not spike get ``no_spike``
    (default: the trial duration), with zero gradient.
    """
    if no_spike is None:
        no_spike = spikes.duration
    batch, n = spikes.batch_size, spikes.n_units
    flat = spikes.samples.long() * n + spikes.units.long()
    # events are sorted by time within a sample, so the first occurrence of a key is its first
    # spike: a scatter of decreasing positions with amin keeps it
    pos = torch.arange(spikes.n_spikes, device=spikes.device)
    first = torch.full((batch * n,), spikes.n_spikes, dtype=torch.long, device=spikes.device)
    first.scatter_reduce_(0, flat, pos, reduce="amin")
    has = first < spikes.n_spikes
    out = torch.full((batch * n,), float(no_spike), dtype=spikes.times.dtype, device=spikes.device)
    out = out.masked_scatter(has, spikes.times[first[has]])
    return out.view(batch, n)


def first_spike_prediction(t_first: Tensor) -> Tensor:
    """Predicted class of a spiking readout: the unit that fires first."""
    return t_first.argmin(dim=1)


def time_invariant_mse(t_first: Tensor, labels: Tensor, delta: float = 2.0) -> Tensor:
    """Yin-Yang loss of Meszaros et al. (2025) following Goltz et al.:
    mean over batch of 1/2 sum_{k != c} (t_k - t_c - delta)^2, c the true class (ms)."""
    _check_labels(t_first, labels)
    if not math.isfinite(delta):
        raise ValueError(f"delta must be a finite number of ms, got {delta}")
    t_true = t_first.gather(1, labels.long().view(-1, 1))
    err = (t_first - t_true - delta) ** 2
    mask = torch.ones_like(err).scatter_(1, labels.long().view(-1, 1), 0.0)
    return 0.5 * (err * mask).sum(dim=1).mean()


def ttfs_cross_entropy(t_first: Tensor, labels: Tensor, xi: float = 1.0, tau_syn: float = 5.0):
    """Time-to-first-spike cross-entropy: -log softmax(-t / (xi tau_syn))_c, mean over batch."""
    check_positive_finite(xi=xi, tau_syn=tau_syn)
    return cross_entropy(-t_first / (xi * tau_syn), labels)

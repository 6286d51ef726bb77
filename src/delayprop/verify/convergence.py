"""How far the time-stepped engine is from the exact one (the verification ladder
of docs/convergence.md).

``engine_gap`` runs copies of one network on the time grid (dt > 0) and in continuous time
(dt = None) with the same parameters, inputs and loss, and reports the spike-time error and the
relative error of every gradient.  As dt -> 0 both errors should shrink (to first order in dt:
the grid places spikes and arrivals on multiples of dt).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn import LIF, LIReadout
from ..spikes import Spikes

__all__ = ["EngineGap", "engine_gap", "with_engine"]


@dataclass(frozen=True)
class EngineGap:
    """Time-stepped (step ``dt``) against exact engine on one problem."""

    dt: float
    spike_time_error: float  # max |t_grid - t_exact| (ms) over (sample, unit) with equal counts
    count_mismatch: float  # fraction of (sample, unit) pairs whose spike counts differ
    grad_error: dict[str, float]  # ||g_grid - g_exact|| / ||g_exact|| per gradient

    @property
    def max_grad_error(self) -> float:
        return max(self.grad_error.values())


def with_engine(model: nn.Module, dt: float | None, sample_dt: float | None = None,
                precise: bool = False) -> nn.Module:  # fmt: skip
    """A deep copy of ``model`` whose layers all run on step ``dt`` (None: the exact engine,
    whose readouts then sample every ``sample_dt`` ms), in the precise mode if ``precise``."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, (LIF, LIReadout)):
            if dt is None and isinstance(m, LIReadout) and sample_dt is None:
                raise ValueError("an exact readout needs sample_dt")
            if precise and isinstance(m, LIF) and (m.refractory or m.max_spikes):
                raise ValueError("refractory and max_spikes need precise=False (or dt=None)")
            m.dt = dt
            m.precise = precise and dt is not None
            if isinstance(m, LIReadout):
                m.sample_dt = sample_dt if dt is None else None
    return model


def _run(model: nn.Module, spikes: Spikes, loss_fn: Callable[[object], Tensor]):
    produced: list[Spikes] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: produced.append(out))
             for m in model.modules() if isinstance(m, LIF)]  # fmt: skip
    x = spikes.with_times(spikes.times.detach().clone().requires_grad_())
    try:
        loss = loss_fn(model(x))
    finally:
        for h in hooks:
            h.remove()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()
             if p.grad is not None}  # fmt: skip
    grads["input times"] = x.times.grad.detach().clone()
    return produced, grads


def _spike_errors(grid: Sequence[Spikes], ref: Sequence[Spikes]) -> tuple[float, float]:
    worst, mismatched, pairs = 0.0, 0, 0
    for g, r in zip(grid, ref, strict=True):
        cg, cr = g.counts_per_unit(), r.counts_per_unit()
        same = cg == cr
        pairs += same.numel()
        mismatched += int((~same).sum())
        keep_g = same[g.samples.long(), g.units.long()]
        keep_r = same[r.samples.long(), r.units.long()]
        # both lists are sorted by (sample, time); a stable sort by unit keeps each unit's
        # spikes in time order, so matched spikes line up
        tg, tr = _by_unit(g, keep_g), _by_unit(r, keep_r)
        if tg.numel():
            worst = max(worst, float((tg - tr).abs().max()))
    return worst, mismatched / max(pairs, 1)


def _by_unit(s: Spikes, keep: Tensor) -> Tensor:
    key = (s.samples.long() * s.n_units + s.units.long())[keep]
    order = torch.argsort(key, stable=True)
    return s.times.detach().double()[keep][order]


def engine_gap(
    model: nn.Module,
    spikes: Spikes,
    loss_fn: Callable[[object], Tensor],
    dts: Sequence[float],
    precise: bool = False,
) -> list[EngineGap]:
    """Compare ``model`` run on each step in ``dts`` (in the precise mode if ``precise``) with
    the exact engine.

    Args:
        model: a network of ``LIF`` / ``LIReadout`` layers (any engine; copies are made).
        spikes: input batch.
        loss_fn: scalar loss of the model output (the same function for every engine; for a
            readout trace it sees [batch, steps, n_out] with the step of the engine).
        dts: time steps to try, ms.  Readouts of the exact reference sample every dt.
    """
    results = []
    for dt in dts:
        grid = with_engine(model, dt, precise=precise).double()
        exact = with_engine(model, None, sample_dt=dt).double()
        g_spikes, g_grads = _run(grid, spikes, loss_fn)
        e_spikes, e_grads = _run(exact, spikes, loss_fn)
        t_err, mismatch = _spike_errors(g_spikes, e_spikes)
        errors = {
            name: float((g_grads[name] - ref).norm() / ref.norm().clamp_min(1e-300))
            for name, ref in e_grads.items()
        }
        results.append(EngineGap(float(dt), t_err, mismatch, errors))
    return results

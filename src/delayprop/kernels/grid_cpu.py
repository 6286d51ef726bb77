"""Host side of the CPU time-stepped backend: torch tensors in, torch tensors out.

Every function here has a twin of the same signature in the CUDA backend; ``kernels.grid_backend``
picks one by the device of the tensors.  Both check their arguments and size their output with
the shared host layer (``kernels.host``).  Tensors are passed to Numba without copies
(``Tensor.numpy()`` of contiguous CPU tensors).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import cpu
from ._grid_math import GridConstants
from .host import (
    Capacity,
    adaptation_jumps,
    check_grid_layout,
    check_spike_gradients,
    check_tau_grad,
    check_voltage_gradient,
    layer_tau_grad,
    run_in_slots,
)

__all__ = ["lif_forward", "lif_backward", "li_forward", "li_backward", "sum_parts"]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _flat(t: Tensor) -> np.ndarray:
    return _np(t).reshape(-1)


def sum_parts(parts: np.ndarray, shape: tuple[int, ...]) -> Tensor:
    """Per-chunk partial sums [n_chunks, size] -> their sum, a tensor of ``shape``."""
    return torch.from_numpy(parts.sum(axis=0).reshape(shape))


def _tau_parts(tau_grad: bool, nw: int, n_out: int, dtype: np.dtype) -> np.ndarray:
    """Per-worker dL/dtau_mem, dL/dtau_syn per neuron [nw, 2 * n_out] for the kernels, or
    [nw, 0] without ``tau_grad``."""
    return np.zeros((nw, 2 * n_out if tau_grad else 0), dtype)


def lif_forward(
    in_steps: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    w_t: Tensor,
    d_t: Tensor,
    w_rec_t: Tensor,
    d_rec_t: Tensor,
    n_steps: int,
    consts: GridConstants,
    capacity: Capacity,
    adaptation: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run a LIF layer; returns output (steps int32, units int32, offsets int64, vdot float,
    iref float: the drive (synaptic current, minus the adaptation current with adaptation) at
    the end of each spike's refractory period, NaN where it does not end within the trial;
    empty without a refractory period).

    ``w_t``/``d_t`` are [n_in, n_out] (weights, delays in steps), ``w_rec_t``/``d_rec_t``
    [n_out, n_out] or empty.  ``capacity`` is a guess of the spikes per sample (a
    ``host.SpikeCapacity`` is updated); samples that emit more are simulated again with
    exactly enough room.  ``adaptation``: the jump b [n_out] (V units) of each neuron's
    adaptation current at its spikes, given exactly when ``consts`` has ``tau_adapt``.
    """
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t, w_rec_t, d_rec_t)
    b = adaptation_jumps(adaptation, consts, w_t)
    n_out = w_t.shape[1]
    dtype = _np(w_t).dtype
    batch = in_offsets.numel() - 1
    args = (
        _np(in_steps), _np(in_units), _np(in_offsets), _flat(w_t), _flat(d_t),
        _flat(w_rec_t), _flat(d_rec_t), _np(b), n_out, n_steps, consts.packed(dtype),
    )  # fmt: skip

    with_iref = consts.ref_steps > 0

    def run(sample_ids: np.ndarray, cap: int):
        steps = np.empty(len(sample_ids) * cap, np.int32)
        units = np.empty(len(sample_ids) * cap, np.int32)
        vdot = np.empty(len(sample_ids) * cap, dtype)
        iref = np.empty(len(sample_ids) * cap if with_iref else 0, dtype)
        counts = np.empty(len(sample_ids), np.int64)
        cpu.lif_forward(*args, sample_ids, cap, steps, units, vdot, iref, counts,
                        cpu.n_chunks(len(sample_ids)))  # fmt: skip
        return ([steps, units, vdot, iref] if with_iref else [steps, units, vdot]), counts

    out, offsets = run_in_slots(run, batch, capacity)
    iref = out[3] if with_iref else np.empty(0, dtype)
    return (
        torch.from_numpy(out[0]),
        torch.from_numpy(out[1]),
        torch.from_numpy(offsets),
        torch.from_numpy(out[2]),
        torch.from_numpy(iref),
    )


def lif_backward(
    in_steps: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    out_steps: Tensor,
    out_units: Tensor,
    out_offsets: Tensor,
    out_vdot: Tensor,
    out_iref: Tensor,
    grad_out: Tensor,
    kick: Tensor,
    w_t: Tensor,
    d_t: Tensor,
    w_rec_t: Tensor,
    d_rec_t: Tensor,
    n_steps: int,
    consts: GridConstants,
    adaptation: Tensor | None = None,
    tau_grad: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """EventProp backward of a LIF layer (``out_iref`` and ``adaptation`` as given to and
    returned by ``lif_forward``).

    Returns (dL/d input times, dL/dw_t, sum of (lambda_V - lambda_I) at arrivals per synapse
    [n_in, n_out], the same two for the recurrent matrices, dL/db [n_out], empty without
    adaptation, and, with ``tau_grad`` (not with adaptation), [dL/dtau_mem, dL/dtau_syn] of the
    layer (ms^-1 x loss), else empty).  The delay gradient is the third times the weight (done
    by the caller).
    """
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t, w_rec_t, d_rec_t)
    b = adaptation_jumps(adaptation, consts, w_t)
    n_in, n_out = w_t.shape
    batch = in_offsets.numel() - 1
    check_spike_gradients(out_steps, out_units, out_offsets, out_vdot, grad_out, kick, n_out,
                          batch)  # fmt: skip
    n_rec = w_rec_t.numel()
    dtype = _np(w_t).dtype
    nw = cpu.n_chunks(batch)
    grad_in = np.zeros(in_steps.numel(), dtype)
    dw = np.zeros((nw, n_in * n_out), dtype)
    dd = np.zeros((nw, n_in * n_out), dtype)
    dw_rec = np.zeros((nw, n_rec), dtype)
    dd_rec = np.zeros((nw, n_rec), dtype)
    db = np.zeros((nw, b.numel()), dtype)
    check_tau_grad(tau_grad, b.numel())
    dtau = _tau_parts(tau_grad, nw, n_out, dtype)
    cpu.lif_backward(
        _np(in_steps), _np(in_units), _np(in_offsets), _np(out_steps), _np(out_units),
        _np(out_offsets), _np(out_vdot), _np(out_iref), _np(grad_out), _np(kick), _flat(w_t),
        _flat(d_t), _flat(w_rec_t), _flat(d_rec_t), _np(b), n_out, n_steps, consts.packed(dtype),
        nw, grad_in, dw, dd, dw_rec, dd_rec, db, dtau,
    )  # fmt: skip
    rec_shape = tuple(w_rec_t.shape)
    return (
        torch.from_numpy(grad_in),
        sum_parts(dw, (n_in, n_out)),
        sum_parts(dd, (n_in, n_out)),
        sum_parts(dw_rec, rec_shape),
        sum_parts(dd_rec, rec_shape),
        sum_parts(db, (b.numel(),)),
        layer_tau_grad(torch.from_numpy(dtau)),
    )


def li_forward(
    in_steps: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    w_t: Tensor,
    d_t: Tensor,
    n_steps: int,
    consts: GridConstants,
) -> Tensor:
    """Voltage trace [batch, n_steps, n_out] of a leaky-integrator readout."""
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t)
    n_out = w_t.shape[1]
    dtype = _np(w_t).dtype
    batch = in_offsets.numel() - 1
    v = np.empty((batch, n_steps, n_out), dtype)
    cpu.li_forward(
        _np(in_steps), _np(in_units), _np(in_offsets), _flat(w_t), _flat(d_t), n_out, n_steps,
        consts.packed(dtype), cpu.n_chunks(batch), v,
    )  # fmt: skip
    return torch.from_numpy(v)


def li_backward(
    in_steps: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    grad_v: Tensor,
    w_t: Tensor,
    d_t: Tensor,
    n_steps: int,
    consts: GridConstants,
    tau_grad: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Adjoint of the LI readout; returns (dL/d input times, dL/dw_t, delay sums, time-constant
    gradients as in ``lif_backward``)."""
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t)
    n_in, n_out = w_t.shape
    batch = in_offsets.numel() - 1
    check_voltage_gradient(grad_v, batch, n_steps, n_out)
    dtype = _np(w_t).dtype
    nw = cpu.n_chunks(batch)
    grad_in = np.zeros(in_steps.numel(), dtype)
    dw = np.zeros((nw, n_in * n_out), dtype)
    dd = np.zeros((nw, n_in * n_out), dtype)
    dtau = _tau_parts(tau_grad, nw, n_out, dtype)
    cpu.li_backward(
        _np(in_steps), _np(in_units), _np(in_offsets), _np(grad_v.to(w_t.dtype)), _flat(w_t),
        _flat(d_t), n_out, n_steps, consts.packed(dtype), nw, grad_in, dw, dd, dtau,
    )  # fmt: skip
    return (
        torch.from_numpy(grad_in),
        sum_parts(dw, (n_in, n_out)),
        sum_parts(dd, (n_in, n_out)),
        layer_tau_grad(torch.from_numpy(dtau)),
    )

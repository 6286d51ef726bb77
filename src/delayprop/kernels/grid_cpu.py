"""Host side of the CPU time-stepped backend: torch tensors in, torch tensors out.

Every function here has a twin of the same signature in the CUDA backend; ``kernels.grid_backend``
picks one by the device of the tensors.  Tensors are passed to Numba without copies
(``Tensor.numpy()`` of contiguous CPU tensors).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from . import cpu
from ._grid_math import GridConstants

__all__ = ["lif_forward", "lif_backward", "li_forward", "li_backward", "run_in_slots", "sum_parts"]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _flat(t: Tensor) -> np.ndarray:
    return _np(t).reshape(-1)


def sum_parts(parts: np.ndarray, shape: tuple[int, ...]) -> Tensor:
    return torch.from_numpy(parts.sum(axis=0).reshape(shape))


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
    capacity: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run a LIF layer; returns output (steps int32, units int32, offsets int64, vdot float).

    ``w_t``/``d_t`` are [n_in, n_out] (weights, delays in steps), ``w_rec_t``/``d_rec_t``
    [n_out, n_out] or empty.  ``capacity`` is a guess of the spikes per sample; samples that
    emit more are simulated again with exactly enough room.
    """
    n_out = w_t.shape[1]
    dtype = _np(w_t).dtype
    batch = in_offsets.numel() - 1
    args = (
        _np(in_steps), _np(in_units), _np(in_offsets), _flat(w_t), _flat(d_t),
        _flat(w_rec_t), _flat(d_rec_t), n_out, n_steps, consts.packed(dtype),
    )  # fmt: skip

    def run(sample_ids: np.ndarray, cap: int):
        steps = np.empty(len(sample_ids) * cap, np.int32)
        units = np.empty(len(sample_ids) * cap, np.int32)
        vdot = np.empty(len(sample_ids) * cap, dtype)
        counts = np.empty(len(sample_ids), np.int64)
        cpu.lif_forward(*args, sample_ids, cap, steps, units, vdot, counts,
                        cpu.n_chunks(len(sample_ids)))  # fmt: skip
        return [steps, units, vdot], counts

    (out_steps, out_units, out_vdot), offsets = run_in_slots(run, batch, capacity)
    return (
        torch.from_numpy(out_steps),
        torch.from_numpy(out_units),
        torch.from_numpy(offsets),
        torch.from_numpy(out_vdot),
    )


def run_in_slots(
    run: Callable[[np.ndarray, int], tuple[list[np.ndarray], np.ndarray]],
    batch: int,
    capacity: int,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Run a layer whose kernel writes each sample's spikes into ``cap`` slots of its own.

    ``run(sample_ids, cap)`` returns (per-slot arrays [len(sample_ids) * cap], spike counts per
    sample); a count above ``cap`` means the sample ran out of room.  The capacity is a guess
    of the spikes per sample: samples that emit more are simulated again with exactly enough
    room.  Returns the flat arrays (samples one after another) and offsets [batch + 1].
    """
    cap = max(int(capacity), 1)
    ids = np.arange(batch, dtype=np.int64)
    arrays, counts = run(ids, cap)
    offsets = np.zeros(batch + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    out = [np.empty(int(offsets[-1]), a.dtype) for a in arrays]
    fits = counts <= cap
    _copy_slots(arrays, cap, ids[fits], counts[fits], offsets[:-1][fits], out)
    if not fits.all():
        again = ids[~fits]
        cap2 = int(counts[again].max())
        arrays, counts2 = run(again, cap2)
        _copy_slots(arrays, cap2, np.arange(len(again)), counts2, offsets[again], out)
    return out, offsets


def _copy_slots(src: list[np.ndarray], cap: int, slots: np.ndarray, counts: np.ndarray,
                dst_start: np.ndarray, dst: list[np.ndarray]) -> None:  # fmt: skip
    """dst[dst_start[r] + e] = src[slots[r] * cap + e] for e < counts[r], for every array."""
    total = int(counts.sum())
    if total == 0:
        return
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    src_idx = np.repeat(slots * cap, counts) + within
    dst_idx = np.repeat(dst_start, counts) + within
    for a, b in zip(src, dst):
        b[dst_idx] = a[src_idx]


def lif_backward(
    in_steps: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    out_steps: Tensor,
    out_units: Tensor,
    out_offsets: Tensor,
    out_vdot: Tensor,
    grad_out: Tensor,
    kick: Tensor,
    w_t: Tensor,
    d_t: Tensor,
    w_rec_t: Tensor,
    d_rec_t: Tensor,
    n_steps: int,
    consts: GridConstants,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """EventProp backward of a LIF layer.

    Returns (dL/d input times, dL/dw_t, sum of (lambda_V - lambda_I) at arrivals per synapse
    [n_in, n_out], and the same two for the recurrent matrices).  The delay gradient is the
    last-but-one times the weight (done by the caller).
    """
    n_in, n_out = w_t.shape
    n_rec = w_rec_t.numel()
    dtype = _np(w_t).dtype
    batch = in_offsets.numel() - 1
    nw = cpu.n_chunks(batch)
    grad_in = np.zeros(in_steps.numel(), dtype)
    dw = np.zeros((nw, n_in * n_out), dtype)
    dd = np.zeros((nw, n_in * n_out), dtype)
    dw_rec = np.zeros((nw, n_rec), dtype)
    dd_rec = np.zeros((nw, n_rec), dtype)
    cpu.lif_backward(
        _np(in_steps), _np(in_units), _np(in_offsets), _np(out_steps), _np(out_units),
        _np(out_offsets), _np(out_vdot), _np(grad_out), _np(kick), _flat(w_t), _flat(d_t),
        _flat(w_rec_t), _flat(d_rec_t), n_out, n_steps, consts.packed(dtype), nw,
        grad_in, dw, dd, dw_rec, dd_rec,
    )  # fmt: skip
    rec_shape = tuple(w_rec_t.shape)
    return (
        torch.from_numpy(grad_in),
        sum_parts(dw, (n_in, n_out)),
        sum_parts(dd, (n_in, n_out)),
        sum_parts(dw_rec, rec_shape),
        sum_parts(dd_rec, rec_shape),
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
) -> tuple[Tensor, Tensor, Tensor]:
    """Adjoint of the LI readout; returns (dL/d input times, dL/dw_t, delay sums as in
    ``lif_backward``)."""
    n_in, n_out = w_t.shape
    dtype = _np(w_t).dtype
    batch = in_offsets.numel() - 1
    nw = cpu.n_chunks(batch)
    grad_in = np.zeros(in_steps.numel(), dtype)
    dw = np.zeros((nw, n_in * n_out), dtype)
    dd = np.zeros((nw, n_in * n_out), dtype)
    cpu.li_backward(
        _np(in_steps), _np(in_units), _np(in_offsets), _np(grad_v.to(w_t.dtype)), _flat(w_t),
        _flat(d_t), n_out, n_steps, consts.packed(dtype), nw, grad_in, dw, dd,
    )  # fmt: skip
    return (
        torch.from_numpy(grad_in),
        sum_parts(dw, (n_in, n_out)),
        sum_parts(dd, (n_in, n_out)),
    )

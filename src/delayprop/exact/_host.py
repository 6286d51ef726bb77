"""Host side of the exact engine: torch tensors in, numpy through the Numba kernels, torch out.

Everything here is float64 on the CPU.  Parameters arrive torch-style ``[n_out, n_src]`` and are
laid out by source unit with their delays sorted (the stream layout of ``_forward``).  Output
room, reruns, compaction and the checks of the event lists are the time grid's
(``kernels.host``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._util import n_chunks
from ..kernels.host import Capacity, check_spike_gradients, run_in_slots
from ..validation import check_event_arrays
from . import _backward, _forward
from ._timeline import tree_size

__all__ = [
    "Projection", "project", "empty_projection", "lif_forward", "li_forward", "backward",
    "MAX_SPIKES_PER_CALL",
]  # fmt: skip


#: most output spikes ``lif_forward`` holds room for at once (all samples of a call together;
#: about 3.5 GiB of buffers): a batch that needs more raises ``kernels.host.SpikeLimitExceeded``
MAX_SPIKES_PER_CALL = 2**27


class Projection(NamedTuple):
    """Synapses by source unit u, delays ascending: arrays [n_src, n_out]."""

    d_sorted: np.ndarray  # float64, ms
    target: np.ndarray  # int64, postsynaptic neuron
    w_sorted: np.ndarray  # float64


def project(weight: Tensor, delay: Tensor | None) -> Projection:
    """Stream layout of a weight matrix [n_out, n_src] and its delays (ms; None = all zero)."""
    w_t = weight.detach().to(torch.float64).t()
    d_t = torch.zeros_like(w_t) if delay is None else delay.detach().to(torch.float64).t()
    d_sorted, target = torch.sort(d_t, dim=1, stable=True)
    w_sorted = torch.gather(w_t, 1, target)
    return Projection(
        np.ascontiguousarray(d_sorted.numpy()),
        np.ascontiguousarray(target.numpy()),
        np.ascontiguousarray(w_sorted.numpy()),
    )


def empty_projection(n_out: int) -> Projection:
    """No synapses (a feed-forward layer's recurrent projection)."""
    return Projection(np.zeros((0, n_out)), np.zeros((0, n_out), np.int64), np.zeros((0, n_out)))


def _np(t: Tensor | np.ndarray, dtype) -> np.ndarray:
    """A contiguous host array of ``dtype`` (no copy when it already is one)."""
    if isinstance(t, Tensor):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(t, dtype=dtype)


def _spike_arrays(times: Tensor, units: Tensor, offsets: Tensor) -> tuple[np.ndarray, ...]:
    """An event list as the kernels take it: times float64 (ms), units and offsets int64
    (checked: 1-D, units int32, offsets int64, as every kernel layer takes them)."""
    check_event_arrays("exact engine", times, units, offsets)
    return _np(times, np.float64), _np(units, np.int64), _np(offsets, np.int64)


def _jump(adaptation: np.ndarray | None) -> np.ndarray:
    """The kernels' ``jump``: b per neuron, or empty for no adaptation."""
    return np.zeros(0) if adaptation is None else _np(adaptation, np.float64)


def _max_count(offsets: np.ndarray) -> int:
    return int(np.diff(offsets).max(initial=0))


def lif_forward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    proj: Projection,
    rec: Projection,
    consts: np.ndarray,
    taus: np.ndarray,
    max_spikes: int,
    capacity: Capacity,
    limit: int,
    adaptation: np.ndarray | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run a LIF layer on the batch, with the time constants per neuron ``taus`` [3, n_out]
    (tau_mem, tau_syn ms, delta ms^-1; see ``_forward``).

    Returns output spike times (float64 ms), units (int32), offsets (int64), tau_mem dV/dt
    before each spike, and the drive I - A at the end of its refractory period (NaN if none).
    ``adaptation``: the adaptation jump b per neuron [n_out] (float64, V units), or None for
    none (A = 0).
    ``capacity`` guesses the spikes per sample (a ``kernels.host.SpikeCapacity`` is updated);
    samples that need more are run again with twice the room, up to ``limit`` spikes per
    sample (all neurons together): a sample that needs more raises ``SpikeLimitExceeded``
    (the work and memory stay bounded even when a layer fires without end, e.g. a zero-delay
    recurrent loop of strong weights).
    """
    times, units, offsets = _spike_arrays(in_times, in_units, in_offsets)
    batch = len(offsets) - 1
    n_out = proj.d_sorted.shape[1]
    max_in = max(_max_count(offsets), 1)
    leaves = tree_size(n_out)
    jump = _jump(adaptation)
    if max_spikes > 0:  # no sample can need more
        limit = min(limit, max_spikes * n_out)

    def run(pending: np.ndarray, cap: int) -> tuple[list[np.ndarray], np.ndarray]:
        n = len(pending)
        out = [np.empty(n * cap), np.empty(n * cap, np.int32), np.empty(n * cap),
               np.empty(n * cap)]  # fmt: skip
        got = np.empty(n, np.int64)
        _forward.lif_forward(
            times, units, offsets, *proj, *rec, consts, taus, max_spikes, jump, leaves, pending,
            cap,
            max_in, n_chunks(n), *out, got,
        )  # fmt: skip
        return out, got

    (t, u, vdot, iref), out_offsets = run_in_slots(
        run, batch, capacity, limit=limit, max_slots=MAX_SPIKES_PER_CALL
    )
    return (torch.from_numpy(t), torch.from_numpy(u), torch.from_numpy(out_offsets),
            torch.from_numpy(vdot), torch.from_numpy(iref))  # fmt: skip


def li_forward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    proj: Projection,
    consts: np.ndarray,
    taus: np.ndarray,
    sample_dt: float,
    n_samples: int,
    peak: bool,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """LI readout with the time constants per neuron ``taus`` [3, n_out] (as ``lif_forward``):
    the trace [batch, n_samples, n_out] (empty if n_samples == 0) and, if ``peak``, the peak
    arrays (value, time, kind, stream, position, aux) [batch, n_out]."""
    times, units, offsets = _spike_arrays(in_times, in_units, in_offsets)
    batch = len(offsets) - 1
    n_out = proj.d_sorted.shape[1]
    v = np.empty((batch if n_samples else 0, n_samples, n_out))
    rows = batch if peak else 0
    peaks = (np.empty((rows, n_out)), np.empty((rows, n_out)), np.empty((rows, n_out), np.int64),
             np.empty((rows, n_out), np.int64), np.empty((rows, n_out), np.int64),
             np.empty((rows, n_out)))  # fmt: skip
    _forward.li_forward(
        times, units, offsets, *proj, consts, taus, float(sample_dt),
        max(_max_count(offsets), 1), n_chunks(batch), v, *peaks,
    )  # fmt: skip
    return v, peaks


class Drive(NamedTuple):
    """Readout drives of the backward pass (see ``_backward.walk_backward``)."""

    t: np.ndarray  # [batch, E] ms, ascending per sample
    j: np.ndarray  # [batch, E] int64, neuron or -1 for all
    gv: np.ndarray  # [batch, E, n_out] dL/dV
    gi: np.ndarray  # [batch, E, n_out] dL/dI, or empty
    kink_a: np.ndarray  # [batch, n_out] int64 or [0, n_out]
    kink_m: np.ndarray
    kink_c: np.ndarray  # [batch, n_out] float64 or [0, n_out]


def no_drive(batch: int, n_out: int) -> Drive:
    """A LIF layer: no readout drives."""
    none_i = np.zeros((0, n_out), np.int64)
    return Drive(np.zeros((batch, 0)), np.zeros((batch, 0), np.int64),
                 np.zeros((batch, 0, n_out)), np.zeros((0, 0, 0)), none_i, none_i,
                 np.zeros((0, n_out)))  # fmt: skip


def backward(
    in_times: Tensor,
    in_units: Tensor,
    in_offsets: Tensor,
    proj: Projection,
    out: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    grad_out: np.ndarray,
    kick: np.ndarray,
    rec: Projection,
    drive: Drive,
    consts: np.ndarray,
    taus: np.ndarray,
    tau_grads: bool = False,
    adaptation: np.ndarray | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Adjoint pass of one layer.

    ``out`` = (times, units, offsets, vdot, iref) of the layer's own spikes (empty for a
    readout); ``grad_out`` = dL/dt of each (float64, modified in place); ``adaptation`` the
    forward's b per neuron [n_out], or None; ``taus`` the forward's time constants per neuron
    [3, n_out].  Returns dL/d input times and dL/dW, dL/dD,
    dL/dW_rec, dL/dD_rec, each [n_out, n_src], if ``tau_grads`` dL/dtau_mem, dL/dtau_syn per
    neuron [2, n_out] (ms^-1 x loss), else None, and with ``adaptation`` dL/db [n_out], else
    None.
    """
    times, units, offsets = _spike_arrays(in_times, in_units, in_offsets)
    batch = len(offsets) - 1
    n_src, n_out = proj.d_sorted.shape
    check_spike_gradients(*out[:4], torch.from_numpy(grad_out), torch.from_numpy(kick), n_out,
                          batch)  # fmt: skip
    o_t, o_u, o_off = _spike_arrays(*out[:3])
    o_vdot, o_iref = _np(out[3], np.float64), _np(out[4], np.float64)
    n_rec = rec.d_sorted.shape[0]
    nw = n_chunks(batch)
    grad_in = np.zeros(len(times))
    parts = [np.zeros((nw, n * n_out)) for n in (n_src, n_src, n_rec, n_rec)]
    dtau_part = np.zeros((nw, 2 if tau_grads else 0, n_out))
    jump = _jump(adaptation)
    db_part = np.zeros((nw, jump.size))
    max_streams = max(int(np.diff(offsets + o_off[: batch + 1]).max(initial=0)), 1)
    _backward.walk_backward(
        times, units, offsets, *proj, o_t, o_u, o_off, o_vdot, o_iref, grad_out, kick, *rec,
        *drive, consts, taus, jump, max_streams, nw, grad_in, *parts, dtau_part, db_part,
    )  # fmt: skip
    dw, dd, dw_rec, dd_rec = (
        torch.from_numpy(p.sum(axis=0).reshape(-1, n_out).T.copy()) for p in parts
    )
    dtau = torch.from_numpy(dtau_part.sum(axis=0)) if tau_grads else None
    db = torch.from_numpy(db_part.sum(axis=0)) if adaptation is not None else None
    return torch.from_numpy(grad_in), dw, dd, dw_rec, dd_rec, dtau, db

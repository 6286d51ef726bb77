"""Host side of the precise mode (CPU): torch tensors in, torch tensors out.

Splits every input spike time and every delay into a whole number of steps and a remainder in
[0, dt) ms, with the exponential factors of the remainder that the kernels multiply (see
``kernels.precise_cpu``), runs the kernels and returns torch tensors.  Spike times and delays
are never rounded: a time keeps its remainder, only its step index is an integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import cpu, precise_cpu
from .grid_cpu import run_in_slots

__all__ = ["PreciseGrid", "lif_forward", "lif_backward", "li_forward", "li_backward"]


@dataclass(frozen=True)
class PreciseGrid:
    """The time grid and neuron constants of one precise layer call (ms)."""

    dt: float
    tau_mem: float
    tau_syn: float
    n_steps: int
    consts: np.ndarray  # _grid_math.precise_constants, in the kernel's float type


def _split(t: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """t (ms, float64, >= 0) = n dt + r with integer n and r in [0, dt)."""
    n = np.floor(t / dt)
    r = t - n * dt
    up = r >= dt  # floating-point remainders at the edges
    n[up] += 1
    r[up] -= dt
    down = r < 0
    n[down] -= 1
    r[down] += dt
    return n, np.clip(r, 0.0, np.nextafter(dt, 0.0))


def _sources(times: Tensor, units: Tensor, offsets: Tensor, g: PreciseGrid, dtype) -> tuple:
    """(step int32, remainder, e^{r/tau_syn}, e^{r/tau_mem}, unit int32, offsets int64)."""
    t = times.detach().to(torch.float64).numpy()
    n, r = _split(t, g.dt)
    step = np.minimum(n, np.iinfo(np.int32).max).astype(np.int32)  # past the end: no effect
    return (step, r.astype(dtype), np.exp(r / g.tau_syn).astype(dtype),
            np.exp(r / g.tau_mem).astype(dtype), units.contiguous().numpy(),
            offsets.contiguous().numpy())  # fmt: skip


@dataclass(frozen=True)
class _Synapses:
    """A projection in the kernels' layouts.  ``natural``: [n_in * n_out], index i * n_out + j;
    ``sorted``: each presynaptic row ordered by delay remainder, ``perm`` giving the neuron."""

    w: np.ndarray  # natural
    r: np.ndarray  # natural, delay remainder in [0, dt) ms
    perm: np.ndarray  # sorted: int32 postsynaptic neuron of each position
    w_s: np.ndarray  # sorted from here on
    gs: np.ndarray  # e^{r/tau_syn}
    gm: np.ndarray  # e^{r/tau_mem}
    m: np.ndarray  # int32 whole steps of the delay
    r_s: np.ndarray

    def unsort(self, sorted_values: np.ndarray, shape: tuple[int, int]) -> Tensor:
        """Per-synapse values in the sorted layout -> tensor [n_in, n_out]."""
        out = np.empty(shape, sorted_values.dtype)
        rows = np.arange(shape[0])[:, None]
        out[rows, self.perm.reshape(shape)] = sorted_values.reshape(shape)
        return torch.from_numpy(out)


def _synapses(w: Tensor, d: Tensor, g: PreciseGrid) -> _Synapses:
    """Kernel layouts of w [n_out, n_in] and delays d [n_out, n_in] (ms)."""
    w_t = w.detach().t().contiguous().numpy()
    n_in, n_out = w_t.shape
    dtype = w_t.dtype
    m, r = _split(d.detach().t().contiguous().to(torch.float64).numpy(), g.dt)
    r = r.astype(dtype)  # the kernels' carry test is on these rounded remainders
    perm = np.argsort(r, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, perm, axis=1).reshape(-1)  # noqa: E731
    r_s = take(r)
    return _Synapses(
        w_t.reshape(-1), r.reshape(-1), perm.astype(np.int32).reshape(-1), take(w_t),
        np.exp(r_s.astype(np.float64) / g.tau_syn).astype(dtype),
        np.exp(r_s.astype(np.float64) / g.tau_mem).astype(dtype), take(m).astype(np.int32), r_s,
    )  # fmt: skip


def lif_forward(
    in_times: Tensor, in_units: Tensor, in_offsets: Tensor, w: Tensor, d: Tensor,
    g: PreciseGrid, capacity: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:  # fmt: skip
    """A precise LIF layer: w, d [n_out, n_in] (d in ms).  Returns output (steps int32,
    units int32, offsets int64, offset within the step ms, I - threshold at the crossing) and
    the number of crossings dropped beyond ``MAX_SPIKES_PER_STEP`` in one step."""
    dtype = w.detach().numpy().dtype
    src = _sources(in_times, in_units, in_offsets, g, dtype)
    syn = _synapses(w, d, g)
    n_out = w.shape[0]
    batch = in_offsets.numel() - 1
    src_cap = int(np.diff(src[5]).max(initial=0))
    dropped = np.zeros(batch, np.int64)

    def run(sample_ids: np.ndarray, cap: int):
        size = len(sample_ids) * cap
        steps, units = np.empty(size, np.int32), np.empty(size, np.int32)
        s, vdot = np.empty(size, dtype), np.empty(size, dtype)
        counts = np.empty(len(sample_ids), np.int64)
        drops = np.empty(len(sample_ids), np.int64)
        precise_cpu.lif_forward(
            *src, syn.perm, syn.w_s * syn.gs, syn.w_s * syn.gm, np.maximum(syn.w_s, 0), syn.m,
            syn.r_s, syn.w, syn.r,
            n_out, g.n_steps, g.consts, sample_ids, cap, src_cap, steps, units, s, vdot, counts,
            drops, cpu.n_chunks(len(sample_ids)),
        )  # fmt: skip
        dropped[sample_ids] = drops
        return [steps, units, s, vdot], counts

    (steps, units, s, vdot), offsets = run_in_slots(run, batch, capacity)
    return (torch.from_numpy(steps), torch.from_numpy(units), torch.from_numpy(offsets),
            torch.from_numpy(s), torch.from_numpy(vdot), int(dropped.sum()))  # fmt: skip


def lif_backward(
    in_times: Tensor, in_units: Tensor, in_offsets: Tensor, out_steps: Tensor,
    out_units: Tensor, out_offsets: Tensor, out_s: Tensor, out_vdot: Tensor, grad_out: Tensor,
    kick: Tensor, w: Tensor, d: Tensor, g: PreciseGrid,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """EventProp backward of a precise LIF layer: (dL/d input times, dL/dw [n_in, n_out],
    SUM (lambda_V - lambda_I) at the arrivals per synapse [n_in, n_out])."""
    n_out, n_in = w.shape
    dtype = w.detach().numpy().dtype
    src = _sources(in_times, in_units, in_offsets, g, dtype)
    syn = _synapses(w, d, g)
    batch = in_offsets.numel() - 1
    nc = cpu.n_chunks(batch)
    grad_in = np.zeros(in_times.numel(), dtype)
    dw = np.zeros((nc, n_in * n_out), dtype)
    dd = np.zeros((nc, n_in * n_out), dtype)
    max_out = int(np.diff(out_offsets.numpy()).max(initial=0))
    precise_cpu.lif_backward(
        *src, out_steps.numpy(), out_units.numpy(), out_s.numpy(), out_vdot.numpy(),
        out_offsets.numpy(), grad_out.to(w.dtype).contiguous().numpy(),
        kick.to(w.dtype).numpy(), syn.perm, syn.w_s, syn.gs, syn.gm, syn.m, syn.r_s, n_out,
        g.n_steps, g.consts, max_out, nc, grad_in, dw, dd,
    )  # fmt: skip
    return _gradients(grad_in, dw, dd, syn, (n_in, n_out))


def _gradients(grad_in: np.ndarray, dw: np.ndarray, dd: np.ndarray, syn: _Synapses,
               shape: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Chunk partial sums (sorted layout) -> (grad_in, dw, dd) with dw, dd [n_in, n_out]."""
    return (torch.from_numpy(grad_in), syn.unsort(dw.sum(axis=0), shape),
            syn.unsort(dd.sum(axis=0), shape))  # fmt: skip


def li_forward(in_times: Tensor, in_units: Tensor, in_offsets: Tensor, w: Tensor, d: Tensor,
               g: PreciseGrid) -> Tensor:  # fmt: skip
    """Voltage trace [batch, n_steps, n_out] of a precise leaky-integrator readout."""
    dtype = w.detach().numpy().dtype
    src = _sources(in_times, in_units, in_offsets, g, dtype)
    syn = _synapses(w, d, g)
    batch = in_offsets.numel() - 1
    v = np.empty((batch, g.n_steps, w.shape[0]), dtype)
    precise_cpu.li_forward(*src, syn.perm, syn.w_s * syn.gs, syn.w_s * syn.gm, syn.m, syn.r_s,
                           w.shape[0], g.n_steps, g.consts, cpu.n_chunks(batch), v)  # fmt: skip
    return torch.from_numpy(v)


def li_backward(in_times: Tensor, in_units: Tensor, in_offsets: Tensor, grad_v: Tensor,
                w: Tensor, d: Tensor, g: PreciseGrid) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Adjoint of the precise LI readout; returns as ``lif_backward``."""
    n_out, n_in = w.shape
    dtype = w.detach().numpy().dtype
    src = _sources(in_times, in_units, in_offsets, g, dtype)
    syn = _synapses(w, d, g)
    batch = in_offsets.numel() - 1
    nc = cpu.n_chunks(batch)
    grad_in = np.zeros(in_times.numel(), dtype)
    dw = np.zeros((nc, n_in * n_out), dtype)
    dd = np.zeros((nc, n_in * n_out), dtype)
    precise_cpu.li_backward(*src, grad_v.to(w.dtype).contiguous().numpy(), syn.perm, syn.w_s,
                            syn.gs, syn.gm, syn.m, syn.r_s, n_out, g.n_steps, g.consts, nc,
                            grad_in, dw, dd)  # fmt: skip
    return _gradients(grad_in, dw, dd, syn, (n_in, n_out))

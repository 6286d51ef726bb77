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
from .host import Capacity, run_in_slots

__all__ = ["PreciseGrid", "Prepared", "prepare", "lif_forward", "lif_backward", "li_forward",
           "li_backward"]


@dataclass(frozen=True)
class PreciseGrid:
    """The time grid and neuron constants of one precise layer call (ms)."""

    dt: float
    tau_mem: float
    tau_syn: float
    n_steps: int
    consts: np.ndarray  # _grid_math.precise_constants, in the kernel's float type


def split(t: Tensor, dt: float) -> tuple[Tensor, Tensor]:
    """t (ms, float64, >= 0, any device) = n dt + r with whole n (float64) and r in [0, dt)."""
    n = torch.floor(t / dt)
    r = t - n * dt
    up = r >= dt  # floating-point remainders at the edges
    n[up] += 1
    r[up] -= dt
    down = r < 0
    n[down] -= 1
    r[down] += dt
    return n, r.clamp(0.0, float(np.nextafter(dt, 0.0)))


def _sources(times: Tensor, units: Tensor, offsets: Tensor, g: PreciseGrid, dtype) -> tuple:
    """(step int32, remainder, e^{r/tau_syn}, e^{r/tau_mem}, unit int32, offsets int64)."""
    n, r = (x.numpy() for x in split(times.detach().to(torch.float64), g.dt))
    step = np.minimum(n, np.iinfo(np.int32).max).astype(np.int32)  # past the end: no effect
    return (step, r.astype(dtype), np.exp(r / g.tau_syn).astype(dtype),
            np.exp(r / g.tau_mem).astype(dtype), units.contiguous().numpy(),
            offsets.contiguous().numpy())  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """One layer call in the kernels' layouts, made once by ``prepare`` for the forward and
    the backward pass.  Sources: the input spikes (``src``: step, remainder, e^{r/tau_syn},
    e^{r/tau_mem}, unit, offsets).  Synapses [n_in * n_out] in the sorted layout (each
    presynaptic row i ordered by whole delay steps): ``perm`` the postsynaptic neuron, ``w_s``
    the weight, ``gs``, ``gm`` e^{r/tau_syn}, e^{r/tau_mem}, ``m`` whole steps and ``r_s`` the
    remainder (ms) of the delay."""

    src: tuple
    perm: np.ndarray
    w_s: np.ndarray
    gs: np.ndarray
    gm: np.ndarray
    m: np.ndarray
    r_s: np.ndarray

    def unsort(self, sorted_values: np.ndarray, shape: tuple[int, int]) -> Tensor:
        """Per-synapse values in the sorted layout -> tensor ``shape`` = [n_in, n_out]."""
        out = np.empty(shape, sorted_values.dtype)
        out[np.arange(shape[0])[:, None], self.perm.reshape(shape)] = sorted_values.reshape(shape)
        return torch.from_numpy(out)


def prepare(in_times: Tensor, in_units: Tensor, in_offsets: Tensor, w: Tensor, d: Tensor,
            g: PreciseGrid) -> Prepared:  # fmt: skip
    """Sources and synapses of a layer call: w, d [n_out, n_in] (d in ms)."""
    w_t = w.detach().t().contiguous().numpy()
    n_in, n_out = w_t.shape
    dtype = w_t.dtype
    size = n_in * n_out
    w_s, r_s = np.empty(size, dtype), np.empty(size, dtype)
    gs, gm = np.empty(size, dtype), np.empty(size, dtype)
    perm, m = np.empty(size, np.int32), np.empty(size, np.int32)
    d_t = d.detach().t().contiguous().to(torch.float64).numpy()
    precise_cpu.prepare_synapses(w_t, d_t, g.dt, np.nextafter(g.dt, 0.0), g.tau_syn, g.tau_mem,
                                 perm, w_s, gs, gm, m, r_s)  # fmt: skip
    src = _sources(in_times, in_units, in_offsets, g, dtype)
    return Prepared(src, perm, w_s, gs, gm, m, r_s)


def lif_forward(p: Prepared, n_out: int, g: PreciseGrid, capacity: Capacity,
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:  # fmt: skip
    """A precise LIF layer of ``n_out`` neurons.  Returns output (steps int32, units int32,
    offsets int64, offset within the step ms, I - threshold at the crossing) and the number of
    crossings dropped beyond ``MAX_SPIKES_PER_STEP`` in one step."""
    dtype = p.w_s.dtype
    batch = p.src[5].size - 1
    src_cap = int(np.diff(p.src[5]).max(initial=0))
    if src_cap * n_out > 2**31:  # list nodes (int32) up to src_cap * n_out - 1
        raise ValueError(f"precise LIF layer: {src_cap} input spikes in one sample x {n_out} "
                         "neurons is beyond the kernel's arrival lists (at most 2^31 "
                         "arrivals per sample); split the sample or use precise=False")  # fmt: skip
    dropped = np.zeros(batch, np.int64)
    wgs, wgm = p.w_s * p.gs, p.w_s * p.gm

    def run(sample_ids: np.ndarray, cap: int):
        size = len(sample_ids) * cap
        steps, units = np.empty(size, np.int32), np.empty(size, np.int32)
        s, vdot = np.empty(size, dtype), np.empty(size, dtype)
        counts = np.empty(len(sample_ids), np.int64)
        drops = np.empty(len(sample_ids), np.int64)
        precise_cpu.lif_forward(
            *p.src, p.perm, wgs, wgm, p.m, p.r_s, p.w_s, n_out, g.n_steps, g.consts,
            sample_ids, cap, src_cap, steps, units, s, vdot, counts, drops,
            cpu.n_chunks(len(sample_ids)),
        )  # fmt: skip
        dropped[sample_ids] = drops
        return [steps, units, s, vdot], counts

    (steps, units, s, vdot), offsets = run_in_slots(run, batch, capacity)
    return (torch.from_numpy(steps), torch.from_numpy(units), torch.from_numpy(offsets),
            torch.from_numpy(s), torch.from_numpy(vdot), int(dropped.sum()))  # fmt: skip


def lif_backward(
    p: Prepared, n_out: int, out_steps: Tensor, out_units: Tensor, out_offsets: Tensor,
    out_s: Tensor, out_vdot: Tensor, grad_out: Tensor, kick: Tensor, g: PreciseGrid,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """EventProp backward of a precise LIF layer: (dL/d input times, dL/dw [n_in, n_out],
    SUM (lambda_V - lambda_I) at the arrivals per synapse [n_in, n_out])."""
    dtype = p.w_s.dtype
    grad_in, dw, dd = _buffers(p)
    max_out = int(np.diff(out_offsets.numpy()).max(initial=0))
    precise_cpu.lif_backward(
        *p.src, out_steps.numpy(), out_units.numpy(), out_s.numpy(), out_vdot.numpy(),
        out_offsets.numpy(), grad_out.contiguous().numpy().astype(dtype, copy=False),
        kick.numpy().astype(dtype), p.perm, p.w_s, p.gs, p.gm, p.m, p.r_s, n_out, g.n_steps,
        g.consts, max_out, dw.shape[0], grad_in, dw, dd,
    )  # fmt: skip
    return _gradients(p, n_out, grad_in, dw, dd)


def li_forward(p: Prepared, n_out: int, g: PreciseGrid) -> Tensor:
    """Voltage trace [batch, n_steps, n_out] of a precise leaky-integrator readout."""
    batch = p.src[5].size - 1
    v = np.empty((batch, g.n_steps, n_out), p.w_s.dtype)
    precise_cpu.li_forward(*p.src, p.perm, p.w_s * p.gs, p.w_s * p.gm, p.m, p.r_s, n_out,
                           g.n_steps, g.consts, cpu.n_chunks(batch), v)  # fmt: skip
    return torch.from_numpy(v)


def li_backward(p: Prepared, n_out: int, grad_v: Tensor, g: PreciseGrid
                ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Adjoint of the precise LI readout; returns as ``lif_backward``."""
    grad_in, dw, dd = _buffers(p)
    precise_cpu.li_backward(
        *p.src, grad_v.contiguous().numpy().astype(p.w_s.dtype, copy=False), p.perm, p.w_s, p.gs,
        p.gm, p.m, p.r_s, n_out, g.n_steps, g.consts, dw.shape[0], grad_in, dw, dd,
    )  # fmt: skip
    return _gradients(p, n_out, grad_in, dw, dd)


def _buffers(p: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """grad_in [n_sources] and per-chunk accumulators [n_chunks, n_in * n_out], zeroed."""
    nc = cpu.n_chunks(p.src[5].size - 1)
    dtype = p.w_s.dtype
    return (np.zeros(p.src[0].size, dtype), np.zeros((nc, p.w_s.size), dtype),
            np.zeros((nc, p.w_s.size), dtype))  # fmt: skip


def _gradients(p: Prepared, n_out: int, grad_in: np.ndarray, dw: np.ndarray, dd: np.ndarray,
               ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Chunk partial sums (sorted layout) -> (grad_in, dw, dd), dw and dd [n_in, n_out]."""
    shape = (p.w_s.size // n_out, n_out)
    return (torch.from_numpy(grad_in), p.unsort(dw.sum(axis=0), shape),
            p.unsort(dd.sum(axis=0), shape))  # fmt: skip

"""Host side of the precise mode on CUDA: torch tensors in, torch tensors out.

Every function has the signature of its twin in ``kernels.precise_host`` (CPU);
``kernels.precise_backend`` picks this module for CUDA tensors.  Input spike times and delays
are split into whole steps and remainders on the device (``precise_host.split``, the same
operations as on the CPU), the exponential factors of the remainders are computed there, and
the kernels (``kernels.precise_cuda``) take the synapses in the natural layout
``[n_in, n_out]``, so gradients need no reordering.  Launches, zero-copy arguments, torch's
stream, the launch settings and the re-run of samples that overflow their output slots are
those of the grid backend (``kernels.grid_cuda``).

Memory per block: forward, a ring of ``ring_len x n_out`` step sums (3 values) and list heads
(int32), and one int32 per input spike of the largest sample and neuron (the arrival lists);
backward, a ring of ``ring_len x n_out`` records (4 values and an int64) and one partial weight
and delay gradient matrix each.  ``ring_len`` is the largest whole number of delay steps + 2
(at most ``n_steps + 1``: arrivals past the last step are skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import precise_cuda as kern
from .grid_cuda import (
    _arr,
    _blocks,
    _check_tensors,
    _launching,
    _reduction_layout,
    _threads,
    launch_config,
)
from .host import Capacity, run_in_device_slots
from .precise_host import PreciseGrid, split

__all__ = ["Prepared", "prepare", "lif_forward", "lif_backward", "li_forward", "li_backward"]

_INT32_MAX = float(np.iinfo(np.int32).max)


@dataclass(frozen=True)
class Prepared:
    """One layer call in the CUDA kernels' layouts, made once by ``prepare`` for the forward
    and the backward pass (device tensors).  ``src``: the input spikes (step int32, remainder
    ms, e^{r/tau_syn}, e^{r/tau_mem}, unit int32, offsets int64).  Synapses [n_in, n_out]: ``w``,
    ``r`` (delay remainders, ms), ``m`` (whole delay steps, int32), ``gs`` = e^{r/tau_syn},
    ``gm`` = e^{r/tau_mem}.  ``ring_len``: rows of the kernels' rings; ``src_cap``: the most
    input spikes of one sample."""

    src: tuple[Tensor, ...]
    w: Tensor
    r: Tensor
    m: Tensor
    gs: Tensor
    gm: Tensor
    ring_len: int
    src_cap: int

    def sources(self) -> list:
        """The source arrays as kernel arguments."""
        return [_arr(x) for x in self.src]

    def synapses(self, *tensors: Tensor) -> list:
        """[n_in, n_out] tensors as flat kernel arguments."""
        return [_arr(x.reshape(-1)) for x in tensors]


def _whole_steps(n: Tensor) -> Tensor:
    """Whole steps (float64) as int32; past the int32 range means past the trial anyway."""
    return n.clamp(max=_INT32_MAX).to(torch.int32)


def prepare(in_times: Tensor, in_units: Tensor, in_offsets: Tensor, w: Tensor, d: Tensor,
            g: PreciseGrid) -> Prepared:  # fmt: skip
    """Sources and synapses of a layer call: w, d [n_out, n_in] (d in ms, >= 0)."""
    _check_tensors(w, d, in_times, in_units, in_offsets)
    if d.shape != w.shape or w.dim() != 2:
        raise ValueError(f"weights and delays must be [n_out, n_in] alike, got "
                         f"{tuple(w.shape)} and {tuple(d.shape)}")  # fmt: skip
    if in_times.shape != in_units.shape or in_times.dim() != 1 or in_offsets.dim() != 1:
        raise ValueError("input times and units must be 1-D of equal length, offsets 1-D")
    if (in_units.dtype, in_offsets.dtype) != (torch.int32, torch.int64):
        raise ValueError("input units must be int32 and offsets int64")
    dtype = w.dtype
    w_t = w.detach().t().contiguous()
    whole, rem = split(d.detach().t().to(torch.float64).contiguous(), g.dt)
    r = rem.to(dtype)
    gs = torch.exp(r.double() / g.tau_syn).to(dtype)  # from the stored remainder, as on the CPU
    gm = torch.exp(r.double() / g.tau_mem).to(dtype)
    m = _whole_steps(whole)
    n, rs = split(in_times.detach().to(torch.float64), g.dt)
    src = (_whole_steps(n), rs.to(dtype), torch.exp(rs / g.tau_syn).to(dtype),
           torch.exp(rs / g.tau_mem).to(dtype), in_units.contiguous(),
           in_offsets.contiguous())  # fmt: skip
    per_sample = torch.diff(in_offsets)
    zero = torch.zeros((), dtype=torch.int64, device=w.device)
    max_m, src_cap = torch.stack([  # one device sync
        m.max().long() if m.numel() else zero, per_sample.max() if per_sample.numel() else zero,
    ]).tolist()  # fmt: skip
    ring_len = min(max_m + 2, g.n_steps + 1)
    return Prepared(src, w_t, r, m, gs, gm, ring_len, src_cap)


def _consts(g: PreciseGrid, device: torch.device) -> Tensor:
    return torch.from_numpy(g.consts).to(device)


def _batch(p: Prepared) -> int:
    return p.src[5].numel() - 1


def lif_forward(p: Prepared, n_out: int, g: PreciseGrid, capacity: Capacity,
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:  # fmt: skip
    """A precise LIF layer of ``n_out`` neurons.  Returns output (steps int32, units int32,
    offsets int64, offset within the step ms, I - threshold at the crossing) and the number of
    crossings dropped beyond ``MAX_SPIKES_PER_STEP`` in one step."""
    dev, dtype, cfg = p.w.device, p.w.dtype, launch_config()
    batch = _batch(p)
    dropped = torch.zeros(batch, dtype=torch.int64, device=dev)
    threads = _threads(n_out, cfg)
    shared = 2 * (threads + math.ceil(threads / cfg.group)) * 4
    size = p.ring_len * n_out
    nxt_size = max(p.src_cap, 1) * n_out
    scratch = size * (3 * p.w.element_size() + 4) + nxt_size * 4
    args = (
        *p.sources(), *p.synapses(p.w, p.w * p.gs, p.w * p.gm, p.m, p.r),
        n_out, g.n_steps, p.ring_len, _arr(_consts(g, dev)), cfg.group,
    )  # fmt: skip

    def run(sample_ids: Tensor, cap: int) -> tuple[list[Tensor], Tensor]:
        n_run = sample_ids.numel()
        steps = torch.empty(n_run, cap, dtype=torch.int32, device=dev)
        units = torch.empty(n_run, cap, dtype=torch.int32, device=dev)
        s = torch.empty(n_run, cap, dtype=dtype, device=dev)
        vdot = torch.empty(n_run, cap, dtype=dtype, device=dev)
        counts = torch.empty(n_run, dtype=torch.int64, device=dev)
        drops = torch.zeros(n_run, dtype=torch.int64, device=dev)
        blocks = _blocks(n_run, scratch, cfg)
        acc = torch.zeros(blocks * 3 * size, dtype=dtype, device=dev)
        head = torch.full((blocks * size,), -1, dtype=torch.int32, device=dev)
        nxt = torch.empty(blocks * nxt_size, dtype=torch.int32, device=dev)
        if n_run:
            with _launching(dev) as stream:
                kern.lif_forward[blocks, threads, stream, shared](
                    *args, _arr(sample_ids), cap, _arr(steps.view(-1)), _arr(units.view(-1)),
                    _arr(s.view(-1)), _arr(vdot.view(-1)), _arr(counts), _arr(drops), _arr(acc),
                    _arr(head), _arr(nxt),
                )  # fmt: skip
        dropped[sample_ids] = drops
        return [steps, units, s, vdot], counts

    (steps, units, s, vdot), offsets = run_in_device_slots(run, batch, capacity, dev)
    return steps, units, offsets, s, vdot, int(dropped.sum())


def lif_backward(
    p: Prepared, n_out: int, out_steps: Tensor, out_units: Tensor, out_offsets: Tensor,
    out_s: Tensor, out_vdot: Tensor, grad_out: Tensor, kick: Tensor, g: PreciseGrid,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """EventProp backward of a precise LIF layer: (dL/d input times, dL/dw [n_in, n_out],
    SUM (lambda_V - lambda_I) at the arrivals per synapse [n_in, n_out])."""
    _check_tensors(p.w, out_steps, out_units, out_offsets, out_s, out_vdot, grad_out, kick)
    if not out_steps.numel() == out_units.numel() == out_s.numel() == grad_out.numel():
        raise ValueError("output spikes, their offsets and their gradients differ in length")
    if kick.shape != (n_out,):
        raise ValueError(f"kick must be [{n_out}], got {tuple(kick.shape)}")
    dev, dtype, cfg = p.w.device, p.w.dtype, launch_config()
    threads = _threads(n_out, cfg)
    grad_in, dw, dd, blocks, slots, shared = _backward_buffers(p, n_out, threads, 8)
    n_spikes = max(out_steps.numel(), 1)
    size = p.ring_len * n_out
    rec = torch.empty(blocks * 4 * size, dtype=dtype, device=dev)
    first = torch.empty(blocks * size, dtype=torch.int64, device=dev)
    spk_rec = torch.empty(4 * n_spikes, dtype=dtype, device=dev)
    nxt_same = torch.empty(n_spikes, dtype=torch.int64, device=dev)
    if blocks:
        with _launching(dev) as stream:
            kern.lif_backward[blocks, threads, stream, shared](
                *p.sources(), _arr(out_steps), _arr(out_units), _arr(out_s), _arr(out_vdot),
                _arr(out_offsets), _arr(grad_out.to(dtype)), _arr(kick.to(dtype)),
                *p.synapses(p.w, p.gs, p.gm, p.m, p.r), n_out, g.n_steps, p.ring_len,
                _arr(_consts(g, dev)), cfg.group, slots, _arr(grad_in), _arr(dw), _arr(dd),
                _arr(rec), _arr(first), _arr(spk_rec), _arr(nxt_same),
            )  # fmt: skip
    return _gradients(p, grad_in, dw, dd)


def li_forward(p: Prepared, n_out: int, g: PreciseGrid) -> Tensor:
    """Voltage trace [batch, n_steps, n_out] of a precise leaky-integrator readout."""
    dev, dtype, cfg = p.w.device, p.w.dtype, launch_config()
    batch = _batch(p)
    v = torch.empty(batch, g.n_steps, n_out, dtype=dtype, device=dev)
    if batch == 0:
        return v
    threads = _threads(n_out, cfg)
    size = p.ring_len * n_out
    blocks = _blocks(batch, 3 * size * p.w.element_size(), cfg)
    acc = torch.zeros(blocks * 3 * size, dtype=dtype, device=dev)
    with _launching(dev) as stream:
        kern.li_forward[blocks, threads, stream](
            *p.sources(), *p.synapses(p.w * p.gs, p.w * p.gm, p.m, p.r), n_out, g.n_steps,
            p.ring_len, _arr(_consts(g, dev)), _arr(v.view(-1)), _arr(acc),
        )  # fmt: skip
    return v


def li_backward(p: Prepared, n_out: int, grad_v: Tensor, g: PreciseGrid
                ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Adjoint of the precise LI readout; returns as ``lif_backward``."""
    _check_tensors(p.w, grad_v)
    expected = (_batch(p), g.n_steps, n_out)
    if tuple(grad_v.shape) != expected:
        raise ValueError(f"grad_v must be {list(expected)}, got {list(grad_v.shape)}")
    dev, dtype, cfg = p.w.device, p.w.dtype, launch_config()
    threads = _threads(n_out, cfg)
    grad_in, dw, dd, blocks, slots, shared = _backward_buffers(p, n_out, threads, 0)
    rec = torch.empty(blocks * 4 * p.ring_len * n_out, dtype=dtype, device=dev)
    if blocks:
        with _launching(dev) as stream:
            kern.li_backward[blocks, threads, stream, shared](
                *p.sources(), _arr(grad_v.to(dtype).reshape(-1)),
                *p.synapses(p.w, p.gs, p.gm, p.m, p.r), n_out, g.n_steps, p.ring_len,
                _arr(_consts(g, dev)), cfg.group, slots, _arr(grad_in), _arr(dw), _arr(dd),
                _arr(rec),
            )  # fmt: skip
    return _gradients(p, grad_in, dw, dd)


def _backward_buffers(p: Prepared, n_out: int, threads: int, index_bytes: int) -> tuple:
    """(grad_in [n_sources] zeros, per-block partials dw, dd [blocks, n_in * n_out] zeros,
    blocks, block-sum slots, shared bytes); ``index_bytes`` per ring entry besides the four
    record values (the earliest spike's index of a LIF layer)."""
    cfg, item = launch_config(), p.w.element_size()
    slots, shared = _reduction_layout(threads, item, cfg, 1)
    scratch = p.ring_len * n_out * (4 * item + index_bytes) + 2 * p.w.numel() * item
    blocks = _blocks(_batch(p), scratch, cfg)
    grad_in = torch.zeros(p.src[0].numel(), dtype=p.w.dtype, device=p.w.device)
    dw = torch.zeros(blocks, p.w.numel(), dtype=p.w.dtype, device=p.w.device)
    return grad_in, dw, torch.zeros_like(dw), blocks, slots, shared


def _gradients(p: Prepared, grad_in: Tensor, dw: Tensor, dd: Tensor) -> tuple[Tensor, Tensor,
                                                                             Tensor]:  # fmt: skip
    """Block partial sums -> (grad_in, dw, dd), dw and dd [n_in, n_out]."""
    if dw.shape[0] == 0:
        return grad_in, torch.zeros_like(p.w), torch.zeros_like(p.w)
    return grad_in, dw.sum(0).view_as(p.w), dd.sum(0).view_as(p.w)

"""Host side of the CUDA time-stepped backend: torch tensors in, torch tensors out.

Every function has the signature of its twin in ``grid_cpu`` and checks its arguments and sizes
its output with the same shared host layer (``kernels.host``); ``kernels.grid_backend`` picks
this module for CUDA tensors.  Tensors reach the kernels without copies through
``__cuda_array_interface__``, and kernels run on torch's current stream of the tensors' device,
so they order correctly with the surrounding torch work and with torch's caching allocator.

Under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests on machines without
a GPU) the same kernels run as Python threads on CPU tensors.

Memory per launch: every block owns a ring buffer of ``(max_delay + 1) x n_out`` values
(doubled in backward for the two adjoint values) and, in backward, one partial weight- and
delay-gradient matrix per projection.  The grid has one block per sample, capped so that this
scratch fits ``LaunchConfig.scratch_bytes``; blocks then take several samples in turn.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numba import cuda
from torch import Tensor

from ._grid_math import GridConstants
from .host import (
    Capacity,
    adaptation_jumps,
    check_grid_layout,
    check_spike_gradients,
    check_tau_grad,
    check_voltage_gradient,
    layer_tau_grad,
    run_in_device_slots,
)

if getattr(cuda, "implementation", None) != "NVIDIA":  # pragma: no cover - installation
    raise ImportError("the CUDA backend needs the numba-cuda package (pip install numba-cuda)")

from numba.cuda.core import config as _cuda_config  # noqa: E402  (numba-cuda's own settings)

from . import cuda as kern  # noqa: E402  (after the numba-cuda check)

__all__ = [
    "LaunchConfig",
    "launch_config",
    "set_launch_config",
    "lif_forward",
    "lif_backward",
    "li_forward",
    "li_backward",
]

#: numba.cuda runs as its simulator (NUMBA_ENABLE_CUDASIM=1 when it was imported).
SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)


@dataclass(frozen=True)
class LaunchConfig:
    """How kernels are launched.

    Attributes:
        max_threads: threads per block at most (a block gets ``n_out`` rounded up to ``group``,
            capped here; beyond that each thread owns several neurons).
        group: threads whose partial sums one thread adds in block sums (a warp on a GPU).
        scratch_bytes: budget for the per-block global buffers of one launch (rings, gradient
            partials); it caps the number of blocks.
        shared_bytes: dynamic shared memory per block for the block sums.
        max_blocks: a further cap on the grid (None: batch size).
    """

    max_threads: int = 512
    group: int = 32
    scratch_bytes: int = 512 << 20
    shared_bytes: int = 32 << 10
    max_blocks: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_threads <= 1024:
            raise ValueError(f"max_threads must be in [1, 1024], got {self.max_threads}")
        if not 1 <= self.group <= 32:
            raise ValueError(f"group must be in [1, 32], got {self.group}")
        if self.scratch_bytes <= 0 or self.shared_bytes <= 0:
            raise ValueError("scratch_bytes and shared_bytes must be positive")
        if self.max_blocks is not None and self.max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {self.max_blocks}")


_config = LaunchConfig()


def launch_config() -> LaunchConfig:
    """The launch settings in use."""
    return _config


def set_launch_config(config: LaunchConfig) -> LaunchConfig:
    """Use ``config`` for the following launches; returns the previous settings."""
    global _config
    if not isinstance(config, LaunchConfig):
        raise TypeError(f"expected a LaunchConfig, got {type(config).__name__}")
    previous, _config = _config, config
    return previous


# ----------------------------------------------------------------------------- plumbing
def _check_tensors(*tensors: Tensor) -> torch.device:
    """The device of the tensors; clear errors where the backend cannot take them."""
    if not SIMULATOR and not cuda.is_available():
        raise RuntimeError(
            f"numba-cuda finds no usable CUDA driver or GPU ({cuda.cuda_error()}); "
            "install numba-cuda for the driver's CUDA version: pip install 'numba-cuda[cu12]'"
        )
    device = tensors[0].device
    for t in tensors:
        if t.device != device:
            raise ValueError(f"tensors of one layer call are on {device} and {t.device}")
    expected = "cpu" if SIMULATOR else "cuda"
    if device.type != expected:
        raise ValueError(
            f"the CUDA backend needs {expected.upper()} tensors"
            + (" under numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1)" if SIMULATOR else "")
            + f", got tensors on {device}"
        )
    return device


def _arr(t: Tensor):
    """A zero-copy kernel argument: a device view of a contiguous CUDA tensor (a numpy view of
    a CPU tensor under the simulator)."""
    t = t.detach().contiguous()
    return t.numpy() if SIMULATOR else cuda.as_cuda_array(t, sync=False)


@contextlib.contextmanager
def _launching(device: torch.device) -> Iterator[object]:
    """Select ``device`` for numba and yield torch's current stream on it (0 in the simulator).

    Numba's warning that a small grid under-uses the GPU is silenced: small batches are
    legitimate, and the grid is as large as the batch allows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        if SIMULATOR:
            yield 0
            return
        index = device.index if device.index is not None else torch.cuda.current_device()
        with cuda.gpus[index]:
            yield cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)


def _threads(n_out: int, cfg: LaunchConfig) -> int:
    threads = min(cfg.max_threads, cfg.group * math.ceil(n_out / cfg.group))
    per_thread = math.ceil(n_out / threads)
    if per_thread > kern.MAX_PER_THREAD or n_out > 32 * kern.MAX_WORDS:
        raise ValueError(
            f"the CUDA backend supports at most "
            f"{min(kern.MAX_PER_THREAD * cfg.max_threads, 32 * kern.MAX_WORDS)} neurons per "
            f"layer with max_threads={cfg.max_threads}, got {n_out}"
        )
    return threads


def _blocks(batch: int, scratch_per_block: int, cfg: LaunchConfig) -> int:
    blocks = min(batch, max(1, cfg.scratch_bytes // max(scratch_per_block, 1)))
    return blocks if cfg.max_blocks is None else min(blocks, cfg.max_blocks)


def _ring_len(*delay_steps: Tensor) -> int:
    """max_delay + 1 over the delay matrices (int32 steps); checks that none is negative."""
    extremes = [x for d in delay_steps if d.numel() for x in torch.aminmax(d)]
    if not extremes:
        return 1
    lows, highs = torch.stack(extremes).view(-1, 2).t().tolist()  # one device sync
    if min(lows) < 0:
        raise ValueError(f"delays must be >= 0 steps, found {min(lows)}")
    return max(highs) + 1


@functools.lru_cache(maxsize=64)
def _packed(consts: GridConstants, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``consts.packed`` on the device, copied there once per (constants, dtype, device)."""
    return torch.tensor(consts.packed(np.float64).tolist(), dtype=dtype).to(device)


def _reduction_layout(threads: int, item: int, cfg: LaunchConfig, n_regions: int):
    """(slots per region, shared bytes) of the block sums: each slot takes ``threads`` partials
    plus one pad and one sum per group."""
    n_groups = math.ceil(threads / cfg.group)
    slot_bytes = (threads + 2 * n_groups) * item
    slots = max(1, min(64, cfg.shared_bytes // (slot_bytes * n_regions)))
    return slots, slots * n_regions * slot_bytes


# ----------------------------------------------------------------------------- LIF
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
    iref float: with a refractory period the drive (I, or I - A with adaptation) with which V
    leaves 0 at the end of the period after each spike, NaN where it does not end before the
    last step; empty without one), as ``grid_cpu.lif_forward``.

    ``w_t``/``d_t`` are [n_in, n_out] (weights, delays in steps), ``w_rec_t``/``d_rec_t``
    [n_out, n_out] or empty.  ``capacity`` is a guess of the spikes per sample (a
    ``host.SpikeCapacity`` is updated); samples that emit more are simulated again with
    exactly enough room.  ``adaptation``: the jump b [n_out] (V units) of each neuron's
    adaptation current at its spikes, given exactly when ``consts`` has ``tau_adapt``.
    """
    dev = _check_tensors(w_t, d_t, w_rec_t, d_rec_t, in_steps, in_units, in_offsets,
                         *([] if adaptation is None else [adaptation]))  # fmt: skip
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t, w_rec_t, d_rec_t)
    b = adaptation_jumps(adaptation, consts, w_t)
    cfg, dtype = _config, w_t.dtype
    n_out = w_t.shape[1]
    batch = in_offsets.numel() - 1
    with_iref = consts.ref_steps > 0
    no_iref = torch.zeros(0, dtype=dtype, device=dev)
    if batch == 0:  # no launch without a block
        empty = torch.zeros(0, dtype=torch.int32, device=dev)
        offsets = torch.zeros(1, dtype=torch.int64, device=dev)
        return empty, empty.clone(), offsets, torch.zeros(0, dtype=dtype, device=dev), no_iref
    ring_len = _ring_len(d_t, d_rec_t)
    threads = _threads(n_out, cfg)
    item = w_t.element_size()
    args = (
        _arr(in_steps), _arr(in_units), _arr(in_offsets), _arr(w_t.reshape(-1)),
        _arr(d_t.reshape(-1)), _arr(w_rec_t.reshape(-1)), _arr(d_rec_t.reshape(-1)), _arr(b),
        n_out, n_steps, ring_len, _arr(_packed(consts, dtype, dev)),
    )  # fmt: skip

    def run(sample_ids: Tensor, cap: int) -> tuple[list[Tensor], Tensor]:
        n_run = sample_ids.numel()
        steps = torch.empty(n_run, cap, dtype=torch.int32, device=dev)
        units = torch.empty(n_run, cap, dtype=torch.int32, device=dev)
        vdot = torch.empty(n_run, cap, dtype=dtype, device=dev)
        iref = torch.empty(n_run, cap if with_iref else 0, dtype=dtype, device=dev)
        counts = torch.empty(n_run, dtype=torch.int64, device=dev)
        blocks = _blocks(n_run, ring_len * n_out * item, cfg)
        ring = torch.zeros(blocks * ring_len * n_out, dtype=dtype, device=dev)
        with _launching(dev) as stream:
            kern.lif_forward[blocks, threads, stream](
                *args, _arr(sample_ids), cap, _arr(steps.view(-1)), _arr(units.view(-1)),
                _arr(vdot.view(-1)), _arr(iref.view(-1)), _arr(counts), _arr(ring),
            )  # fmt: skip
        return ([steps, units, vdot, iref] if with_iref else [steps, units, vdot]), counts

    out, offsets = run_in_device_slots(run, batch, capacity, dev)
    return out[0], out[1], offsets, out[2], out[3] if with_iref else no_iref


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
    """EventProp backward of a LIF layer (``out_iref`` and ``adaptation`` as returned by and
    given to ``lif_forward``).

    Returns (dL/d input times, dL/dw_t, sum of (lambda_V - lambda_I) at arrivals per synapse
    [n_in, n_out], the same two for the recurrent matrices, dL/db [n_out], empty without
    adaptation, and, with ``tau_grad`` (not with adaptation), [dL/dtau_mem, dL/dtau_syn] of
    the layer, else empty).  The delay gradient is the third times the weight (done by the
    caller).
    """
    dev = _check_tensors(
        w_t, d_t, w_rec_t, d_rec_t, in_steps, in_units, in_offsets, out_steps, out_units,
        out_offsets, out_vdot, out_iref, grad_out, kick,
        *([] if adaptation is None else [adaptation]),
    )  # fmt: skip
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t, w_rec_t, d_rec_t)
    b = adaptation_jumps(adaptation, consts, w_t)
    check_tau_grad(tau_grad, b.numel())
    cfg, dtype = _config, w_t.dtype
    n_in, n_out = w_t.shape
    n_rec = w_rec_t.numel()
    n_tau = 2 * n_out if tau_grad else 0
    batch = in_offsets.numel() - 1
    check_spike_gradients(out_steps, out_units, out_offsets, out_vdot, grad_out, kick, n_out,
                          batch)  # fmt: skip
    grad_in = torch.zeros(in_steps.numel(), dtype=dtype, device=dev)
    rec_shape = tuple(w_rec_t.shape)
    n_b = b.numel()
    if batch == 0:
        zeros = torch.zeros_like(w_t)
        return (
            grad_in,
            zeros,
            zeros.clone(),
            w_rec_t.new_zeros(rec_shape),
            w_rec_t.new_zeros(rec_shape),
            torch.zeros_like(b),
            w_t.new_zeros(2 if tau_grad else 0),
        )
    ring_len = _ring_len(d_t, d_rec_t)
    threads = _threads(n_out, cfg)
    item = w_t.element_size()
    slots, shared = _reduction_layout(threads, item, cfg, 2 if n_rec else 1)
    scratch = ((2 if tau_grad else 1) * 2 * ring_len * n_out + 2 * n_in * n_out + 2 * n_rec
               + n_b + n_tau) * item  # fmt: skip
    blocks = _blocks(batch, scratch, cfg)
    dw = torch.zeros(blocks, n_in * n_out, dtype=dtype, device=dev)
    dd = torch.zeros_like(dw)
    dw_rec = torch.zeros(blocks, n_rec, dtype=dtype, device=dev)
    dd_rec = torch.zeros_like(dw_rec)
    db = torch.zeros(blocks, n_b, dtype=dtype, device=dev)
    lam = torch.empty(blocks * 2 * ring_len * n_out, dtype=dtype, device=dev)
    dtau, aux = _tau_buffers(blocks, n_tau, lam)
    with _launching(dev) as stream:
        kern.lif_backward[blocks, threads, stream, shared](
            _arr(in_steps), _arr(in_units), _arr(in_offsets), _arr(out_steps), _arr(out_units),
            _arr(out_offsets), _arr(out_vdot), _arr(out_iref.to(dtype)), _arr(grad_out.to(dtype)),
            _arr(kick.to(dtype)),
            _arr(w_t.reshape(-1)), _arr(d_t.reshape(-1)), _arr(w_rec_t.reshape(-1)),
            _arr(d_rec_t.reshape(-1)), _arr(b), n_out, n_steps, ring_len,
            _arr(_packed(consts, dtype, dev)), cfg.group, slots, slots if n_rec else 0,
            _arr(grad_in), _arr(dw), _arr(dd), _arr(dw_rec), _arr(dd_rec), _arr(db), _arr(lam),
            _arr(dtau), _arr(aux),
        )  # fmt: skip
    return (
        grad_in,
        dw.sum(0).view(n_in, n_out),
        dd.sum(0).view(n_in, n_out),
        dw_rec.sum(0).view(rec_shape),
        dd_rec.sum(0).view(rec_shape),
        db.sum(0),
        layer_tau_grad(dtau),
    )


def _tau_buffers(blocks: int, n_tau: int, lam: Tensor) -> tuple[Tensor, Tensor]:
    """(per-block dL/dtau per neuron [blocks, n_tau], zeros; the ring of (m_I, M), the room of
    ``lam``), both empty where ``n_tau`` is 0 (no time-constant gradients)."""
    dtau = lam.new_zeros(blocks, n_tau)
    return dtau, torch.empty_like(lam) if n_tau else lam.new_empty(0)


# ----------------------------------------------------------------------------- LI readout
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
    dev = _check_tensors(w_t, d_t, in_steps, in_units, in_offsets)
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t)
    cfg, dtype = _config, w_t.dtype
    n_out = w_t.shape[1]
    batch = in_offsets.numel() - 1
    v = torch.empty(batch, n_steps, n_out, dtype=dtype, device=dev)
    if batch == 0:
        return v
    ring_len = _ring_len(d_t)
    threads = _threads(n_out, cfg)
    blocks = _blocks(batch, ring_len * n_out * w_t.element_size(), cfg)
    ring = torch.zeros(blocks * ring_len * n_out, dtype=dtype, device=dev)
    with _launching(dev) as stream:
        kern.li_forward[blocks, threads, stream](
            _arr(in_steps), _arr(in_units), _arr(in_offsets), _arr(w_t.reshape(-1)),
            _arr(d_t.reshape(-1)), n_out, n_steps, ring_len, _arr(_packed(consts, dtype, dev)),
            _arr(v.view(-1)), _arr(ring),
        )  # fmt: skip
    return v


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
    dev = _check_tensors(w_t, d_t, in_steps, in_units, in_offsets, grad_v)
    check_grid_layout(in_steps, in_units, in_offsets, w_t, d_t)
    cfg, dtype = _config, w_t.dtype
    n_in, n_out = w_t.shape
    batch = in_offsets.numel() - 1
    check_voltage_gradient(grad_v, batch, n_steps, n_out)
    grad_in = torch.zeros(in_steps.numel(), dtype=dtype, device=dev)
    if batch == 0:
        return (grad_in, torch.zeros_like(w_t), torch.zeros_like(w_t),
                w_t.new_zeros(2 if tau_grad else 0))  # fmt: skip
    ring_len = _ring_len(d_t)
    threads = _threads(n_out, cfg)
    item = w_t.element_size()
    slots, shared = _reduction_layout(threads, item, cfg, 1)
    n_tau = 2 * n_out if tau_grad else 0
    blocks = _blocks(batch, ((2 if tau_grad else 1) * 2 * ring_len * n_out + 2 * n_in * n_out
                             + n_tau) * item, cfg)  # fmt: skip
    dw = torch.zeros(blocks, n_in * n_out, dtype=dtype, device=dev)
    dd = torch.zeros_like(dw)
    lam = torch.empty(blocks * 2 * ring_len * n_out, dtype=dtype, device=dev)
    dtau, aux = _tau_buffers(blocks, n_tau, lam)
    with _launching(dev) as stream:
        kern.li_backward[blocks, threads, stream, shared](
            _arr(in_steps), _arr(in_units), _arr(in_offsets), _arr(grad_v.to(dtype).reshape(-1)),
            _arr(w_t.reshape(-1)), _arr(d_t.reshape(-1)), n_out, n_steps, ring_len,
            _arr(_packed(consts, dtype, dev)), cfg.group, slots, _arr(grad_in), _arr(dw), _arr(dd),
            _arr(lam), _arr(dtau), _arr(aux),
        )  # fmt: skip
    return (grad_in, dw.sum(0).view(n_in, n_out), dd.sum(0).view(n_in, n_out),
            layer_tau_grad(dtau))  # fmt: skip

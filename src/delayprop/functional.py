"""Layers as differentiable maps of spike times (docs/architecture.md), time-stepped engine.

``lif`` maps input spikes to output spikes; ``li_readout`` maps input spikes to a voltage trace.
Both are ``torch.autograd.Function``s whose backward is the EventProp adjoint:

    forward(input spike times, W, D [, W_rec, D_rec]) -> output spike times | voltage trace
    backward(dL/d outputs) -> dL/d input spike times, dL/dW, dL/dD [, dL/dW_rec, dL/dD_rec]

Weights ``W`` are [n_out, n_in]; delays ``D`` [n_out, n_in] in ms (rounded to the grid when an
arrival is placed; a delay that rounds outside [0, max_delay_steps] steps is an error, see
``validation.check_delays``; the gradient is taken with respect to the continuous delay).
The gradient of a delay is w (lambda_V - lambda_I) summed over the arrivals of that synapse; of
an input spike time, the same summed over that spike's targets.

``lif`` takes an optional adaptation current (``GridSettings.tau_adapt``, ``adaptation`` = the
jump b of each neuron, kernels/cpu.py); dL/db is then returned as well.  Both take optional
``time_constants``, a tensor [2] (tau_mem, tau_syn ms) that replaces the settings' and receives
dL/dtau_mem, dL/dtau_syn (``learn_tau``; not in the precise mode, not with adaptation).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from torch import Tensor

from ._util import n_steps_for
from .kernels import grid_backend, grid_constants, precise_backend
from .kernels._grid_math import GridConstants, precise_constants
from .kernels.host import SpikeCapacity
from .kernels.precise_cpu import MAX_SPIKES_PER_STEP
from .kernels.precise_host import PreciseGrid
from .regularization import SpikeCountRegularizer
from .spikes import Spikes
from .validation import (
    check_adaptation,
    check_delays,
    check_event_arrays,
    check_grid_size,
    check_limit,
    check_nonnegative_finite,
    check_parameter,
    check_positive_finite,
)

__all__ = ["GridSettings", "lif", "li_readout", "n_steps_for", "check_input", "check_events"]


@dataclass(frozen=True)
class GridSettings:
    """Non-tensor settings of one time-stepped layer call (ms).

    ``capacity``: output spikes per sample the call makes room for (only affects speed); a
    ``kernels.host.SpikeCapacity`` is updated by each call (``LIF`` keeps one per layer).
    ``tau_adapt``: time constant (ms) of the neurons' adaptation current
    (tau_adapt dA/dt = -A, subtracted from I in V's equation, A jumps by b_j at a spike of
    neuron j; ``lif``'s ``adaptation`` gives b); None: no adaptation."""

    tau_mem: float
    tau_syn: float
    threshold: float
    dt: float
    n_steps: int
    max_delay_steps: int
    rec_max_delay_steps: int = 0
    capacity: int | SpikeCapacity = 1024
    regularizer: SpikeCountRegularizer | None = None
    precise: bool = False
    refractory: float = 0.0
    max_spikes: int | None = None
    tau_adapt: float | None = None

    @property
    def constants(self) -> GridConstants:
        """The kernels' constants; ``refractory`` (ms) in whole steps, ``max_spikes`` (None: no
        limit) and ``tau_adapt`` (ms; None: no adaptation) as in
        ``kernels._grid_math.grid_constants``."""
        return grid_constants(self.dt, self.tau_mem, self.tau_syn, self.threshold,
                              self.refractory, self.max_spikes, self.tau_adapt)  # fmt: skip

    def precise_grid(self, dtype: torch.dtype) -> PreciseGrid:
        """Grid and packed constants of the precise kernels, in the float type ``dtype``."""
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        consts = precise_constants(self.dt, self.tau_mem, self.tau_syn, self.threshold, np_dtype)
        return PreciseGrid(self.dt, self.tau_mem, self.tau_syn, self.n_steps, consts)


def _steps(times: Tensor, dt: float) -> Tensor:
    return torch.round(times.detach() / dt).to(torch.int32)


def _delay_steps(delay: Tensor | None, like: Tensor, dt: float) -> Tensor:
    """Delays in ms [n_out, n_in] -> kernel layout [n_in, n_out] int32 steps."""
    if delay is None:
        return torch.zeros(like.shape[1], like.shape[0], dtype=torch.int32, device=like.device)
    steps = torch.round(delay.detach() / dt)  # in [0, max_steps]: _check_layer
    return steps.to(torch.int32).t().contiguous()


def _regularizer_kick(s: GridSettings, out_units: Tensor, batch: int, n_out: int,
                      like: Tensor) -> Tensor:  # fmt: skip
    """What the spike-count regulariser subtracts from lambda_V at each spike of neuron j
    [n_out], zeros without a regulariser; dtype and device of ``like``."""
    if s.regularizer is None:
        return torch.zeros(n_out, dtype=like.dtype, device=like.device)
    counts = torch.bincount(out_units.long(), minlength=n_out)
    return s.regularizer.kick(counts, batch).to(like.dtype)


def _delay_grad(dd_t: Tensor, w_t: Tensor) -> Tensor:
    return (dd_t * w_t).t().to(w_t.dtype)


class _LIFGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: GridSettings, in_units, in_offsets, in_times, w, d, w_rec, d_rec, b,
                taus):  # fmt: skip
        backend = grid_backend(w.device)
        consts = s.constants
        in_steps = _steps(in_times, s.dt)
        w_t = w.detach().t().contiguous()
        d_t = _delay_steps(d, w, s.dt)
        if w_rec is None:
            w_rec_t = w.new_zeros(0)
            d_rec_t = torch.zeros(0, dtype=torch.int32, device=w.device)
        else:
            w_rec_t = w_rec.detach().t().contiguous()
            d_rec_t = _delay_steps(d_rec, w_rec, s.dt)
        out_steps, out_units, out_offsets, out_vdot, out_iref = backend.lif_forward(
            in_steps, in_units, in_offsets, w_t, d_t, w_rec_t, d_rec_t, s.n_steps, consts,
            s.capacity, b,
        )  # fmt: skip
        out_times = out_steps.to(in_times.dtype) * s.dt
        ctx.settings = s
        ctx.has_rec = w_rec is not None
        ctx.save_for_backward(
            in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot,
            out_iref, w_t, d_t, w_rec_t, d_rec_t, b,
        )  # fmt: skip
        ctx.mark_non_differentiable(out_units, out_offsets)
        return out_times, out_units, out_offsets

    @staticmethod
    def backward(ctx, grad_times, _grad_units, _grad_offsets):
        s: GridSettings = ctx.settings
        (in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot,
         out_iref, w_t, d_t, w_rec_t, d_rec_t, b) = ctx.saved_tensors  # fmt: skip
        n_out = w_t.shape[1]
        if grad_times is None:
            grad_times = torch.zeros_like(out_vdot)
        kick = _regularizer_kick(s, out_units, in_offsets.numel() - 1, n_out, w_t)
        need = ctx.needs_input_grad
        grad_in, dw_t, dd_t, dw_rec_t, dd_rec_t, db, dtau = grid_backend(w_t.device).lif_backward(
            in_steps, in_units, in_offsets, out_steps, out_units, out_offsets, out_vdot,
            out_iref, grad_times.to(w_t.dtype).contiguous(), kick, w_t, d_t, w_rec_t, d_rec_t,
            s.n_steps, s.constants, b, need[9],
        )  # fmt: skip
        grad_w = dw_t.t() if need[4] else None
        grad_d = _delay_grad(dd_t, w_t) if need[5] else None
        grad_w_rec = dw_rec_t.t() if ctx.has_rec and need[6] else None
        grad_d_rec = _delay_grad(dd_rec_t, w_rec_t) if ctx.has_rec and need[7] else None
        grad_in = grad_in if need[3] else None
        grad_b = db if need[8] else None
        grad_taus = dtau if need[9] else None
        return (None, None, None, grad_in, grad_w, grad_d, grad_w_rec, grad_d_rec, grad_b,
                grad_taus)  # fmt: skip


class _LIGrid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: GridSettings, in_units, in_offsets, in_times, w, d, taus):
        backend = grid_backend(w.device)
        in_steps = _steps(in_times, s.dt)
        w_t = w.detach().t().contiguous()
        d_t = _delay_steps(d, w, s.dt)
        v = backend.li_forward(in_steps, in_units, in_offsets, w_t, d_t, s.n_steps, s.constants)
        ctx.settings = s
        ctx.save_for_backward(in_steps, in_units, in_offsets, w_t, d_t)
        return v

    @staticmethod
    def backward(ctx, grad_v):
        s: GridSettings = ctx.settings
        in_steps, in_units, in_offsets, w_t, d_t = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_in, dw_t, dd_t, dtau = grid_backend(w_t.device).li_backward(
            in_steps, in_units, in_offsets, grad_v.contiguous(), w_t, d_t, s.n_steps,
            s.constants, need[6],
        )  # fmt: skip
        return (
            None,
            None,
            None,
            grad_in if need[3] else None,
            dw_t.t() if need[4] else None,
            _delay_grad(dd_t, w_t) if need[5] else None,
            dtau if need[6] else None,
        )


def _zero_delays(d: Tensor | None, w: Tensor) -> Tensor:
    return torch.zeros_like(w) if d is None else d


class _LIFPrecise(torch.autograd.Function):
    """Precise mode: arrivals and spikes at their exact times on the grid (kernels.precise_cpu,
    kernels.precise_cuda; the host module by device: ``kernels.precise_backend``).

    The kernels' layouts of the call (``Prepared``, derived from the saved tensors) are made
    once and kept for the backward pass; the saved tensors still carry torch's version check
    against in-place edits between forward and backward."""

    @staticmethod
    def forward(ctx, s: GridSettings, in_units, in_offsets, in_times, w, d):
        host = precise_backend(w.device)
        g = s.precise_grid(w.dtype)
        d = _zero_delays(d, w)
        prep = host.prepare(in_times, in_units, in_offsets, w, d, g)
        out_steps, out_units, out_offsets, out_s, out_vdot, dropped = host.lif_forward(
            prep, w.shape[0], g, s.capacity
        )
        if dropped:
            warnings.warn(
                f"precise LIF layer: {dropped} threshold crossings dropped (more than "
                f"{MAX_SPIKES_PER_STEP} spikes of one neuron within one step of {s.dt} ms)",
                RuntimeWarning, stacklevel=4,
            )  # fmt: skip
        out_times = (out_steps.to(torch.float64) * s.dt + out_s.to(torch.float64)).to(w.dtype)
        ctx.settings, ctx.grid, ctx.prepared, ctx.host = s, g, prep, host
        ctx.save_for_backward(in_times, in_offsets, out_steps, out_units, out_offsets, out_s,
                              out_vdot, w, d)  # fmt: skip
        ctx.mark_non_differentiable(out_units, out_offsets)
        return out_times, out_units, out_offsets

    @staticmethod
    def backward(ctx, grad_times, _grad_units, _grad_offsets):
        s: GridSettings = ctx.settings
        (in_times, in_offsets, out_steps, out_units, out_offsets, out_s, out_vdot, w,
         _d) = ctx.saved_tensors  # fmt: skip
        if grad_times is None:
            grad_times = torch.zeros_like(out_vdot)
        kick = _regularizer_kick(s, out_units, in_offsets.numel() - 1, w.shape[0], w)
        grad_in, dw_t, dd_t = ctx.host.lif_backward(
            ctx.prepared, w.shape[0], out_steps, out_units, out_offsets, out_s, out_vdot,
            grad_times, kick, ctx.grid,
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (None, None, None, grad_in.to(in_times.dtype) if need[3] else None,
                dw_t.t() if need[4] else None,
                _delay_grad(dd_t, w.detach().t()) if need[5] else None)


class _LIPrecise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: GridSettings, in_units, in_offsets, in_times, w, d):
        host = precise_backend(w.device)
        g = s.precise_grid(w.dtype)
        prep = host.prepare(in_times, in_units, in_offsets, w, _zero_delays(d, w), g)
        ctx.grid, ctx.prepared, ctx.host = g, prep, host
        ctx.save_for_backward(in_times, w)
        return host.li_forward(prep, w.shape[0], g)

    @staticmethod
    def backward(ctx, grad_v):
        in_times, w = ctx.saved_tensors
        grad_in, dw_t, dd_t = ctx.host.li_backward(ctx.prepared, w.shape[0], grad_v, ctx.grid)
        need = ctx.needs_input_grad
        return (None, None, None, grad_in.to(in_times.dtype) if need[3] else None,
                dw_t.t() if need[4] else None,
                _delay_grad(dd_t, w.detach().t()) if need[5] else None)


def _check_precise(rec_weight: Tensor | None, s: GridSettings) -> None:
    if s.tau_adapt is not None:
        raise ValueError("precise=True has no adaptation current (tau_adapt); use "
                         "precise=False or the exact engine (dt=None)")  # fmt: skip
    if rec_weight is not None:
        raise ValueError("precise=True does not support recurrent connections yet; use "
                         "precise=False or the exact engine (dt=None)")  # fmt: skip
    if s.refractory != 0.0 or s.max_spikes is not None:
        raise ValueError("precise=True has no refractory period or spike limit yet; use "
                         "precise=False or the exact engine (dt=None)")  # fmt: skip


def _with_time_constants(settings: GridSettings, time_constants: Tensor | None,
                         adaptation: Tensor | None, weight: Tensor,
                         name: str) -> GridSettings:  # fmt: skip
    """The settings with tau_mem, tau_syn taken from ``time_constants`` (a tensor [2]: tau_mem,
    tau_syn in ms, which receives dL/dtau_mem, dL/dtau_syn where it requires grad); the
    gradient needs precise=False and no adaptation."""
    if time_constants is None:
        return settings
    if time_constants.shape != (2,) or time_constants.device != weight.device:
        raise ValueError(f"{name}: time_constants must be a tensor [2] (tau_mem, tau_syn ms) on "
                         f"the weights' device {weight.device}, got shape "
                         f"{tuple(time_constants.shape)} on {time_constants.device}")  # fmt: skip
    if time_constants.requires_grad:
        if settings.precise:
            raise ValueError(f"{name}: gradients of the time constants (learn_tau) need "
                             "precise=False (or the exact engine, dt=None)")  # fmt: skip
        if adaptation is not None:
            raise ValueError(f"{name}: gradients of the time constants (learn_tau) are not "
                             "derived for adaptive neurons; pass time_constants without "
                             "requires_grad or no adaptation")  # fmt: skip
    tm, ts = (float(v) for v in time_constants.detach().tolist())
    return dataclasses.replace(settings, tau_mem=tm, tau_syn=ts)


def check_input(spikes: Spikes, weight: Tensor, name: str) -> None:
    """Raise a clear error unless ``spikes`` is a Spikes batch that fits ``weight``."""
    if not isinstance(spikes, Spikes):
        raise TypeError(f"{name} expects a Spikes batch, got {type(spikes).__name__}")
    if spikes.n_units != weight.shape[1]:
        raise ValueError(
            f"{name}: input has {spikes.n_units} units but the weight matrix expects "
            f"{weight.shape[1]} (weight shape {tuple(weight.shape)} is [n_out, n_in])"
        )
    if spikes.device != weight.device:
        raise ValueError(f"{name}: spikes on {spikes.device}, weights on {weight.device}")
    check_events(spikes, name)


def check_events(spikes: Spikes, name: str) -> None:
    """Raise a clear error unless the event arrays of ``spikes`` are safe to hand to a kernel.

    The kernels index weight rows with the unit of every event and read samples through the
    offsets without bound checks (bound checks in the inner loops cost speed); a ``Spikes``
    built with the plain constructor is therefore checked here: units in [0, n_units), offsets
    from 0 to the number of events and non-decreasing, times finite and >= 0, a finite
    duration > 0 and an integer n_units.  O(events).
    """
    times, units, offsets = spikes.times, spikes.units, spikes.offsets
    d = spikes.duration
    if isinstance(d, bool) or not isinstance(d, Real) or not (0 < d < math.inf):
        raise ValueError(f"{name}: the input's duration must be a finite number of ms > 0, "
                         f"got {d!r}")  # fmt: skip
    if isinstance(spikes.n_units, bool) or not isinstance(spikes.n_units, Integral):
        raise ValueError(f"{name}: the input's n_units must be an int, got {spikes.n_units!r}")
    try:
        check_event_arrays(name, times, units, offsets)
    except ValueError as err:
        raise ValueError(f"{err} (build Spikes with a from_* constructor)") from None
    if not times.is_floating_point():
        raise ValueError(f"{name}: spike times must be a float tensor, got {times.dtype}")
    n = times.numel()
    if int(offsets[0]) != 0 or int(offsets[-1]) != n:
        raise ValueError(
            f"{name}: spike offsets must run from 0 to the number of spikes ({n}), got "
            f"{offsets[:1].tolist()} ... {offsets[-1:].tolist()}"
        )
    if offsets.numel() > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{name}: spike offsets must be non-decreasing")
    if n == 0:
        return
    lo, hi = int(units.min()), int(units.max())
    if lo < 0 or hi >= spikes.n_units:
        raise ValueError(
            f"{name}: spike unit index out of range [0, {spikes.n_units}): min {lo}, max {hi}"
        )
    t = times.detach()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: input spike times contain NaN or infinity")
    if float(t.min()) < 0:
        raise ValueError(f"{name}: input spike times must be >= 0 ms, found {float(t.min())} ms")


def _check_layer(
    spikes: Spikes, weight: Tensor, delays: dict[str, tuple[Tensor | None, int]],
    s: GridSettings, name: str,
) -> None:  # fmt: skip
    """Everything the grid kernels trust: the input events, the constants, the parameters
    (shape, dtype, device, finite), delays within their bound in steps, the grid size."""
    if weight.dim() != 2:
        raise ValueError(f"{name}: weight must be [n_out, n_in], got shape {tuple(weight.shape)}")
    check_input(spikes, weight, name)
    if not isinstance(s, GridSettings):
        raise TypeError(f"{name} expects GridSettings, got {type(s).__name__}")
    check_positive_finite(tau_mem=s.tau_mem, tau_syn=s.tau_syn, dt=s.dt)
    check_parameter("weight", weight, tuple(weight.shape))
    for label, (delay, max_steps) in delays.items():
        n_src = weight.shape[0] if label.startswith("rec") else weight.shape[1]
        check_parameter(label, delay, (weight.shape[0], n_src), like=weight)
        if s.precise:  # delays are not rounded and need no room on the grid: >= 0 (as exact)
            check_delays(label, delay, None)
        else:
            check_delays(label, delay, max_steps * s.dt, dt=s.dt)
    check_grid_size(name, spikes.batch_size, s.n_steps, weight.shape[0])


def lif(
    spikes: Spikes,
    weight: Tensor,
    delay: Tensor | None,
    settings: GridSettings,
    rec_weight: Tensor | None = None,
    rec_delay: Tensor | None = None,
    adaptation: Tensor | None = None,
    time_constants: Tensor | None = None,
) -> Spikes:
    """A layer of LIF neurons on the time grid: input spikes -> output spikes (differentiable).

    Args:
        spikes: input batch (``n_units == n_in``).
        weight: [n_out, n_in].  delay: [n_out, n_in] ms, or None for no delays.
        settings: neuron constants, dt (ms), number of steps, delay bounds in steps.
        rec_weight, rec_delay: [n_out, n_out] recurrent weights and delays (ms), or None.
        adaptation: [n_out], the jump b_j >= 0 (V units) of neuron j's adaptation current at
            each of its spikes (differentiable); required exactly when ``settings.tau_adapt``
            is set, which the precise mode does not support.
        time_constants: None, or a tensor [2] (tau_mem, tau_syn ms, on the weights' device)
            that replaces the settings' and, where it requires grad, receives dL/dtau_mem,
            dL/dtau_syn (not in the precise mode, not with ``adaptation``).
    """
    settings = _with_time_constants(settings, time_constants, adaptation, weight, "lif")
    delays = {"delay": (delay, settings.max_delay_steps),
              "rec_delay": (rec_delay, settings.rec_max_delay_steps)}  # fmt: skip
    _check_layer(spikes, weight, delays, settings, "lif")
    check_positive_finite(threshold=settings.threshold)
    check_nonnegative_finite(refractory=settings.refractory)
    check_limit(max_spikes=settings.max_spikes)
    n_out = weight.shape[0]
    check_parameter("rec_weight", rec_weight, (n_out, n_out), like=weight)
    if rec_weight is None and rec_delay is not None:
        raise ValueError("rec_delay given without rec_weight")
    check_adaptation("lif", adaptation, settings.tau_adapt, weight.shape[0], like=weight)
    times = spikes.times.to(weight.dtype)
    if settings.precise:
        _check_precise(rec_weight, settings)
        out_times, out_units, out_offsets = _LIFPrecise.apply(
            settings, spikes.units, spikes.offsets, times, weight, delay
        )
    else:
        out_times, out_units, out_offsets = _LIFGrid.apply(
            settings, spikes.units, spikes.offsets, times, weight, delay, rec_weight, rec_delay,
            adaptation, time_constants,
        )  # fmt: skip
    return Spikes(out_times, out_units, out_offsets, weight.shape[0], spikes.duration)


def li_readout(
    spikes: Spikes, weight: Tensor, delay: Tensor | None, settings: GridSettings,
    time_constants: Tensor | None = None,
) -> Tensor:
    """Leaky-integrator readout on the time grid: input spikes -> voltage [batch, steps, n_out]
    (V at t = n dt, n = 0 .. n_steps - 1).  ``time_constants`` as for ``lif``."""
    settings = _with_time_constants(settings, time_constants, None, weight, "li_readout")
    _check_layer(spikes, weight, {"delay": (delay, settings.max_delay_steps)}, settings,
                 "li_readout")  # fmt: skip
    times = spikes.times.to(weight.dtype)
    if settings.precise:
        return _LIPrecise.apply(settings, spikes.units, spikes.offsets, times, weight, delay)
    return _LIGrid.apply(settings, spikes.units, spikes.offsets, times, weight, delay,
                         time_constants)  # fmt: skip

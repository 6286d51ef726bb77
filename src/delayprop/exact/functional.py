"""Layers of the exact engine as differentiable maps of spike times (docs/architecture.md).

Same contract as ``delayprop.functional`` (the time-stepped engine):

    forward(input spike times, W, D [, W_rec, D_rec]) -> output spike times | voltages
    backward(dL/d outputs) -> dL/d input times, dL/dW, dL/dD [, dL/dW_rec, dL/dD_rec]

but event-driven in continuous time and float64: the state evolves in closed form between events
(``kernels.lif_flow``), threshold crossings are found by bracketed root finding to machine
precision, and delays are never rounded (any real delay >= 0 ms, also beyond the trial: such
arrivals have no effect).  The backward pass is the EventProp adjoint in continuous time
(``_backward``), or, with ``ExactSettings(backward="timing")``, the independent timing-based
chain rule over spike times of ``delayprop.exact.timing`` (Yamamoto et al. 2022); both give the
same gradients.

Adaptive LIF neurons (``ExactSettings.tau_adapt`` with ``lif(..., adaptation=b)``): an
adaptation current A, ``tau_adapt dA/dt = -A``, enters ``tau_mem dV/dt = -V + I - A`` and jumps
by b_j >= 0 at each spike of neuron j; its flow, the threshold root finder and the adjoint
lambda_A are in ``kernels.lif_flow``, the spike terms in ``kernels.formulas``; b receives its
gradient from the EventProp backward.

Readouts of the LI layer:

* ``li_readout``: voltages [batch, n_samples, n_out] at t = 0, sample_dt, 2 sample_dt, ... (ms),
  the same layout as the time-stepped readout, so every loss of ``delayprop.losses`` applies;
* ``li_peak``: the exact maximum of V over [0, duration] and its time, both differentiable.  At
  a smooth peak (dV/dt = 0) the time derivative follows from the implicit function theorem; when
  the peak sits on an arrival that turns V down (a negative weight) the peak moves with that
  arrival; a peak at t = 0 (V never positive) or at the end of the window has a fixed time.

Non-differentiable points (measure zero, as for any spiking network): an input or arrival at
exactly a sample time or a spike time; simultaneous events are ordered spikes, then readout
samples / refractory ends, then arrivals.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._util import n_steps_for
from ..functional import check_events
from ..kernels import VDOT_FLOOR
from ..kernels.formulas import rate_difference
from ..kernels.host import SpikeCapacity, SpikeLimitExceeded
from ..regularization import SpikeCountRegularizer
from ..spikes import Spikes
from ..validation import (
    check_adaptation,
    check_delays,
    check_grid_size,
    check_parameter,
    check_positive_finite,
)
from . import _host, timing
from ._forward import PEAK_ARRIVAL, PEAK_END, PEAK_SMOOTH

__all__ = ["ExactSettings", "lif", "li_readout", "li_peak", "BACKWARDS", "MIN_MEAN_ISI",
           "default_spike_limit"]  # fmt: skip

#: the backward passes of the exact engine (``ExactSettings.backward``)
BACKWARDS = ("eventprop", "timing")

#: ms; the default spike limit of a LIF layer allows a mean inter-spike interval this short
#: (10 kHz) for every neuron over the whole trial (docs/robustness.md)
MIN_MEAN_ISI = 0.1


def default_spike_limit(duration: float) -> int:
    """Spikes per neuron per trial allowed by default: ``duration / MIN_MEAN_ISI``, at least 16."""
    return max(16, math.ceil(duration / MIN_MEAN_ISI))


@dataclass(frozen=True)
class ExactSettings:
    """Non-tensor settings of one exact layer call (times in ms).

    Args:
        tau_mem, tau_syn: time constants, ms (tau_mem == tau_syn is allowed); the
            ``time_constants`` tensor of ``lif``, ``li_readout``, ``li_peak`` replaces them (also
            per neuron).
        threshold: firing threshold (> 0; reset to 0).  Use ``inf`` for an LI readout.
        duration: trial length; None takes the input's ``Spikes.duration``.
        refractory: V is held at 0 for this long after each spike (I keeps integrating).
        max_spikes: a neuron falls silent after this many spikes (None = no limit, as on
            ``delayprop.LIF``; 1 gives the first-spike neurons of DelGrad-style networks).
        capacity: guess of the spikes per sample (only affects speed); a
            ``kernels.host.SpikeCapacity`` is updated by each call (``LIF`` keeps one).
        spike_limit: most spikes per neuron per trial, on average over the layer's neurons
            (a sample may hold ``spike_limit * n_out``); a sample that needs more ends the
            forward with ``ValueError`` naming the layer, the sample and the limit, instead of
            running without bound.  None: ``default_spike_limit(duration)``.
        regularizer: spike-count regulariser applied in backward, as in the time-stepped engine.
        sample_dt: sampling interval of the LI readout's voltage trace.
        vdot_floor: the slope floor relative to the threshold (dimensionless, as
            ``kernels.VDOT_FLOOR``): tau_mem dV/dt at a spike counts as at least
            ``vdot_min = vdot_floor * threshold`` (V units) in the adjoint jump; only
            near-tangential crossings reach it.
        backward: ``"eventprop"`` (the adjoint of ``_backward``) or ``"timing"`` (the chain
            rule over spike times of ``delayprop.exact.timing``, slower, same gradients).
        tau_adapt: None (no adaptation), or the time constant (ms) of the adaptation current A
            of a LIF layer: ``tau_mem dV/dt = -V + I - A``, ``tau_adapt dA/dt = -A``, and each
            spike of neuron j adds b_j to its A (``lif``'s ``adaptation`` tensor; the
            spike-triggered adaptation of the SE-adLIF neuron of Baronig et al. 2025 without its
            subthreshold coupling).  EventProp backward only.
    """

    tau_mem: float
    tau_syn: float
    threshold: float = 1.0
    duration: float | None = None
    refractory: float = 0.0
    max_spikes: int | None = None
    capacity: int | SpikeCapacity = 64
    spike_limit: int | None = None
    regularizer: SpikeCountRegularizer | None = None
    sample_dt: float | None = None
    vdot_floor: float = VDOT_FLOOR
    backward: str = "eventprop"
    tau_adapt: float | None = None

    def __post_init__(self) -> None:
        if self.backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {BACKWARDS}, got {self.backward!r}")
        check_positive_finite(tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        if self.tau_adapt is not None:
            check_positive_finite(tau_adapt=self.tau_adapt)
        if not self.threshold > 0:  # inf: a readout that never fires
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError(f"duration must be a positive number of ms, got {self.duration}")
        if not (self.refractory >= 0 and math.isfinite(self.refractory)):
            raise ValueError(f"refractory must be a finite number of ms >= 0, got "
                             f"{self.refractory}")  # fmt: skip
        m = self.max_spikes
        if m is not None and (isinstance(m, bool) or int(m) != m or m < 1):
            raise ValueError(f"max_spikes must be a positive integer or None (no limit), got {m!r}")
        limit = self.spike_limit
        if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
            raise ValueError(f"spike_limit must be a positive integer or None, got {limit!r}")
        dt = self.sample_dt
        if dt is not None and not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"sample_dt must be a positive number of ms, got {self.sample_dt}")

    def packed(self) -> np.ndarray:
        """Packed for the kernels (float64): [tau_mem, tau_syn, delta, threshold, duration,
        refractory, vdot_min, tau_adapt, delta_a], delta = 1/tau_mem - 1/tau_syn and
        delta_a = 1/tau_mem - 1/tau_adapt (ms^-1, ``kernels.formulas.rate_difference``),
        vdot_min = vdot_floor x threshold (V units; an LI readout's infinite threshold counts as
        1).  Without adaptation tau_adapt is inf (and delta_a 1/tau_mem); the kernels then do
        not read them (they take adaptation from the non-empty ``jump`` array).  The EventProp
        kernels read the time constants per neuron (``_neuron_constants``); tau_mem, tau_syn,
        delta here serve the timing backward and delta_a."""
        if self.duration is None:
            raise ValueError("duration is not set")
        delta = rate_difference(self.tau_mem, self.tau_syn)
        threshold = self.threshold if math.isfinite(self.threshold) else 1.0
        tau_adapt = math.inf if self.tau_adapt is None else self.tau_adapt
        return np.array([self.tau_mem, self.tau_syn, delta, self.threshold, self.duration,
                         self.refractory, self.vdot_floor * threshold, tau_adapt,
                         rate_difference(self.tau_mem, tau_adapt)])  # fmt: skip


# ---------------------------------------------------------------------- autograd Functions
def _detach(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach()


def _timing_parameters(s: ExactSettings, *params: Tensor | None) -> tuple[Tensor | None, ...]:
    """The parameters to save for the timing backward, which reads them (the EventProp
    backward uses the copies the forward made): saved through ``save_for_backward``, so that
    an in-place change between forward and backward raises instead of being used."""
    return params if s.backward == "timing" else ()


def _grads(need, *pairs):
    return tuple(g if n else None for n, g in zip(need, pairs, strict=True))


class _LIFExact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: ExactSettings, in_units, in_offsets, in_times, w, d, w_rec, d_rec,
                taus, adaptation):  # fmt: skip
        consts = s.packed()
        neuron_taus = _neuron_constants(s, taus, w.shape[0])
        proj = _host.project(w, d)
        rec = _host.empty_projection(w.shape[0]) if w_rec is None else _host.project(w_rec, d_rec)
        jump = None if adaptation is None else adaptation.detach().numpy().copy()
        out = _host.lif_forward(in_times, in_units, in_offsets, proj, rec, consts, neuron_taus,
                                int(s.max_spikes or 0), s.capacity,  # the kernels' 0: no limit
                                w.shape[0] * int(s.spike_limit), jump)  # fmt: skip
        ctx.settings, ctx.proj, ctx.rec, ctx.consts = s, proj, rec, consts
        ctx.neuron_taus, ctx.per_neuron = neuron_taus, _per_neuron(taus)
        ctx.jump = jump
        ctx.has_rec = w_rec is not None
        ctx.n_out_arrays = len(out)
        ctx.save_for_backward(in_times, in_units, in_offsets, *out,
                              *_timing_parameters(s, w, d, w_rec, d_rec))  # fmt: skip
        ctx.mark_non_differentiable(out[1], out[2])
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx, grad_times, _grad_units, _grad_offsets):
        s: ExactSettings = ctx.settings
        in_times, in_units, in_offsets, *saved = ctx.saved_tensors
        out, params = saved[: ctx.n_out_arrays], saved[ctx.n_out_arrays :]
        n_out = ctx.proj.d_sorted.shape[1]
        batch = in_offsets.numel() - 1
        g_out = np.zeros(out[0].numel())
        if grad_times is not None:
            g_out = grad_times.detach().to(torch.float64).numpy().copy()
        kick = np.zeros(n_out)
        if s.regularizer is not None:
            counts = torch.bincount(out[1].long(), minlength=n_out)
            kick = s.regularizer.kick(counts, batch).numpy().astype(np.float64)
        if s.backward == "timing":
            w, d, w_rec, d_rec = (_detach(p) for p in params)
            dtau = db = None  # lif() refuses adaptation with this backward
            grad_in, dw, dd, dw_rec, dd_rec = timing.lif_backward(
                in_times, in_units, in_offsets, w, d, *out[:3], g_out, kick, w_rec, d_rec,
                ctx.consts,
            )  # fmt: skip
        else:
            grad_in, dw, dd, dw_rec, dd_rec, dtau, db = _host.backward(
                in_times, in_units, in_offsets, ctx.proj, tuple(out), g_out, kick, ctx.rec,
                _host.no_drive(batch, n_out), ctx.consts, ctx.neuron_taus, ctx.needs_input_grad[8],
                ctx.jump,
            )  # fmt: skip
        need = ctx.needs_input_grad
        rec_grads = (dw_rec, dd_rec) if ctx.has_rec else (None, None)
        return (None, None, None) + _grads(need[3:], grad_in, dw, dd, *rec_grads,
                                           _tau_grad(dtau, ctx.per_neuron), db)  # fmt: skip


def _no_spikes_out(batch: int) -> tuple[Tensor, ...]:
    z = torch.zeros(0, dtype=torch.float64)
    return z, torch.zeros(0, dtype=torch.int32), torch.zeros(batch + 1, dtype=torch.int64), z, z


def _per_neuron(taus: Tensor | None) -> bool:
    """Whether a call's ``time_constants`` hold one pair per neuron ([2, n_out])."""
    return taus is not None and taus.dim() == 2


def _neuron_constants(s: ExactSettings, taus: Tensor | None, n_out: int) -> np.ndarray:
    """The kernels' time constants per neuron [3, n_out] float64 (``_forward``): tau_mem,
    tau_syn (ms) and delta = 1/tau_mem - 1/tau_syn (ms^-1, ``rate_difference`` elementwise, 0.0
    exactly where tau_mem == tau_syn), from ``taus`` [2, n_out], or with every column equal to
    the settings' pair (one pair per layer)."""
    if _per_neuron(taus):
        tm, ts = taus.detach().numpy()
    else:
        tm, ts = np.full(n_out, s.tau_mem), np.full(n_out, s.tau_syn)
    return np.ascontiguousarray(np.stack([tm, ts, rate_difference(tm, ts)]))


def _tau_grad(dtau: Tensor | None, per_neuron: bool) -> Tensor | None:
    """dL/d time_constants from the per-neuron gradients [2, n_out]: as they are for time
    constants per neuron, summed to [2] for one pair per layer."""
    if dtau is None or per_neuron:
        return dtau
    return dtau.sum(dim=1)


def _readout_grads(ctx, grad_in: Tensor, dw: Tensor, dd: Tensor, dtau: Tensor | None = None):
    return (None, None, None) + _grads(ctx.needs_input_grad[3:], grad_in, dw, dd,
                                       _tau_grad(dtau, ctx.per_neuron))  # fmt: skip


def _readout_backward(ctx, drive: _host.Drive):
    in_times, in_units, in_offsets = ctx.saved_tensors[:3]
    batch = in_offsets.numel() - 1
    grad_in, dw, dd, _, _, dtau, _ = _host.backward(
        in_times, in_units, in_offsets, ctx.proj, _no_spikes_out(batch), np.zeros(0),
        np.zeros(ctx.proj.d_sorted.shape[1]), _host.empty_projection(ctx.proj.d_sorted.shape[1]),
        drive, ctx.consts, ctx.neuron_taus, ctx.needs_input_grad[6],
    )  # fmt: skip
    return _readout_grads(ctx, grad_in, dw, dd, dtau)


class _LITraceExact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: ExactSettings, in_units, in_offsets, in_times, w, d, taus):
        ctx.consts = s.packed()
        ctx.neuron_taus, ctx.per_neuron = _neuron_constants(s, taus, w.shape[0]), _per_neuron(taus)
        ctx.proj = _host.project(w, d)
        ctx.n_samples = n_steps_for(s.duration, s.sample_dt)
        ctx.sample_dt = s.sample_dt
        ctx.backward_kind = s.backward
        v, _ = _host.li_forward(in_times, in_units, in_offsets, ctx.proj, ctx.consts,
                                ctx.neuron_taus, s.sample_dt, ctx.n_samples,
                                peak=False)  # fmt: skip
        ctx.save_for_backward(in_times, in_units, in_offsets, *_timing_parameters(s, w, d))
        return torch.from_numpy(v)

    @staticmethod
    def backward(ctx, grad_v):
        if ctx.backward_kind == "timing":
            return _readout_grads(ctx, *timing.li_trace_backward(
                *(_detach(t) for t in ctx.saved_tensors), grad_v, ctx.sample_dt, ctx.consts
            ))  # fmt: skip
        batch, n_samples, n_out = grad_v.shape
        t = np.arange(n_samples, dtype=np.float64) * ctx.sample_dt
        gv = np.ascontiguousarray(grad_v.detach().to(torch.float64).numpy())
        none_i = np.zeros((0, n_out), np.int64)
        drive = _host.Drive(
            np.repeat(t[None, :], batch, axis=0),
            np.full((batch, n_samples), -1, np.int64), gv, np.zeros((0, 0, 0)), none_i, none_i,
            np.zeros((0, n_out)),
        )  # fmt: skip
        return _readout_backward(ctx, drive)


class _LIPeakExact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: ExactSettings, in_units, in_offsets, in_times, w, d, taus):
        ctx.consts = s.packed()
        ctx.neuron_taus, ctx.per_neuron = _neuron_constants(s, taus, w.shape[0]), _per_neuron(taus)
        ctx.proj = _host.project(w, d)
        ctx.backward_kind = s.backward
        _, peaks = _host.li_forward(in_times, in_units, in_offsets, ctx.proj, ctx.consts,
                                    ctx.neuron_taus, 1.0, 0, peak=True)  # fmt: skip
        ctx.peaks = peaks
        ctx.save_for_backward(in_times, in_units, in_offsets, *_timing_parameters(s, w, d))
        return torch.from_numpy(peaks[0]), torch.from_numpy(peaks[1])

    @staticmethod
    def backward(ctx, grad_value, grad_time):
        _, t_peak, kind, kink_a, kink_m, aux = ctx.peaks
        batch, n_out = t_peak.shape
        gv = np.zeros((batch, n_out)) if grad_value is None else grad_value.double().numpy()
        gt = np.zeros((batch, n_out)) if grad_time is None else grad_time.double().numpy()
        if ctx.backward_kind == "timing":
            return _readout_grads(ctx, *timing.li_peak_backward(
                *(_detach(t) for t in ctx.saved_tensors), ctx.peaks, gv, gt, ctx.consts
            ))  # fmt: skip
        smooth, arrival = kind == PEAK_SMOOTH, kind == PEAK_ARRIVAL
        tau_mem, tau_syn = ctx.neuron_taus[0], ctx.neuron_taus[1]  # [n_out], per neuron
        # smooth peak: t* solves I - V = 0, dt*/dp = tau_syn (dI/dp - dV/dp) / I(t*)
        with np.errstate(divide="ignore", invalid="ignore"):
            di = np.where(smooth, gt * tau_syn / aux, 0.0)
        dv = np.where(smooth | arrival | (kind == PEAK_END), gv, 0.0) - di
        # peak on an arrival: it moves with that arrival, at the slope dV/dt just before it
        kink_c = np.where(arrival, gv * aux / tau_mem + gt, 0.0)
        order = np.argsort(t_peak, axis=1, kind="stable")
        rows = np.arange(batch)[:, None]
        e = np.arange(n_out)[None, :]
        drive_gv = np.zeros((batch, n_out, n_out))
        drive_gi = np.zeros((batch, n_out, n_out))
        drive_gv[rows, e, order] = dv[rows, order]
        drive_gi[rows, e, order] = di[rows, order]
        drive = _host.Drive(
            np.ascontiguousarray(t_peak[rows, order]), order.astype(np.int64), drive_gv,
            drive_gi, np.where(arrival, kink_a, -1), np.where(arrival, kink_m, -1), kink_c,
        )  # fmt: skip
        return _readout_backward(ctx, drive)


# ---------------------------------------------------------------------- public functions
def _check_tensor(name: str, t: Tensor | None, shape: tuple[int, int], *, delay: bool) -> None:
    if t is not None and t.device.type != "cpu":
        raise ValueError(f"the exact engine runs on the CPU; {name} is on {t.device}")
    check_parameter(name, t, shape)
    if delay:
        check_delays(name, t, None)


def _prepare(spikes: Spikes, weight: Tensor, delay: Tensor | None, settings: ExactSettings,
             name: str) -> tuple[ExactSettings, Tensor]:  # fmt: skip
    if not isinstance(spikes, Spikes):
        raise TypeError(f"{name} expects a Spikes batch, got {type(spikes).__name__}")
    if not isinstance(settings, ExactSettings):
        raise TypeError(f"{name} expects ExactSettings, got {type(settings).__name__}")
    if weight.dim() != 2 or spikes.n_units != weight.shape[1]:
        raise ValueError(
            f"{name}: input has {spikes.n_units} units but the weight matrix expects "
            f"{weight.shape[1] if weight.dim() == 2 else '?'} (weight shape "
            f"{tuple(weight.shape)} must be [n_out, n_in])"
        )
    _check_tensor("weight", weight, tuple(weight.shape), delay=False)
    _check_tensor("delay", delay, tuple(weight.shape), delay=True)
    check_events(spikes, name)
    if settings.duration is None:
        settings = dataclasses.replace(settings, duration=spikes.duration)
    return settings, spikes.times.to(torch.float64)


def _spike_limit_message(err: SpikeLimitExceeded, weight: Tensor, s: ExactSettings) -> str:
    n_out, n_in = weight.shape
    if err.pending:
        return (
            f"lif layer ({n_in} inputs -> {n_out} neurons, exact engine): {err.pending} samples "
            f"of the batch (the first: sample {err.sample}) fire more than {err.limit} spikes "
            f"each, more than the {_host.MAX_SPIKES_PER_CALL} spikes one call holds room for; "
            "run smaller batches, or lower the weights or the learning rate"
        )
    return (
        f"lif layer ({n_in} inputs -> {n_out} neurons, exact engine): sample {err.sample} of "
        f"the batch fires more than {err.limit} spikes in {s.duration} ms, the limit of "
        f"{s.spike_limit} spikes per neuron per trial (ExactSettings.spike_limit, "
        f"LIF(spike_limit=...); default duration / {MIN_MEAN_ISI} ms).  The layer is in a "
        "runaway regime (weights too large, a learning rate that diverged, or a zero-delay "
        "recurrent loop); lower the weights or the learning rate, add a refractory period, "
        "or raise the limit if such rates are intended"
    )


def _f64(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.to(torch.float64)


def _with_time_constants(settings: ExactSettings, time_constants: Tensor | None, n_out: int,
                         name: str) -> tuple[ExactSettings, Tensor | None]:  # fmt: skip
    """The settings and ``time_constants`` in float64, checked: a tensor [2] (tau_mem, tau_syn
    ms, one pair for the layer) replaces the settings' pair; a tensor [2, n_out] (column j:
    neuron j's pair) leaves the settings' pair unused (the kernels read the time constants per
    neuron, ``_neuron_constants``).  The tensor receives dL/d of each of its entries."""
    if time_constants is None:
        return settings, None
    if (time_constants.shape not in ((2,), (2, n_out))
            or time_constants.device.type != "cpu"):  # fmt: skip
        raise ValueError(f"{name}: time_constants must be a CPU tensor [2] (tau_mem, tau_syn "
                         f"ms) or [2, n_out] = [2, {n_out}] (a pair per neuron), got shape "
                         f"{tuple(time_constants.shape)} on {time_constants.device}")  # fmt: skip
    per_neuron = _per_neuron(time_constants)
    if settings.backward != "eventprop" and (time_constants.requires_grad or per_neuron):
        raise ValueError(f"{name}: gradients of the time constants and time constants per "
                         f"neuron need backward='eventprop', not {settings.backward!r}")
    values = time_constants.detach()
    if not bool((torch.isfinite(values) & (values > 0)).all()):
        raise ValueError(f"{name}: time_constants must be positive finite ms, got "
                         f"{values.tolist()}")  # fmt: skip
    if per_neuron:
        return settings, _f64(time_constants)
    tm, ts = (float(v) for v in values.tolist())
    return dataclasses.replace(settings, tau_mem=tm, tau_syn=ts), _f64(time_constants)


def _adaptation(settings: ExactSettings, adaptation: Tensor | None,
                time_constants: Tensor | None, n_out: int, name: str) -> Tensor | None:  # fmt: skip
    """``lif``'s ``adaptation`` (b per neuron) checked against the settings, in float64."""
    check_adaptation(name, adaptation, settings.tau_adapt, n_out)
    if adaptation is None:
        return None
    if adaptation.device.type != "cpu":
        raise ValueError(f"the exact engine runs on the CPU; adaptation is on "
                         f"{adaptation.device}")  # fmt: skip
    if settings.backward != "eventprop":
        raise ValueError(f"{name}: adaptation needs backward='eventprop' (the timing backward "
                         f"does not model it), not {settings.backward!r}")  # fmt: skip
    if time_constants is not None and time_constants.requires_grad:
        raise ValueError(f"{name}: gradients of the time constants (learn_tau) are not derived "
                         "for adaptive neurons; pass time_constants without requires_grad or "
                         "no adaptation")  # fmt: skip
    if _per_neuron(time_constants):
        raise ValueError(f"{name}: adaptive neurons take one (tau_mem, tau_syn) per layer; "
                         "time_constants [2, n_out] (a pair per neuron) are not supported with "
                         "adaptation")  # fmt: skip
    return _f64(adaptation)


def _no_adaptation(settings: ExactSettings, name: str) -> None:
    if settings.tau_adapt is not None:
        raise ValueError(f"{name}: an LI readout has no adaptation; settings.tau_adapt must be "
                         "None")  # fmt: skip


def lif(
    spikes: Spikes,
    weight: Tensor,
    delay: Tensor | None,
    settings: ExactSettings,
    rec_weight: Tensor | None = None,
    rec_delay: Tensor | None = None,
    time_constants: Tensor | None = None,
    adaptation: Tensor | None = None,
) -> Spikes:
    """A layer of LIF neurons in continuous time: input spikes -> output spikes (float64 times,
    differentiable).

    Args:
        spikes: input batch (``n_units == n_in``), any float dtype (computed in float64).
        weight: [n_out, n_in].  delay: [n_out, n_in] ms (>= 0), or None for no delays.
        settings: neuron constants, refractory period, spike limit (``ExactSettings``).
        rec_weight, rec_delay: [n_out, n_out] recurrent weights and delays (ms, zero allowed).
        time_constants: None, or a CPU tensor of tau_mem, tau_syn (ms, positive finite) that
            replaces the settings' pair and receives its gradients (EventProp backward only):
            [2] (one pair for the layer) or [2, n_out] (column j: neuron j's pair; gradients
            per neuron; not with adaptation).  tau_mem == tau_syn is allowed for any neuron.
        adaptation: None, or (required iff ``settings.tau_adapt`` is set) a CPU tensor [n_out]:
            the jump b_j >= 0 (V units) of neuron j's adaptation current at each of its spikes;
            it receives dL/db (EventProp backward; not with gradients of ``time_constants``).
    """
    settings, times = _prepare(spikes, weight, delay, settings, "lif")
    n_out = weight.shape[0]
    settings, taus = _with_time_constants(settings, time_constants, n_out, "lif")
    adapt = _adaptation(settings, adaptation, time_constants, n_out, "lif")
    if rec_weight is None and rec_delay is not None:
        raise ValueError("rec_delay given without rec_weight")
    _check_tensor("rec_weight", rec_weight, (n_out, n_out), delay=False)
    _check_tensor("rec_delay", rec_delay, (n_out, n_out), delay=True)
    if not math.isfinite(settings.threshold):
        raise ValueError("a LIF layer needs a finite threshold")
    if settings.spike_limit is None:
        settings = dataclasses.replace(
            settings, spike_limit=default_spike_limit(settings.duration)
        )
    try:
        out_t, out_u, out_off = _LIFExact.apply(
            settings, spikes.units, spikes.offsets, times, _f64(weight), _f64(delay),
            _f64(rec_weight), _f64(rec_delay), taus, adapt,
        )  # fmt: skip
    except SpikeLimitExceeded as err:
        raise ValueError(_spike_limit_message(err, weight, settings)) from None
    counts = np.diff(out_off.numpy())
    samples = torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
    return Spikes(out_t, out_u, out_off, n_out, spikes.duration, samples)


def li_readout(
    spikes: Spikes, weight: Tensor, delay: Tensor | None, settings: ExactSettings,
    time_constants: Tensor | None = None,
) -> Tensor:
    """Leaky-integrator readout: voltages [batch, n_samples, n_out] (float64) at
    t = n * settings.sample_dt ms, n = 0 .. ceil(duration / sample_dt) - 1.
    ``time_constants`` as for ``lif``."""
    settings, times = _prepare(spikes, weight, delay, settings, "li_readout")
    _no_adaptation(settings, "li_readout")
    settings, taus = _with_time_constants(settings, time_constants, weight.shape[0],
                                          "li_readout")
    if settings.sample_dt is None:
        raise ValueError("li_readout needs settings.sample_dt (ms between voltage samples)")
    n_samples = n_steps_for(settings.duration, settings.sample_dt)
    check_grid_size("li_readout", spikes.batch_size, n_samples, weight.shape[0])
    return _LITraceExact.apply(
        settings, spikes.units, spikes.offsets, times, _f64(weight), _f64(delay), taus
    )


def li_peak(
    spikes: Spikes, weight: Tensor, delay: Tensor | None, settings: ExactSettings,
    time_constants: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact maximum over [0, duration] of each readout voltage: (value, time ms), each
    [batch, n_out] float64 and differentiable.  A voltage that never rises above 0 peaks at
    t = 0 with value 0.  ``time_constants`` as for ``lif``."""
    settings, times = _prepare(spikes, weight, delay, settings, "li_peak")
    _no_adaptation(settings, "li_peak")
    settings, taus = _with_time_constants(settings, time_constants, weight.shape[0], "li_peak")
    return _LIPeakExact.apply(
        settings, spikes.units, spikes.offsets, times, _f64(weight), _f64(delay), taus
    )

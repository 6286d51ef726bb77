"""Modules that own parameters: LIF layers and the leaky-integrator readout.

Neuron model (per neuron, times in ms)::

    tau_mem dV/dt = -V + I        tau_syn dI/dt = -I
    spike when V reaches threshold from below; then V <- 0 (I is not reset)
    a presynaptic spike at t reaches the neuron at t + d and makes I jump by w

``LIF`` maps a ``Spikes`` batch to a ``Spikes`` batch; ``LIReadout`` maps it to the voltage trace
``[batch, steps, n_out]``.  Layers compose with ``torch.nn.Sequential``.  Gradients with respect
to weights, delays and input spike times are exact-adjoint (EventProp) gradients.

Two engines (docs/architecture.md): ``dt > 0`` selects the time-stepped engine (float32 default);
``dt=None`` the exact event-driven engine in continuous time (``delayprop.exact``, float64
default), which also offers refractory periods, a spike limit per neuron and the exact peak of
the readout voltage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import partial
from numbers import Integral

import torch
from torch import Tensor, nn

from . import exact
from .delays import Delay, make_delay
from .exact.functional import BACKWARDS
from .functional import GridSettings, check_input, li_readout, lif, n_steps_for
from .init import Init, Normal, apply_init
from .kernels.host import SpikeCapacity
from .regularization import SpikeCountRegularizer
from .spikes import Spikes
from .validation import check_delays, check_dtype, check_positive_finite

__all__ = [
    "LIF", "LIReadout", "SpikeRecorder", "constrain_", "split_parameters", "delay_modules",
]  # fmt: skip


def _needs_exact(backward: str, dt: float | None) -> str:
    return (f"backward={backward!r} needs the exact engine (dt=None); the time-stepped engine "
            f"(dt={dt}) has the EventProp backward only")  # fmt: skip


class _Projection(nn.Module):
    """Shared parts of LIF and LIReadout: weights, delays, neuron constants, time grid."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        tau_mem: float,
        tau_syn: float,
        dt: float | None,
        max_delay: float,
        delay: str | Delay | None,
        delay_init: Init,
        learn_delays: bool,
        delay_bound: str,
        weight_init: Init | None,
        dtype: torch.dtype | None,
        backward: str,
        precise: bool = False,
    ) -> None:
        super().__init__()
        if precise and dt is None:
            raise ValueError("precise=True is a mode of the time-stepped engine (dt > 0); the "
                             "exact engine (dt=None) is continuous already")  # fmt: skip
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
        if dt is not None and backward != "eventprop":
            raise ValueError(_needs_exact(backward, dt))
        if not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0
                   for n in (n_in, n_out)):  # fmt: skip
            raise ValueError(f"n_in and n_out must be positive integers, got {n_in!r}, {n_out!r}")
        n_in, n_out = int(n_in), int(n_out)
        if not (max_delay >= 0 and math.isfinite(max_delay)):
            raise ValueError(f"max_delay must be a finite number of ms >= 0, got {max_delay}")
        check_positive_finite(tau_mem=tau_mem, tau_syn=tau_syn)
        if dt is not None:
            check_positive_finite(dt=dt)
        if dtype is None:
            dtype = torch.float32 if dt is not None else torch.float64
        check_dtype(type(self).__name__, dtype)
        self.n_in, self.n_out = n_in, n_out
        self.tau_mem, self.tau_syn, self.dt = float(tau_mem), float(tau_syn), dt
        self.backward = backward
        self.precise = bool(precise)
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
        default = Normal(0.0, 1.0 / n_in**0.5)
        apply_init(self.weight, default if weight_init is None else weight_init)
        self.delay = make_delay(
            delay, n_out, n_in, max_delay=max_delay, init=delay_init, learn=learn_delays,
            bound=delay_bound, dtype=dtype,
        )  # fmt: skip
        #: hardware constraint (``delayprop.hardware.apply_profile``): maps (weight, delay,
        #: max_delay) to what the target runs; None runs the parameters as they are.
        self.constraint: nn.Module | None = None

    def _constrained(self, weight: Tensor | None, delay: Delay | None, name: str = "delay"
                     ) -> tuple[Tensor | None, Tensor | None]:  # fmt: skip
        """(weight [n_out, n_in], delay matrix [n_out, n_in] ms) as the forward pass sees them;
        the delays are checked to lie in [0, max_delay] (the same rule for both engines)."""
        d = None if delay is None else delay()
        check_delays(name, d, None if delay is None else delay.max_delay)
        if self.constraint is None:
            return weight, d
        return self.constraint(weight, d, 0.0 if delay is None else delay.max_delay)

    def effective_parameters(self) -> tuple[Tensor, Tensor | None]:
        """Feed-forward (weight, delay) as the forward pass uses them (after any constraint)."""
        return self._constrained(self.weight, self.delay)

    @property
    def max_delay(self) -> float:
        return 0.0 if self.delay is None else self.delay.max_delay

    def delays(self) -> Tensor | None:
        """Current synaptic delay matrix [n_out, n_in] in ms (None without delays)."""
        return None if self.delay is None else self.delay()

    def _steps_of(self, max_delay: float) -> int:
        return int(round(max_delay / self.dt))

    def _exact_settings(self, threshold: float, **extra) -> exact.ExactSettings:
        return exact.ExactSettings(self.tau_mem, self.tau_syn, threshold,
                                   backward=self.backward, **extra)  # fmt: skip

    def _settings(self, spikes: Spikes, threshold: float, **extra) -> GridSettings:
        if self.backward != "eventprop":  # e.g. a network switched to a time grid
            raise ValueError(_needs_exact(self.backward, self.dt))
        check_input(spikes, self.weight, type(self).__name__)
        return GridSettings(
            tau_mem=self.tau_mem,
            tau_syn=self.tau_syn,
            threshold=threshold,
            dt=self.dt,
            n_steps=n_steps_for(spikes.duration, self.dt),
            max_delay_steps=self._steps_of(self.max_delay),
            precise=self.precise,
            **extra,
        )


class LIF(_Projection):
    """A layer of current-based LIF neurons with learnable weights and delays.

    Args:
        n_in, n_out: number of inputs and of neurons.
        tau_mem, tau_syn: membrane and synaptic time constants, ms.
        threshold: firing threshold (reset to 0).
        dt: time step of the time-stepped engine, ms; None selects the exact engine
            (event-driven, continuous time, delays never rounded).
        max_delay: largest delay, ms (delays are kept in [0, max_delay] by ``constrain_``).
        delay: ``"synaptic"`` (default when max_delay > 0), ``"axonal"``, ``"dendritic"``, a
            ``Delay`` module, or None (no delays; default when max_delay == 0).
        delay_init: initial delays, ms (constant or ``(low, high)`` uniform).
        learn_delays: train the delays.  delay_bound: ``"clamp"`` or ``"sigmoid"``.
        weight_init: initial weights (``Normal(mean, std)``, a constant, a range, a callable);
            default N(0, 1/n_in).
        recurrent: add recurrent weights [n_out, n_out] (and delays if ``rec_max_delay > 0``).
        rec_max_delay, rec_delay, rec_delay_init, rec_weight_init: the same for the recurrent
            connections (recurrent delays default to synaptic when ``rec_max_delay > 0``).
        regularizer: spike-count regulariser applied to this layer's spikes in backward.
        refractory: after each spike V is held at 0 for this many ms (I keeps integrating).
            Exact engine only (dt=None).
        max_spikes: a neuron falls silent after this many spikes (1: first-spike-only neurons
            as in DelGrad; None: no limit).  Exact engine only (dt=None).
        spike_limit: spikes per neuron per trial (mean over the layer) beyond which the exact
            engine stops with an error instead of running without bound (None: the trial's
            duration / 0.1 ms, see ``exact.ExactSettings``).  Exact engine only.
        dtype: parameter dtype (default float32 with dt, float64 with dt=None).
        backward: ``"eventprop"`` (the adjoint) or ``"timing"`` (the chain rule over spike
            times of Yamamoto et al. 2022, ``delayprop.exact.timing``: the same gradients by
            an independent method, slower).  ``"timing"`` needs the exact engine (dt=None).
        precise: time-stepped engine only: arrivals at their exact times t + d (delays and
            input times never rounded) and spikes located inside their step by root finding,
            with the exact adjoint of that forward (``kernels.precise_cpu``).  CPU,
            feed-forward; default False (the grid mode: times rounded to the grid).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        threshold: float = 1.0,
        dt: float | None = 1.0,
        max_delay: float = 0.0,
        delay: str | Delay | None = "default",
        delay_init: Init = 0.0,
        learn_delays: bool = True,
        delay_bound: str = "clamp",
        weight_init: Init | None = None,
        recurrent: bool = False,
        rec_max_delay: float = 0.0,
        rec_delay: str | Delay | None = "default",
        rec_delay_init: Init = 0.0,
        rec_weight_init: Init | None = None,
        regularizer: SpikeCountRegularizer | None = None,
        refractory: float = 0.0,
        max_spikes: int | None = None,
        dtype: torch.dtype | None = None,
        backward: str = "eventprop",
        precise: bool = False,
        spike_limit: int | None = None,
    ) -> None:
        if dt is not None and (refractory != 0 or max_spikes is not None or spike_limit):
            raise ValueError(
                "refractory, max_spikes, spike_limit need the exact engine (dt=None); the "
                f"time-stepped engine (dt={dt}) has none of them"
            )
        if max_spikes is not None and not (int(max_spikes) == max_spikes and max_spikes >= 1):
            raise ValueError(f"max_spikes must be a positive integer or None, got {max_spikes!r}")
        if delay == "default":
            delay = "synaptic" if max_delay > 0 else None
        super().__init__(
            n_in, n_out, tau_mem=tau_mem, tau_syn=tau_syn, dt=dt, max_delay=max_delay,
            delay=delay, delay_init=delay_init, learn_delays=learn_delays,
            delay_bound=delay_bound, weight_init=weight_init, dtype=dtype, backward=backward,
            precise=precise,
        )  # fmt: skip
        check_positive_finite(threshold=threshold)
        self.threshold = float(threshold)
        self.refractory = float(refractory)
        self.max_spikes = None if max_spikes is None else int(max_spikes)
        self.spike_limit = spike_limit
        self.regularizer = regularizer
        self.recurrent = bool(recurrent)
        self.rec_weight: nn.Parameter | None = None
        self.rec_delay: Delay | None = None
        if recurrent:
            dtype = self.weight.dtype  # the engine's default when dtype is None
            self.rec_weight = nn.Parameter(torch.empty(n_out, n_out, dtype=dtype))
            apply_init(
                self.rec_weight,
                Normal(0.0, 1.0 / n_out**0.5) if rec_weight_init is None else rec_weight_init,
            )
            if rec_delay == "default":
                rec_delay = "synaptic" if rec_max_delay > 0 else None
            self.rec_delay = make_delay(
                rec_delay, n_out, n_out, max_delay=rec_max_delay, init=rec_delay_init,
                learn=learn_delays, bound=delay_bound, dtype=dtype,
            )  # fmt: skip
        # room for output spikes per sample in the next forward pass: a hint that the engines'
        # host layer updates from each pass's spike counts (a batch that needs more runs again)
        self.spike_capacity = SpikeCapacity(4 * n_out)

    @property
    def rec_max_delay(self) -> float:
        return 0.0 if self.rec_delay is None else self.rec_delay.max_delay

    def forward(self, spikes: Spikes) -> Spikes:
        weight, delay = self.effective_parameters()
        rec_w, rec_d = self._constrained(self.rec_weight, self.rec_delay, "rec_delay")
        if self.dt is None:
            settings = self._exact_settings(
                self.threshold,
                refractory=self.refractory,
                max_spikes=self.max_spikes,
                capacity=self.spike_capacity,
                regularizer=self.regularizer,
                spike_limit=self.spike_limit,
            )
            out = exact.lif(spikes, weight, delay, settings, rec_w, rec_d)
        else:
            settings = self._settings(
                spikes,
                self.threshold,
                rec_max_delay_steps=self._steps_of(self.rec_max_delay) if self.recurrent else 0,
                capacity=self.spike_capacity,
                regularizer=self.regularizer,
            )
            out = lif(spikes, weight, delay, settings, rec_w, rec_d)
        return out

    def extra_repr(self) -> str:
        return (
            f"n_in={self.n_in}, n_out={self.n_out}, tau_mem={self.tau_mem}, "
            f"tau_syn={self.tau_syn}, threshold={self.threshold}, dt={self.dt}, "
            f"recurrent={self.recurrent}, refractory={self.refractory}, "
            f"max_spikes={self.max_spikes}, precise={self.precise}, backward={self.backward!r}"
        )


class LIReadout(_Projection):
    """Leaky-integrator readout: returns the voltage trace [batch, steps, n_out].

    Same arguments as ``LIF`` (``backward`` included) without threshold and recurrence.  Losses
    on the trace are plain torch code (``delayprop.losses``); their gradient drives the adjoint.

    With ``dt=None`` (exact engine) the trace holds V at t = 0, sample_dt, 2 sample_dt, ... ms
    (``sample_dt`` is required for ``forward``), and ``max_over_time`` gives the exact maximum of
    V over the trial and its time, both differentiable.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        dt: float | None = 1.0,
        max_delay: float = 0.0,
        delay: str | Delay | None = "default",
        delay_init: Init = 0.0,
        learn_delays: bool = True,
        delay_bound: str = "clamp",
        weight_init: Init | None = None,
        sample_dt: float | None = None,
        dtype: torch.dtype | None = None,
        backward: str = "eventprop",
        precise: bool = False,
    ) -> None:
        if dt is not None and sample_dt is not None:
            raise ValueError(
                f"sample_dt is for the exact engine (dt=None); with dt={dt} the trace is "
                "sampled at every step"
            )
        if sample_dt is not None:
            check_positive_finite(sample_dt=sample_dt)
        if delay == "default":
            delay = "synaptic" if max_delay > 0 else None
        super().__init__(
            n_in, n_out, tau_mem=tau_mem, tau_syn=tau_syn, dt=dt, max_delay=max_delay,
            delay=delay, delay_init=delay_init, learn_delays=learn_delays,
            delay_bound=delay_bound, weight_init=weight_init, dtype=dtype, backward=backward,
            precise=precise,
        )  # fmt: skip
        self.sample_dt = None if sample_dt is None else float(sample_dt)

    def forward(self, spikes: Spikes) -> Tensor:
        weight, delay = self.effective_parameters()
        if self.dt is None:
            if self.sample_dt is None:
                raise ValueError(
                    "LIReadout(dt=None) needs sample_dt (ms between voltage samples) for its "
                    "trace; or use max_over_time()"
                )
            settings = self._exact_settings(float("inf"), sample_dt=self.sample_dt)
            return exact.li_readout(spikes, weight, delay, settings)
        settings = self._settings(spikes, threshold=float("inf"))
        return li_readout(spikes, weight, delay, settings)

    def max_over_time(self, spikes: Spikes) -> tuple[Tensor, Tensor]:
        """Exact maximum of each readout voltage over [0, duration] and its time (ms), each
        [batch, n_out] and differentiable.  A voltage that never rises above 0 has its maximum
        0 at t = 0.

        Computed in continuous time by the exact engine (float64, delays never rounded) for
        every ``dt``: a maximum sitting on an arrival (V rises, an inhibitory input arrives,
        V falls) has the derivative of that kink, which the maximum of a sampled trace
        (``losses.max_over_time(layer(spikes))``) cannot have.  With a time grid this is the
        maximum of the precise-mode trajectory; it returns float64 values.
        """
        settings = self._exact_settings(float("inf"))
        return exact.li_peak(spikes, *self.effective_parameters(), settings)

    def extra_repr(self) -> str:
        return (
            f"n_in={self.n_in}, n_out={self.n_out}, tau_mem={self.tau_mem}, "
            f"tau_syn={self.tau_syn}, dt={self.dt}, sample_dt={self.sample_dt}, "
            f"precise={self.precise}, backward={self.backward!r}"
        )


# ---------------------------------------------------------------------- model-level helpers
class SpikeRecorder:
    """Spike counts of LIF layers in their forward passes, for a caller that asks for them
    (training statistics, weight bumping, calibration); forward passes themselves leave no
    statistics on the modules.

    It registers a forward hook on each layer until ``close()`` (or the end of a ``with``
    block).  After a forward pass of ``layers[k]``, ``counts[k]`` holds its spikes per neuron
    summed over the batch (int64 [n_out], on the layer's device) and ``batch_sizes[k]`` the
    number of samples; before the first pass they are None and 0::

        with SpikeRecorder([net[0]]) as rec:
            net(x)
        rec.rates()  # spikes per neuron per sample of each layer
    """

    def __init__(self, layers: Iterable[LIF]) -> None:
        self.layers = list(layers)
        for layer in self.layers:
            if not isinstance(layer, LIF):
                raise TypeError(f"SpikeRecorder records LIF layers, got {type(layer).__name__}")
        self.counts: list[Tensor | None] = [None] * len(self.layers)
        self.batch_sizes: list[int] = [0] * len(self.layers)
        self._handles = [layer.register_forward_hook(partial(self._record, k))
                         for k, layer in enumerate(self.layers)]  # fmt: skip

    def _record(self, k: int, layer: LIF, _args: tuple, out: Spikes) -> None:
        with torch.no_grad():
            self.counts[k] = torch.bincount(out.units.long(), minlength=layer.n_out)
        self.batch_sizes[k] = out.batch_size

    def counts_of(self, layer: LIF) -> Tensor | None:
        """Spikes per neuron of ``layer`` (one of ``layers``) in its last forward pass, summed
        over the batch: int64 [n_out], or None before one."""
        for k, recorded in enumerate(self.layers):
            if recorded is layer:
                return self.counts[k]
        raise ValueError("this layer is not recorded")

    def rates(self) -> list[float]:
        """Spikes per neuron per sample of each layer in its last forward pass (NaN before
        one)."""
        return [float("nan") if c is None or b == 0 else float(c.sum()) / c.numel() / b
                for c, b in zip(self.counts, self.batch_sizes)]  # fmt: skip

    def close(self) -> None:
        """Remove the hooks; the last counts stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> SpikeRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def delay_modules(model: nn.Module) -> Iterator[Delay]:
    """Every delay parametrisation inside ``model``."""
    for m in model.modules():
        if isinstance(m, Delay):
            yield m


@torch.no_grad()
def constrain_(model: nn.Module) -> None:
    """Project all delays of ``model`` back into [0, max_delay] (and into a hardware target's
    range where a layer has a constraint); call after each optimiser step (as the published
    method does)."""
    for m in delay_modules(model):
        m.constrain_()
    for m in model.modules():
        if isinstance(m, _Projection) and m.constraint is not None:
            m.constraint.constrain_(m)


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(non-delay parameters, delay parameters) of ``model``, for separate optimiser groups,
    e.g. ``Adam([{"params": w, "lr": 1e-3}, {"params": d, "lr": 0.1}])``."""
    delay_ids = {id(p) for m in delay_modules(model) for p in m.parameters()}
    others = [p for p in model.parameters() if id(p) not in delay_ids and p.requires_grad]
    delays = [p for p in model.parameters() if id(p) in delay_ids and p.requires_grad]
    return others, delays

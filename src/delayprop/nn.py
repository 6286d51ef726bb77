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
default), which also offers the exact peak of the readout voltage.  Refractory periods and a
spike limit per neuron work on both (on the grid in whole steps, CPU kernels, not in the precise
mode).

Every option of a layer (neuron constants, engine, delays, recurrence) is a field of
``delayprop.options.LayerOptions``, documented there with its unit; a layer takes such an object
or the same names as keywords, and keeps its neuron and engine options as attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from numbers import Integral
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from . import exact
from .delays import Delay, make_delay
from .functional import GridSettings, check_input, li_readout, lif, n_steps_for
from .init import Init, Normal, apply_init
from .kernels.host import SpikeCapacity
from .options import LayerOptions, state_options
from .regularization import SpikeCountRegularizer
from .spikes import Spikes
from .validation import check_delays, check_dtype

__all__ = [
    "LIF", "LIReadout", "SpikeRecorder", "constrain_", "split_parameters", "delay_modules",
    "time_constant_parameters",
]  # fmt: skip


class _Projection(nn.Module):
    """Shared parts of LIF and LIReadout: weights, feed-forward delays, the neuron and engine
    options (attributes of the same names), time grid."""

    #: what the layer returns: ``"spikes"`` (LIF) or ``"trace"`` (LIReadout); the options about
    #: the other output (``delayprop.options``) do not apply to it
    output: ClassVar[str]

    def __init__(
        self,
        n_in: int,
        n_out: int,
        options: LayerOptions,
        *,
        weight_init: Init | None,
        delay: Delay | None,
        delay_init: Init,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        if not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0
                   for n in (n_in, n_out)):  # fmt: skip
            raise ValueError(f"n_in and n_out must be positive integers, got {n_in!r}, {n_out!r}")
        n_in, n_out = int(n_in), int(n_out)
        if dtype is None:
            dtype = torch.float32 if options.dt is not None else torch.float64
        check_dtype(type(self).__name__, dtype)
        self.n_in, self.n_out = n_in, n_out
        for name in state_options(self.output):
            setattr(self, name, getattr(options, name))
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype))
        default = Normal(0.0, 1.0 / n_in**0.5)
        apply_init(self.weight, default if weight_init is None else weight_init)
        self.delay = self._delays(delay, options.delay_kind, options.max_delay, (n_out, n_in),
                                  delay_init, options, dtype)  # fmt: skip
        #: hardware constraint (``delayprop.hardware.apply_profile``): maps (weight, delay,
        #: max_delay) to what the target runs; None runs the parameters as they are.
        self.constraint: nn.Module | None = None
        #: (tau_min, tau_max) ms, the range ``constrain_`` keeps learned time constants in
        self.tau_bounds = (options.tau_min, options.tau_max)
        #: learned (tau_mem, tau_syn) ms (option ``learn_tau``), else None: [2] for the layer,
        #: whose attributes ``tau_mem``, ``tau_syn`` then follow it (``sync_time_constants``: at
        #: every forward pass, ``constrain_``, ``load_state_dict`` and export), or [2, n_out] with
        #: ``tau_per_neuron`` (column j: neuron j; the attributes keep the initial values, the
        #: exact engine reads the tensor and the time grid refuses it)
        self.time_constants: nn.Parameter | None = None
        if options.learn_tau:
            pair = torch.tensor([options.tau_mem, options.tau_syn], dtype=dtype)
            self.time_constants = nn.Parameter(
                pair[:, None].repeat(1, n_out) if options.tau_per_neuron else pair
            )
            self.register_load_state_dict_post_hook(
                lambda module, _keys: module.sync_time_constants()
            )

    def sync_time_constants(self) -> None:
        """Set the attributes ``tau_mem``, ``tau_syn`` (ms) to the learned time constants, if
        the layer learns one pair (not per neuron: ``neuron_time_constants``)."""
        if self.time_constants is not None and self.time_constants.dim() == 1:
            self.tau_mem, self.tau_syn = (float(t) for t in self.time_constants.detach())

    def neuron_time_constants(self) -> Tensor:
        """(tau_mem, tau_syn) of every neuron as the exact engine runs them: [2, n_out] ms,
        float64, detached."""
        self.sync_time_constants()
        if self.time_constants is not None and self.time_constants.dim() == 2:
            return self.time_constants.detach().to(torch.float64).cpu()
        pair = torch.tensor([self.tau_mem, self.tau_syn], dtype=torch.float64)
        return pair[:, None].repeat(1, self.n_out)

    def _delays(self, module: Delay | None, kind: str, max_delay: float, shape: tuple[int, int],
                init: Init, options: LayerOptions, dtype: torch.dtype) -> Delay | None:  # fmt: skip
        """The delay parametrisation of a projection of ``shape`` [n_out, n_in]: ``module`` if
        one is given, else one of ``kind`` with delays in [0, max_delay] ms, None when
        ``max_delay`` is 0."""
        if module is not None:
            if not isinstance(module, Delay):
                raise TypeError(f"{type(self).__name__}: delay and rec_delay take a Delay "
                                f"module, got {module!r}; the kind of delays is the option "
                                "delay_kind (rec_delay_kind)")  # fmt: skip
            return make_delay(module, *shape)
        if max_delay == 0:
            return None
        return make_delay(kind, *shape, max_delay=max_delay, init=init, learn=options.learn_delays,
                          bound=options.delay_bound, dtype=dtype)  # fmt: skip

    def _check_options(self) -> None:
        """The neuron and engine options as they stand (they may have been changed since the
        layer was built, e.g. ``layer.dt = 0.5``) must fit together: ``ValueError`` otherwise,
        e.g. for ``backward="timing"`` on a time grid."""
        LayerOptions(**{name: getattr(self, name) for name in state_options(self.output)})

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
        self.sync_time_constants()
        self._check_options()
        return exact.ExactSettings(self.tau_mem, self.tau_syn, threshold,
                                   backward=self.backward, **extra)  # fmt: skip

    def _settings(self, spikes: Spikes, threshold: float, **extra) -> GridSettings:
        if self.time_constants is not None and self.time_constants.dim() == 2:
            raise ValueError(f"{type(self).__name__}: time constants per neuron "
                             "(tau_per_neuron, time_constants [2, n_out]) run only on the exact "
                             f"engine (dt=None); the time grid (dt={self.dt} ms) takes one "
                             "(tau_mem, tau_syn) per layer")  # fmt: skip
        self.sync_time_constants()
        self._check_options()
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

    def extra_repr(self) -> str:
        state = (f"{name}={getattr(self, name)!r}" for name in state_options(self.output))
        return ", ".join((f"n_in={self.n_in}", f"n_out={self.n_out}", *state))


class LIF(_Projection):
    """A layer of current-based LIF neurons with learnable weights and delays.

    Args:
        n_in, n_out: number of inputs and of neurons.
        options: the layer's options (``LayerOptions``: neuron constants, engine, delays,
            recurrence; default: every option at its default).
        **keywords: options by name, changing those of ``options``: e.g. ``dt=None`` (exact
            engine), ``max_delay=10.0`` (ms), ``delay_kind="axonal"``, ``recurrent=True``,
            ``tau_adapt=100.0, adapt_jump=0.2`` (adaptive LIF: ``layer.adaptation`` [n_out]
            holds the jumps b).  The options about a readout's trace (``sample_dt``) do not
            apply.
        weight_init: initial weights (``Normal(mean, std)``, a constant, a range, a callable);
            default N(0, 1/n_in).
        delay_init: initial delays, ms (a constant, a ``(low, high)`` uniform range, ...).
        delay: a ``Delay`` module to use as the feed-forward delays (e.g. shared with another
            layer) instead of one built from the options; its own kind and range apply.
        rec_weight_init, rec_delay_init, rec_delay: the same for the recurrent connections
            (default weights N(0, 1/n_out)).
        regularizer: spike-count regulariser applied to this layer's spikes in backward.
        dtype: parameter dtype (default float32 with dt, float64 with dt=None).
    """

    output = "spikes"

    def __init__(
        self,
        n_in: int,
        n_out: int,
        options: LayerOptions | None = None,
        *,
        weight_init: Init | None = None,
        delay_init: Init = 0.0,
        delay: Delay | None = None,
        rec_weight_init: Init | None = None,
        rec_delay_init: Init = 0.0,
        rec_delay: Delay | None = None,
        regularizer: SpikeCountRegularizer | None = None,
        dtype: torch.dtype | None = None,
        **keywords: Any,
    ) -> None:
        options = LayerOptions.build(options, keywords, type(self).__name__, self.output)
        super().__init__(n_in, n_out, options, weight_init=weight_init, delay=delay,
                         delay_init=delay_init, dtype=dtype)  # fmt: skip
        self.regularizer = regularizer
        self.recurrent = options.recurrent
        self.rec_weight: nn.Parameter | None = None
        self.rec_delay: Delay | None = None
        if self.recurrent:
            dtype = self.weight.dtype  # the engine's default when dtype is None
            self.rec_weight = nn.Parameter(torch.empty(n_out, n_out, dtype=dtype))
            apply_init(
                self.rec_weight,
                Normal(0.0, 1.0 / n_out**0.5) if rec_weight_init is None else rec_weight_init,
            )
            self.rec_delay = self._delays(rec_delay, options.rec_delay_kind,
                                          options.rec_max_delay, (n_out, n_out), rec_delay_init,
                                          options, dtype)  # fmt: skip
        #: adaptation jumps b [n_out] (V units) of the adaptive neuron (option ``tau_adapt``): a
        #: parameter with ``learn_adapt``, else a buffer; None without adaptation
        self.adaptation: Tensor | None
        jumps = torch.full((n_out,), options.adapt_jump, dtype=self.weight.dtype)
        if options.learn_adapt:
            self.adaptation = nn.Parameter(jumps)
        else:
            self.register_buffer("adaptation", None if options.tau_adapt is None else jumps)
        # room for output spikes per sample in the next forward pass: a hint that the engines'
        # host layer updates from each pass's spike counts (a batch that needs more runs again)
        self.spike_capacity = SpikeCapacity(4 * n_out)

    @property
    def rec_max_delay(self) -> float:
        return 0.0 if self.rec_delay is None else self.rec_delay.max_delay

    def _adaptation(self) -> Tensor | None:
        """The adaptation jumps b [n_out] the forward pass uses (None without adaptation)."""
        if self.tau_adapt is None:
            return None
        if self.adaptation is None:
            raise ValueError("LIF: tau_adapt is set but the layer was built without "
                             "adaptation; build it with tau_adapt (and adapt_jump) to have the "
                             "jumps b")  # fmt: skip
        return self.adaptation

    def forward(self, spikes: Spikes) -> Spikes:
        weight, delay = self.effective_parameters()
        rec_w, rec_d = self._constrained(self.rec_weight, self.rec_delay, "rec_delay")
        adaptation = self._adaptation()
        if self.dt is None:
            settings = self._exact_settings(
                self.threshold,
                refractory=self.refractory,
                max_spikes=self.max_spikes,
                capacity=self.spike_capacity,
                regularizer=self.regularizer,
                spike_limit=self.spike_limit,
                tau_adapt=self.tau_adapt,
            )
            out = exact.lif(spikes, weight, delay, settings, rec_w, rec_d, self.time_constants,
                            adaptation)  # fmt: skip
        else:
            settings = self._settings(
                spikes,
                self.threshold,
                rec_max_delay_steps=self._steps_of(self.rec_max_delay) if self.recurrent else 0,
                capacity=self.spike_capacity,
                regularizer=self.regularizer,
                refractory=self.refractory,
                max_spikes=self.max_spikes,
                tau_adapt=self.tau_adapt,
            )
            out = lif(spikes, weight, delay, settings, rec_w, rec_d, adaptation,
                      self.time_constants)  # fmt: skip
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recurrent={self.recurrent}"


class LIReadout(_Projection):
    """Leaky-integrator readout: returns the voltage trace [batch, steps, n_out].

    Takes the arguments of ``LIF`` without recurrence: the same ``LayerOptions`` (it never
    spikes, so the options about output spikes, e.g. the threshold, do not apply; given in a
    shared ``LayerOptions`` they are left unused, as keywords they are an error).  Losses on
    the trace are plain torch code (``delayprop.losses``); their gradient drives the adjoint.

    With ``dt=None`` (exact engine) the trace holds V at t = 0, sample_dt, 2 sample_dt, ... ms
    (the option ``sample_dt``, 1 ms by default), and ``max_over_time`` gives the exact maximum
    of V over the trial and its time, both differentiable.
    """

    output = "trace"

    def __init__(
        self,
        n_in: int,
        n_out: int,
        options: LayerOptions | None = None,
        *,
        weight_init: Init | None = None,
        delay_init: Init = 0.0,
        delay: Delay | None = None,
        dtype: torch.dtype | None = None,
        **keywords: Any,
    ) -> None:
        options = LayerOptions.build(options, keywords, type(self).__name__, self.output)
        super().__init__(n_in, n_out, options, weight_init=weight_init, delay=delay,
                         delay_init=delay_init, dtype=dtype)  # fmt: skip

    def forward(self, spikes: Spikes) -> Tensor:
        weight, delay = self.effective_parameters()
        if self.dt is None:
            settings = self._exact_settings(float("inf"), sample_dt=self.sample_dt)
            return exact.li_readout(spikes, weight, delay, settings, self.time_constants)
        settings = self._settings(spikes, threshold=float("inf"))
        return li_readout(spikes, weight, delay, settings, self.time_constants)

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
        return exact.li_peak(spikes, *self.effective_parameters(), settings,
                             self.time_constants)  # fmt: skip


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
    range where a layer has a constraint), learned time constants into [tau_min, tau_max] ms
    (per neuron too, ``tau_per_neuron``) and adaptation jumps to >= 0; call after each
    optimiser step (as the published method does)."""
    for m in delay_modules(model):
        m.constrain_()
    for m in model.modules():
        if isinstance(m, _Projection) and m.constraint is not None:
            m.constraint.constrain_(m)
        if isinstance(m, _Projection) and m.time_constants is not None:
            m.time_constants.clamp_(*m.tau_bounds)
            m.sync_time_constants()
        if isinstance(m, LIF) and m.adaptation is not None:
            m.adaptation.clamp_(min=0.0)


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(non-delay parameters, delay parameters) of ``model``, for separate optimiser groups,
    e.g. ``Adam([{"params": w, "lr": 1e-3}, {"params": d, "lr": 0.1}])``."""
    delay_ids = {id(p) for m in delay_modules(model) for p in m.parameters()}
    others = [p for p in model.parameters() if id(p) not in delay_ids and p.requires_grad]
    delays = [p for p in model.parameters() if id(p) in delay_ids and p.requires_grad]
    return others, delays


def time_constant_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The learned time constants of ``model`` (``learn_tau``; each [2] or, with
    ``tau_per_neuron``, [2, n_out]: tau_mem, tau_syn ms), which ``split_parameters`` counts
    among the non-delay parameters; the trainer gives them their own optimiser group
    (``train.tau_lr``)."""
    return [m.time_constants for m in model.modules()
            if isinstance(m, _Projection) and m.time_constants is not None]  # fmt: skip

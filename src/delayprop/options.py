"""The options of a layer, each described once: its name, default, unit and check.

``LayerOptions`` is what the layer modules (``nn.LIF``, ``nn.LIReadout``) are built from, what
``methods.build_model`` gives every layer of a network, and what the ``model`` section of a run
configuration sets under the same names (``config.ModelConfig`` is a ``LayerOptions`` with the
network's own fields added).  Nothing else lists the options: a field added here is at once a
keyword of the modules and of ``build_model``, a key of the configuration
(``--set model.NAME=...``) and an attribute of a built layer.

The options come in three groups:

* ``NeuronOptions``: the neuron model (time constants, threshold, refractory period, spikes
  per neuron);
* ``EngineOptions``: how a layer is simulated (time grid or exact engine, precise mode,
  backward, the exact engine's limits and sampling);
* the fields of ``LayerOptions`` itself: the layer's connections (delays, recurrence), which
  shape its parameters when it is built.

A built layer keeps its neuron and engine options as attributes of the same names
(``layer.tau_mem``, ``layer.dt``), read at every forward pass and open to change
(``layer.dt = None`` moves a layer to the exact engine; the options are checked together again
at the next forward pass); its connections live in its parameters and delay modules
(``layer.max_delay``, ``layer.delay.kind``).

Fields declared with ``option(...)`` carry two marks in their metadata:

* ``output``: the option concerns only one kind of layer output: ``"spikes"`` (threshold,
  refractory period, spike limits, recurrence: LIF layers; an LI readout never spikes) or
  ``"trace"`` (``sample_dt``: the voltage trace of an LI readout).  A layer built from shared
  options leaves the ones about the other output unused and refuses them as keywords.
* ``exact_only``: the time-stepped engine (``dt`` > 0) does not have the option; there it must
  be None or its default.

Times are in ms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from .delays import DELAY_BOUNDS, DELAY_KINDS
from .exact.functional import BACKWARDS
from .validation import (
    check_choice,
    check_limit,
    check_nonnegative_finite,
    check_positive_finite,
)

__all__ = ["NeuronOptions", "EngineOptions", "LayerOptions", "OUTPUTS", "option", "state_options"]

#: the outputs a layer can have, and how an error names them
OUTPUTS: Mapping[str, str] = {"spikes": "output spikes", "trace": "a voltage trace"}


def option(default: Any, *, output: str | None = None, exact_only: bool = False) -> Any:
    """A field of an options class with its default and its marks (module docstring):
    ``output`` ("spikes" or "trace") if it concerns only that output, ``exact_only`` if the
    time-stepped engine does not have it."""
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output must be one of {sorted(OUTPUTS)}, got {output!r}")
    return dataclasses.field(default=default,
                             metadata={"output": output, "exact_only": exact_only})  # fmt: skip


class _Options:
    """What the option classes share: integers given for ms values become floats."""

    def _floats(self) -> None:
        """Every option whose default is a float holds a float (an integer given, e.g.
        ``tau_mem=20``, is converted)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if (isinstance(f.default, float) and isinstance(value, Integral)
                    and not isinstance(value, bool)):  # fmt: skip
                setattr(self, f.name, float(value))


@dataclass
class NeuronOptions(_Options):
    """The neuron model: tau_mem dV/dt = -V + I, tau_syn dI/dt = -I; a spike when V reaches the
    threshold, then V = 0 (I is not reset); a presynaptic spike at t makes I jump by its weight
    at t + delay.  Times in ms."""

    tau_mem: float = 20.0
    """Membrane time constant, ms."""
    tau_syn: float = 5.0
    """Synaptic time constant, ms."""
    threshold: float = option(1.0, output="spikes")
    """Firing threshold; V is reset to 0 at a spike."""
    refractory: float = option(0.0, output="spikes")
    """After each spike V is held at 0 for this many ms (I keeps integrating); on the time grid
    for ceil(refractory / dt) whole steps (not in the precise mode)."""
    max_spikes: int | None = option(None, output="spikes")
    """A neuron falls silent after this many spikes per sample (1: first-spike neurons as in
    DelGrad; V is held at 0, I keeps integrating); None: no limit (not in the precise mode)."""
    tau_adapt: float | None = option(None, output="spikes")
    """Time constant of the adaptation current A, ms: the adaptive LIF neuron
    tau_mem dV/dt = -V + I - A, tau_adapt dA/dt = -A, A jumps by b at each spike (b per neuron:
    ``adapt_jump``, ``learn_adapt``; docs/methods.md "Adaptive LIF").  None: no adaptation.
    Exact engine and time grid (not the precise mode)."""

    def __post_init__(self) -> None:
        self._check_neuron()
        self._floats()

    def _check_neuron(self) -> None:
        check_positive_finite(tau_mem=self.tau_mem, tau_syn=self.tau_syn,
                              threshold=self.threshold)  # fmt: skip
        check_nonnegative_finite(refractory=self.refractory)
        check_limit(max_spikes=self.max_spikes)
        if self.tau_adapt is not None:
            check_positive_finite(tau_adapt=self.tau_adapt)


@dataclass
class EngineOptions(_Options):
    """How a layer is simulated: on a time grid of step ``dt`` ms (float32 by default) or, with
    ``dt=None``, by the exact event-driven engine in continuous time (float64 by default)."""

    dt: float | None = 1.0
    """Step of the time-stepped engine, ms; None selects the exact engine (event-driven,
    continuous time, delays never rounded)."""
    precise: bool = False
    """Time-stepped engine: arrivals at their exact times t + d (delays and input times never
    rounded) and spikes located inside their step by root finding, with the exact adjoint of
    that forward (the precise mode, ``kernels.precise_cpu``; CPU, feed-forward).  False: the
    grid mode, times rounded to the grid."""
    backward: str = option("eventprop", exact_only=True)
    """``"eventprop"`` (the adjoint) or ``"timing"`` (the chain rule over spike times of
    Yamamoto et al. 2022, ``delayprop.exact.timing``: the same gradients by an independent
    method, slower)."""
    spike_limit: int | None = option(None, output="spikes", exact_only=True)
    """Spikes per neuron per trial (mean over the layer) beyond which the forward pass stops
    with an error instead of running without bound; None: the trial's duration / 0.1 ms
    (``exact.functional.default_spike_limit``)."""
    sample_dt: float | None = option(1.0, output="trace", exact_only=True)
    """ms between the samples of a readout's voltage trace (t = 0, sample_dt, 2 sample_dt, ...);
    the time grid samples at every step of ``dt``.  None: no trace (an exact readout then
    offers ``max_over_time`` only)."""

    def __post_init__(self) -> None:
        self._check_engine()
        self._floats()

    def _check_engine(self) -> None:
        """Checks the engine options and that every exact-only option of ``self`` (the neuron
        options too, in a ``LayerOptions``) fits the engine."""
        if self.dt is not None:
            check_positive_finite(dt=self.dt)
        check_choice("backward", self.backward, BACKWARDS)
        check_limit(spike_limit=self.spike_limit)
        if self.sample_dt is not None:
            check_positive_finite(sample_dt=self.sample_dt)
        if self.dt is None:
            if self.precise:
                raise ValueError("precise=True is a mode of the time-stepped engine (dt > 0); "
                                 "the exact engine (dt=None) is continuous already")  # fmt: skip
            return
        if self.precise and (getattr(self, "refractory", 0.0) != 0.0
                             or getattr(self, "max_spikes", None) is not None):  # fmt: skip
            raise ValueError("refractory and max_spikes need precise=False on the time-stepped "
                             "engine (or the exact engine, dt=None)")  # fmt: skip
        if self.precise and getattr(self, "tau_adapt", None) is not None:
            raise ValueError("tau_adapt (adaptation) needs precise=False on the time-stepped "
                             "engine (or the exact engine, dt=None)")  # fmt: skip
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("exact_only") and value is not None and value != f.default:
                raise ValueError(f"{f.name}={value!r} needs the exact engine (dt=None); on the "
                                 f"time-stepped engine (dt={self.dt} ms) leave {f.name} at "
                                 f"{f.default!r}")  # fmt: skip


@dataclass
class LayerOptions(EngineOptions, NeuronOptions):
    """Every option of a layer: its neuron model (``NeuronOptions``), its engine
    (``EngineOptions``) and its connections (the fields below).  Times in ms.

    Build it with keywords (``LayerOptions(dt=None, max_delay=10.0)``) and derive variants
    with ``dataclasses.replace``; both check the values.  A layer module takes it whole, or
    the same keywords: ``LIF(4, 30, dt=0.05, max_delay=10.0)``.
    """

    max_delay: float = 0.0
    """Largest feed-forward delay, ms: delays lie in [0, max_delay] (``constrain_`` keeps them
    there); 0: no delays."""
    delay_kind: str = "synaptic"
    """Parametrisation of the feed-forward delays (when ``max_delay`` > 0): ``"synaptic"`` (one
    per synapse), ``"axonal"`` (one per input, shared by its targets) or ``"dendritic"`` (one
    per neuron, shared by its inputs)."""
    delay_bound: str = "clamp"
    """How delays stay in [0, max_delay]: ``"clamp"`` (the parameter is the delay, clamped by
    ``constrain_``) or ``"sigmoid"`` (delay = max_delay sigmoid(parameter))."""
    learn_delays: bool = True
    """Train the delays (feed-forward and recurrent)."""
    recurrent: bool = option(False, output="spikes")
    """Add recurrent connections [n_out, n_out] from the layer's own spikes."""
    rec_max_delay: float = option(0.0, output="spikes")
    """Largest recurrent delay, ms; 0: none."""
    rec_delay_kind: str = option("synaptic", output="spikes")
    """Parametrisation of the recurrent delays (when ``rec_max_delay`` > 0), as
    ``delay_kind``."""
    learn_tau: bool = False
    """Train ``tau_mem`` and ``tau_syn`` (one pair per layer: the parameter
    ``layer.time_constants`` [2], ms, kept in [tau_min, tau_max] by ``constrain_``; a pair per
    neuron with ``tau_per_neuron``); backward="eventprop" on the exact engine (dt=None) or the
    time grid (not the precise mode; a pair per layer only)."""
    tau_per_neuron: bool = option(False, exact_only=True)
    """One (tau_mem, tau_syn) per neuron instead of per layer: ``layer.time_constants`` is
    [2, n_out] (ms; column j: neuron j), initialised to ``tau_mem``, ``tau_syn`` for every
    neuron; the attributes ``layer.tau_mem``, ``layer.tau_syn`` keep those initial values and
    the exact engine reads the tensor.  Needs ``learn_tau``; exact engine (dt=None) only."""
    tau_min: float = 0.5
    """Smallest value of a learned time constant, ms (``learn_tau``)."""
    tau_max: float = 200.0
    """Largest value of a learned time constant, ms (``learn_tau``)."""
    adapt_jump: float = option(0.0, output="spikes")
    """Initial jump b of the adaptation current at each spike (V units, >= 0), the same for
    every neuron (the parameter ``layer.adaptation`` [n_out]); needs ``tau_adapt``."""
    learn_adapt: bool = option(False, output="spikes")
    """Train the adaptation jumps b (one per neuron, ``layer.adaptation``, kept >= 0 by
    ``constrain_``; in the weights' optimiser group); needs ``tau_adapt``."""

    def __post_init__(self) -> None:
        self._check_neuron()
        self._check_engine()
        check_nonnegative_finite(max_delay=self.max_delay, rec_max_delay=self.rec_max_delay)
        check_choice("delay_kind", self.delay_kind, DELAY_KINDS)
        check_choice("rec_delay_kind", self.rec_delay_kind, DELAY_KINDS)
        check_choice("delay_bound", self.delay_bound, DELAY_BOUNDS)
        check_positive_finite(tau_min=self.tau_min, tau_max=self.tau_max)
        if not self.tau_min < self.tau_max:
            raise ValueError(f"tau_min must be below tau_max, got {self.tau_min} and "
                             f"{self.tau_max} ms")  # fmt: skip
        check_nonnegative_finite(adapt_jump=self.adapt_jump)
        if self.tau_adapt is None and (self.adapt_jump != 0.0 or self.learn_adapt):
            raise ValueError("adapt_jump and learn_adapt need an adaptation time constant "
                             "tau_adapt (ms)")  # fmt: skip
        if self.tau_adapt is not None and self.backward != "eventprop":
            raise ValueError(f"tau_adapt (adaptation) needs backward='eventprop', not "
                             f"{self.backward!r}")  # fmt: skip
        if self.tau_adapt is not None and self.learn_tau:
            raise ValueError("learn_tau and tau_adapt (adaptation) cannot be combined: the "
                             "time-constant gradients are derived without adaptation")  # fmt: skip
        if self.tau_per_neuron and not self.learn_tau:
            raise ValueError("tau_per_neuron (a time-constant pair per neuron) needs "
                             "learn_tau=True")  # fmt: skip
        if self.learn_tau and self.precise:
            raise ValueError("learn_tau needs precise=False: the precise mode has no gradients "
                             "of the time constants")  # fmt: skip
        if self.learn_tau and self.backward != "eventprop":
            raise ValueError(f"learn_tau needs backward='eventprop', not {self.backward!r}")
        if self.learn_tau and not all(self.tau_min <= t <= self.tau_max
                                      for t in (self.tau_mem, self.tau_syn)):  # fmt: skip
            raise ValueError(f"learn_tau: tau_mem={self.tau_mem} and tau_syn={self.tau_syn} ms "
                             f"must lie in [tau_min, tau_max] = [{self.tau_min}, "
                             f"{self.tau_max}] ms")  # fmt: skip
        self._floats()

    @classmethod
    def of(cls, source: Any) -> LayerOptions:
        """The options held by ``source`` (any object with an attribute per option, e.g. a
        ``config.ModelConfig``), as a checked ``LayerOptions``."""
        return cls(**{f.name: getattr(source, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def build(cls, options: LayerOptions | None, changes: Mapping[str, Any], owner: str,
              output: str | None = None) -> LayerOptions:  # fmt: skip
        """``options`` (None: every option at its default) with the keyword options
        ``changes`` applied, checked.  A keyword that is no option, or one that concerns an
        ``output`` other than ``owner``'s, is a ``TypeError`` naming it and ``owner``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in changes:
            if name not in fields:
                raise TypeError(f"{owner}: unknown option {name!r}; the options are "
                                f"{', '.join(fields)} (delayprop.LayerOptions)")  # fmt: skip
            concerns = fields[name].metadata.get("output")
            if output is not None and concerns not in (None, output):
                raise TypeError(f"{owner}: option {name!r} concerns {OUTPUTS[concerns]}, which "
                                f"{owner} does not have")  # fmt: skip
        base = options if options is not None else cls()
        return cls(**{**{name: getattr(base, name) for name in fields}, **changes})


def state_options(output: str) -> tuple[str, ...]:
    """Names of the neuron and engine options that a layer with this output ("spikes" or
    "trace") uses and keeps as attributes."""
    return _STATE[output]


_STATE = {
    output: tuple(f.name for cls in (NeuronOptions, EngineOptions) for f in dataclasses.fields(cls)
                  if f.metadata.get("output") in (None, output))
    for output in OUTPUTS
}  # fmt: skip

"""Build a network for any training method by name, and move parameters between methods.

``build_model("eventprop" | "bptt" | "dcls", ...)`` returns an ``nn.Module`` whose forward takes a
``Spikes`` batch; with an LI readout it returns the voltage trace [batch, n_steps, n_out], so the
same losses, optimisers (``split_parameters``) and delay clamping (``constrain_``) serve every
method.  ``copy_parameters`` gives two networks of the same shape the same weights (and delays),
so methods can be compared on the same network, or a DCLS-trained network evaluated on the exact
event-based engine.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch import nn

from .._util import field_defaults
from ..init import Init
from ..nn import LIF, LIReadout
from ..options import LayerOptions
from ._dense import DenseNetwork
from .bptt import BPTTNetwork
from .dcls import DCLSNetwork
from .delgrad import TTFSLayer, TTFSNetwork
from .hardware import HardwareModel
from .registry import METHODS, get_method

__all__ = ["METHODS", "build_model", "projections", "copy_parameters"]


def build_model(
    method: str,
    *,
    n_in: int,
    hidden: list[int],
    n_out: int,
    options: LayerOptions | None = None,
    readout: str = "li",
    readout_max_delay: float = 0.0,
    weight_init: list[Init | None] | None = None,
    delay_init: Init | None = 0.0,
    rec_weight_init: Init | None = None,
    rec_delay_init: Init = 0.0,
    readout_delay_init: Init | None = 0.0,
    learn_weights: bool = True,
    surrogate_alpha: float = 5.0,
    hardware: HardwareModel | None = None,
    dtype: torch.dtype | None = None,
    **keywords: Any,
) -> nn.Module:
    """input -> LIF hidden layers -> readout, for ``method`` in ``METHODS``.

    * ``"eventprop"``: ``nn.Sequential(LIF, ..., LIReadout)`` (or a LIF readout for
      ``readout="lif"``), exact event-based gradients, any delays, recurrence.
    * ``"bptt"``: ``BPTTNetwork``, surrogate gradients, no delays, LI readout only.
    * ``"dcls"``: ``DCLSNetwork``, surrogate gradients, DCLS delays on feed-forward projections,
      LI readout only.
    * ``"delgrad"``: ``TTFSNetwork``, single-spike neurons with DelGrad's closed-form spike times
      (tau_mem = tau_syn or 2 tau_syn), first-spike readout (``readout="lif"``), optional
      ``hardware`` model.

    ``options`` (``LayerOptions``), changed by the keyword options (any of its fields, e.g.
    ``dt=0.5, max_delay=10.0``), are the options of every layer: the hidden layers take them
    as they are, the readout with ``readout_max_delay`` (ms) as its largest delay and without
    recurrence.  The other arguments describe the network: an eventprop network may have no
    hidden layer (``hidden=[]``); ``weight_init`` has one entry per feed-forward projection
    (input -> first hidden, ..., last hidden -> readout), None for the default N(0, 1/n_in);
    ``delay_init``, ``rec_delay_init`` and ``readout_delay_init`` are the initial delays (ms) of
    the hidden, recurrent and readout projections, and for DCLS a ``delay_init`` of None means
    uniform over [0, max_delay] (the paper's initialisation); ``surrogate_alpha`` is the
    steepness of the baselines' surrogate gradient; ``dtype`` defaults to float32 on a time
    grid and float64 otherwise.  Raises ``ValueError`` for a combination the method does not
    support, naming the option and the method for an option it does not have
    (``methods.registry``), and ``TypeError`` for a keyword that is no option.
    """
    network = {k: v for k, v in locals().items() if k in _NETWORK_DEFAULTS}  # the arguments
    spec = get_method(method)
    given = {} if options is None else dataclasses.asdict(LayerOptions.of(options))
    spec.check({**given, **keywords, **network}, _OPTION_DEFAULTS)
    options = LayerOptions.build(options, keywords, "build_model")
    if (not hidden and method != "eventprop") or any(h <= 0 for h in hidden):
        raise ValueError(f"hidden must list positive layer sizes, got {hidden}")
    if readout not in ("li", "lif"):
        raise ValueError(f"readout must be 'li' or 'lif', got {readout!r}")
    n_proj = len(hidden) + 1
    if weight_init is not None and len(weight_init) != n_proj:
        raise ValueError(
            f"weight_init needs one entry per projection ({n_proj}), got {len(weight_init)}"
        )
    if method == "eventprop":
        model = _eventprop(
            options, n_in, hidden, n_out, readout=readout, readout_max_delay=readout_max_delay,
            weight_init=weight_init or [None] * n_proj,
            delay_init=0.0 if delay_init is None else delay_init,
            rec_weight_init=rec_weight_init, rec_delay_init=rec_delay_init,
            readout_delay_init=0.0 if readout_delay_init is None else readout_delay_init,
            dtype=dtype,
        )  # fmt: skip
    elif method == "delgrad":
        model = _delgrad(
            options, n_in, hidden, n_out, readout=readout, readout_max_delay=readout_max_delay,
            delay_init=0.0 if delay_init is None else delay_init,
            readout_delay_init=0.0 if readout_delay_init is None else readout_delay_init,
            weight_init=weight_init or [None] * n_proj, hardware=hardware,
            dtype=dtype or torch.float64,
        )  # fmt: skip
    else:
        model = _dense(
            method, options, n_in, hidden, n_out, readout=readout,
            readout_max_delay=readout_max_delay, delay_init=delay_init,
            readout_delay_init=readout_delay_init, weight_init=weight_init,
            surrogate_alpha=surrogate_alpha, dtype=dtype or torch.float32,
        )  # fmt: skip
    if not learn_weights:
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.requires_grad_(False)
    return model


#: default of every network argument of ``build_model`` (an option left at it is not "set")
_NETWORK_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(build_model).parameters.items()
    if p.default is not inspect.Parameter.empty and name != "options"
}
#: default of every option of ``build_model``: the layer options and the network arguments
_OPTION_DEFAULTS = {**field_defaults(LayerOptions), **_NETWORK_DEFAULTS}


def _dense(method: str, options: LayerOptions, n_in: int, hidden: list[int], n_out: int, *,
           readout: str, readout_max_delay: float, delay_init: Init | None,
           readout_delay_init: Init | None, weight_init: list[Init | None] | None,
           surrogate_alpha: float, dtype: torch.dtype) -> DenseNetwork:  # fmt: skip
    _check_dense(method, options, readout)
    common = dict(
        dt=options.dt, tau_mem=options.tau_mem, tau_syn=options.tau_syn,
        threshold=options.threshold, weight_init=weight_init, surrogate_alpha=surrogate_alpha,
        dtype=dtype,
    )  # fmt: skip
    if method == "bptt":  # no delays: the registry rejects max_delay and readout_max_delay
        return BPTTNetwork(n_in, hidden, n_out, **common)
    return DCLSNetwork(
        n_in, hidden, n_out, max_delay=options.max_delay, readout_max_delay=readout_max_delay,
        delay_init=delay_init, readout_delay_init=readout_delay_init,
        learn_delays=options.learn_delays, **common,
    )  # fmt: skip


def _check_dense(method: str, options: LayerOptions, readout: str) -> None:
    if options.dt is None:
        raise ValueError(f"the {method} baseline is time-stepped: dt must be > 0 ms, got None")
    if readout != "li":
        raise ValueError(f"the {method} baseline has an LI (voltage) readout only, got {readout!r}")
    if options.delay_kind != "synaptic":
        raise ValueError(
            f"the {method} baseline has synaptic delays only, got {options.delay_kind!r}"
        )
    if method == "dcls" and options.delay_bound != "clamp":
        raise ValueError(
            "DCLS clamps its delays to the kernel (delay_bound='clamp'), got "
            f"{options.delay_bound!r}"
        )


def _eventprop(options: LayerOptions, n_in: int, hidden: list[int], n_out: int, *,
               readout: str, readout_max_delay: float, weight_init: list[Init | None],
               delay_init: Init, rec_weight_init: Init | None, rec_delay_init: Init,
               readout_delay_init: Init, dtype: torch.dtype | None) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = []
    size = n_in
    for k, width in enumerate(hidden):
        layers.append(LIF(size, width, options, weight_init=weight_init[k], delay_init=delay_init,
                          rec_weight_init=rec_weight_init, rec_delay_init=rec_delay_init,
                          dtype=dtype))  # fmt: skip
        size = width
    last = LIF if readout == "lif" else LIReadout
    layers.append(last(
        size, n_out, dataclasses.replace(options, max_delay=readout_max_delay, recurrent=False),
        weight_init=weight_init[-1], delay_init=readout_delay_init, dtype=dtype,
    ))  # fmt: skip
    return nn.Sequential(*layers)


def _delgrad(options: LayerOptions, n_in: int, hidden: list[int], n_out: int, *, readout: str,
             readout_max_delay: float, delay_init: Init, readout_delay_init: Init,
             weight_init: list[Init | None], hardware: HardwareModel | None,
             dtype: torch.dtype) -> TTFSNetwork:  # fmt: skip
    if readout != "lif":
        raise ValueError("DelGrad networks have a first-spike readout: set readout='lif'")
    if not options.learn_delays and (options.max_delay > 0 or readout_max_delay > 0):
        raise ValueError("DelGrad delays are always learned; use max_delay=0 for none")
    sizes = [n_in * (hardware.multiplex if hardware else 1), *hidden, n_out]
    layers = []
    for k in range(len(sizes) - 1):
        last = k == len(sizes) - 2
        layers.append(TTFSLayer(
            sizes[k], sizes[k + 1], tau_syn=options.tau_syn,
            tau_ratio=options.tau_mem / options.tau_syn, threshold=options.threshold,
            delay_kind=options.delay_kind,
            max_delay=readout_max_delay if last else options.max_delay,
            delay_init=readout_delay_init if last else delay_init,
            delay_bound=options.delay_bound, weight_init=weight_init[k], hardware=hardware,
            dtype=dtype,
        ))  # fmt: skip
    return TTFSNetwork(layers, hardware)


def projections(model: nn.Module) -> list[nn.Module]:
    """The feed-forward projections of a network built by ``build_model``, input to readout;
    each has ``weight`` [n_out, n_in] and ``delay`` (a ``Delay`` module or None)."""
    if isinstance(model, DenseNetwork):
        return list(model.projections)
    layers = [m for m in model.modules() if isinstance(m, (LIF, LIReadout))]
    if not layers:
        raise TypeError(f"{type(model).__name__} has no delayprop layers")
    return layers


@torch.no_grad()
def copy_parameters(src: nn.Module, dst: nn.Module, *, drop_delays: bool = False) -> None:
    """Give ``dst`` the feed-forward weights and delays of ``src`` (same layer sizes).

    Delays are copied in ms; a projection of ``dst`` with delays gets zeros where ``src`` has
    none.  Where ``src`` has nonzero delays that ``dst`` cannot hold, this raises unless
    ``drop_delays`` (e.g. to give a BPTT baseline the weights of a delay network).  Recurrent
    connections are not copied: if ``src`` has any, this raises.
    """
    a, b = projections(src), projections(dst)
    if len(a) != len(b):
        raise ValueError(f"networks differ in depth: {len(a)} vs {len(b)} projections")
    for k, (p, q) in enumerate(zip(a, b)):
        if getattr(p, "recurrent", False) or getattr(q, "recurrent", False):
            raise ValueError("copy_parameters copies feed-forward networks only")
        if p.weight.shape != q.weight.shape:
            raise ValueError(f"projection {k}: weight shapes {tuple(p.weight.shape)} vs "
                             f"{tuple(q.weight.shape)}")  # fmt: skip
        q.weight.copy_(p.weight)
        delays = None if p.delay is None else p.delay()
        if q.delay is None:
            if delays is not None and bool((delays != 0).any()) and not drop_delays:
                raise ValueError(f"projection {k}: the destination has no delays; pass "
                                 "drop_delays=True to copy the weights only")  # fmt: skip
            continue
        values = torch.zeros_like(q.weight) if delays is None else delays
        if q.delay.raw.shape != values.shape:
            raise ValueError(f"projection {k}: cannot copy synaptic delays into a "
                             f"{q.delay.kind} delay parametrisation")  # fmt: skip
        if float(values.max()) > q.delay.max_delay:
            raise ValueError(f"projection {k}: delays up to {float(values.max())} ms exceed the "
                             f"destination's max_delay {q.delay.max_delay} ms")  # fmt: skip
        q.delay.raw.copy_(q.delay._to_raw(values.to(q.delay.raw.dtype)))

"""Build a network for any training method by name, and move parameters between methods.

``build_model("eventprop" | "bptt" | "dcls", ...)`` returns an ``nn.Module`` whose forward takes a
``Spikes`` batch; with an LI readout it returns the voltage trace [batch, n_steps, n_out], so the
same losses, optimisers (``split_parameters``) and delay clamping (``constrain_``) serve every
method.  ``copy_parameters`` gives two networks of the same shape the same weights (and delays),
so methods can be compared on the same network, or a DCLS-trained network evaluated on the exact
event-based engine.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..init import Init
from ..nn import LIF, LIReadout
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
    dt: float | None = 1.0,
    tau_mem: float = 20.0,
    tau_syn: float = 5.0,
    threshold: float = 1.0,
    max_delay: float = 0.0,
    delay_init: Init | None = 0.0,
    weight_init: list[Init | None] | None = None,
    recurrent: bool = False,
    rec_max_delay: float = 0.0,
    rec_delay_init: Init = 0.0,
    rec_weight_init: Init | None = None,
    readout: str = "li",
    readout_max_delay: float = 0.0,
    readout_delay_init: Init | None = 0.0,
    delay_bound: str = "clamp",
    delay_kind: str = "synaptic",
    learn_delays: bool = True,
    learn_weights: bool = True,
    sample_dt: float | None = 1.0,
    max_spikes: int | None = None,
    refractory: float = 0.0,
    surrogate_alpha: float = 5.0,
    hardware: HardwareModel | None = None,
    dtype: torch.dtype | None = None,
    precise: bool = False,
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

    Times in ms.  ``delay_kind``: synaptic, axonal or dendritic (eventprop, delgrad); an eventprop
    network may have no hidden layer (``hidden=[]``); ``sample_dt`` is the readout sampling
    interval of the exact engine (``dt=None``); ``max_spikes`` and ``refractory`` (ms) apply to
    every LIF layer of an eventprop network (exact engine); ``dtype`` defaults to float32 on a
    time grid and float64 otherwise.  ``weight_init`` has one entry per feed-forward
    projection (input -> first hidden, ..., last hidden -> readout), None for the default
    N(0, 1/n_in).  For DCLS a ``delay_init`` of None means uniform over [0, max_delay] (the
    paper's initialisation).  ``precise`` selects the precise mode of the time-stepped engine
    (eventprop).  Raises ``ValueError`` for a combination the method does not support, naming
    the option and the method for an option it does not have (``methods.registry``).
    """
    options = {k: v for k, v in locals().items() if k in _OPTION_DEFAULTS}  # the arguments
    spec = get_method(method)
    spec.check(options, _OPTION_DEFAULTS)
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
            n_in, hidden, n_out, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
            max_delay=max_delay, delay_init=0.0 if delay_init is None else delay_init,
            weight_init=weight_init or [None] * n_proj, recurrent=recurrent,
            rec_max_delay=rec_max_delay, rec_delay_init=rec_delay_init,
            rec_weight_init=rec_weight_init, readout=readout, readout_max_delay=readout_max_delay,
            readout_delay_init=0.0 if readout_delay_init is None else readout_delay_init,
            delay_bound=delay_bound, delay_kind=delay_kind, learn_delays=learn_delays,
            sample_dt=sample_dt, max_spikes=max_spikes, refractory=refractory, dtype=dtype,
            precise=precise,
        )  # fmt: skip
    elif method == "delgrad":
        model = _delgrad(
            n_in, hidden, n_out, tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
            readout=readout, max_delay=max_delay,
            delay_init=0.0 if delay_init is None else delay_init,
            readout_max_delay=readout_max_delay,
            readout_delay_init=0.0 if readout_delay_init is None else readout_delay_init,
            delay_kind=delay_kind, delay_bound=delay_bound, learn_delays=learn_delays,
            weight_init=weight_init or [None] * n_proj, hardware=hardware,
            dtype=dtype or torch.float64,
        )  # fmt: skip
    else:
        model = _dense(
            method, n_in, hidden, n_out, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn,
            threshold=threshold, max_delay=max_delay, delay_init=delay_init,
            readout_max_delay=readout_max_delay, readout_delay_init=readout_delay_init,
            weight_init=weight_init, readout=readout,
            delay_bound=delay_bound, delay_kind=delay_kind, learn_delays=learn_delays,
            surrogate_alpha=surrogate_alpha, dtype=dtype or torch.float32,
        )  # fmt: skip
    if not learn_weights:
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.requires_grad_(False)
    return model


#: default of every option of ``build_model`` (an option left at it is not "set")
_OPTION_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(build_model).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def _dense(method, n_in, hidden, n_out, *, dt, tau_mem, tau_syn, threshold, max_delay,
           delay_init, readout_max_delay, readout_delay_init, weight_init, readout,
           delay_bound, delay_kind, learn_delays, surrogate_alpha,
           dtype) -> DenseNetwork:  # fmt: skip
    _check_dense(method, dt=dt, readout=readout, delay_bound=delay_bound)
    if delay_kind != "synaptic":
        raise ValueError(f"the {method} baseline has synaptic delays only, got {delay_kind!r}")
    common = dict(
        dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold, weight_init=weight_init,
        surrogate_alpha=surrogate_alpha, dtype=dtype,
    )  # fmt: skip
    if method == "bptt":  # no delays: the registry rejects max_delay and readout_max_delay
        return BPTTNetwork(n_in, hidden, n_out, **common)
    return DCLSNetwork(
        n_in, hidden, n_out, max_delay=max_delay, readout_max_delay=readout_max_delay,
        delay_init=delay_init, readout_delay_init=readout_delay_init, learn_delays=learn_delays,
        **common,
    )  # fmt: skip


def _check_dense(method: str, *, dt, readout: str, delay_bound: str) -> None:
    if dt is None or not dt > 0:
        raise ValueError(f"the {method} baseline is time-stepped: dt must be > 0 ms, got {dt}")
    if readout != "li":
        raise ValueError(f"the {method} baseline has an LI (voltage) readout only, got {readout!r}")
    if method == "dcls" and delay_bound != "clamp":
        raise ValueError(
            f"DCLS clamps its delays to the kernel (delay_bound='clamp'), got {delay_bound!r}"
        )


def _delay_kind(kind: str, max_delay: float) -> str | None:
    return kind if max_delay > 0 else None


def _eventprop(n_in, hidden, n_out, *, weight_init, readout, readout_max_delay,
               readout_delay_init, delay_kind, sample_dt, max_spikes, refractory,
               **kw) -> nn.Sequential:  # fmt: skip
    common = {k: kw[k] for k in ("dt", "tau_mem", "tau_syn", "delay_bound", "learn_delays",
                                 "dtype", "precise")}  # fmt: skip
    spiking = {"threshold": kw["threshold"], "max_spikes": max_spikes, "refractory": refractory}
    layers: list[nn.Module] = []
    size = n_in
    for k, width in enumerate(hidden):
        layers.append(LIF(
            size, width, **spiking, max_delay=kw["max_delay"],
            delay=_delay_kind(delay_kind, kw["max_delay"]), delay_init=kw["delay_init"],
            weight_init=weight_init[k], recurrent=kw["recurrent"],
            rec_max_delay=kw["rec_max_delay"], rec_delay_init=kw["rec_delay_init"],
            rec_weight_init=kw["rec_weight_init"], **common,
        ))  # fmt: skip
        size = width
    out = dict(max_delay=readout_max_delay, delay=_delay_kind(delay_kind, readout_max_delay),
               delay_init=readout_delay_init, weight_init=weight_init[-1], **common)  # fmt: skip
    if readout == "lif":
        layers.append(LIF(size, n_out, **spiking, **out))
    else:
        extra = {} if kw["dt"] is not None else {"sample_dt": sample_dt or 1.0}
        layers.append(LIReadout(size, n_out, **out, **extra))
    return nn.Sequential(*layers)


def _delgrad(n_in, hidden, n_out, *, tau_mem, tau_syn, threshold, readout, max_delay,
             delay_init, readout_max_delay, readout_delay_init, delay_kind, delay_bound,
             learn_delays, weight_init, hardware, dtype) -> TTFSNetwork:  # fmt: skip
    if readout != "lif":
        raise ValueError("DelGrad networks have a first-spike readout: set readout='lif'")
    if not learn_delays and (max_delay > 0 or readout_max_delay > 0):
        raise ValueError("DelGrad delays are always learned; use max_delay=0 for none")
    sizes = [n_in * (hardware.multiplex if hardware else 1), *hidden, n_out]
    layers = []
    for k in range(len(sizes) - 1):
        last = k == len(sizes) - 2
        md = readout_max_delay if last else max_delay
        layers.append(TTFSLayer(
            sizes[k], sizes[k + 1], tau_syn=tau_syn, tau_ratio=tau_mem / tau_syn,
            threshold=threshold, delay=_delay_kind(delay_kind, md), max_delay=md,
            delay_init=readout_delay_init if last else delay_init, delay_bound=delay_bound,
            weight_init=weight_init[k], hardware=hardware, dtype=dtype,
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

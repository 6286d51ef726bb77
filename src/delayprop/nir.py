"""NIR export and import with delays (the Neuromorphic Intermediate Representation, ``nir``).

``export(model, path)`` writes a network of ``LIF`` / ``LIReadout`` layers (``nn.Sequential`` or
a single layer) as a NIR graph; ``load(path)`` builds the same network back.  Weights and
delays are written as the forward pass uses them: after a hardware constraint
(``delayprop.hardware``) they are the quantised values, so a constrained model exports what the
target runs.

Parameter mapping (derivation in docs/deploy.md).  delayprop: tau_mem dV/dt = -V + I,
tau_syn dI/dt = -I, I jumps by w at each arrival.  NIR's CubaLIF: tau_syn dI/dt = -I + w_in S,
tau_mem dV/dt = (v_leak - V) + r I, with S a sum of Dirac deltas (unit area per spike), so one
spike makes I jump by w_in / tau_syn times the weight of the ``Linear`` in front:

=====================  =======================================================
delayprop              NIR
=====================  =======================================================
LIF layer              ``CubaLIF``: tau_syn, tau_mem, r = 1, v_leak = 0,
                       v_threshold = threshold, v_reset = 0, w_in = tau_syn
LIReadout              ``CubaLI``: tau_syn, tau_mem, r = 1, v_leak = 0, w_in = tau_syn
weights W [n_out, n_in]  ``Linear`` (weight = W)
axonal delays [n_in]   ``Delay`` before the ``Linear``
dendritic delays       ``Delay`` after the ``Linear``
synaptic delays        fan-out ``Linear`` (one-hot [n_in n_out, n_in]), ``Delay`` with
                       one channel per synapse, summing ``Linear`` [n_out, n_in n_out]
                       holding the weights (exact: every synapse keeps its delay)
recurrence             the same path from the layer's neuron node back to itself
=====================  =======================================================

The neuron nodes hold tau_syn, tau_mem per neuron (arrays [n_out]): the layer's pair in every
entry, or each neuron's own with learned time constants per neuron (``tau_per_neuron``).

Node names: ``layer{k}.linear``, ``layer{k}.delay``, ``layer{k}.fanout``, ``layer{k}.neurons``,
and ``layer{k}.rec.*`` for the recurrent path.  NIR has no time unit: times (tau, w_in, delays)
are written in ms and the graph's metadata says so (``time_unit: ms``), together with what NIR
cannot carry (time step, delay bounds, delay parametrisation, engine settings; in ms whatever
the nodes' unit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ._util import optional_import
from .nn import LIF, LIReadout
from .options import LayerOptions

if TYPE_CHECKING:
    import nir as nir_types

__all__ = ["export", "load", "to_graph", "from_graph", "scale_time", "TIME_UNIT"]

#: the time unit of every duration delayprop writes into a NIR graph
TIME_UNIT = "ms"
_FORMAT = "delayprop-nir-1"


def _nir():
    return optional_import("nir", "nir", "NIR export and import")


def _array(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


def _layers(model: nn.Module) -> list[LIF | LIReadout]:
    layers = [model] if isinstance(model, (LIF, LIReadout)) else list(model.children())
    if not layers or not all(isinstance(m, (LIF, LIReadout)) for m in layers):
        raise ValueError(
            "NIR export needs an nn.Sequential of delayprop LIF / LIReadout layers (or one "
            f"layer); got {type(model).__name__} with children "
            f"{[type(m).__name__ for m in layers]}"
        )
    if any(isinstance(m, LIReadout) for m in layers[:-1]):
        raise ValueError("an LIReadout can only be the last layer of an exported network")
    if any(isinstance(m, LIF) and m.tau_adapt is not None for m in layers):
        raise ValueError("NIR has no adaptive LIF neuron: a layer with tau_adapt (adaptation) "
                         "cannot be exported")  # fmt: skip
    for a, b in zip(layers, layers[1:]):
        if a.n_out != b.n_in:
            raise ValueError(f"layer sizes do not chain: {a.n_out} outputs into {b.n_in} inputs")
    return layers


def _projection_nodes(prefix: str, weight: Tensor, delay: Tensor | None, kind: str | None,
                      nir) -> tuple[dict[str, Any], list[tuple[str, str]], str, str]:  # fmt: skip
    """Nodes and inner edges of one weighted, delayed projection; (nodes, edges, first, last)."""
    n_out, n_in = weight.shape
    w = _array(weight)
    lin, dly = f"{prefix}.linear", f"{prefix}.delay"
    if delay is None or kind is None:
        return {lin: nir.Linear(weight=w)}, [], lin, lin
    d = _array(delay)
    if kind == "axonal":
        nodes = {dly: nir.Delay(delay=d[0].copy()), lin: nir.Linear(weight=w)}
        return nodes, [(dly, lin)], dly, lin
    if kind == "dendritic":
        nodes = {lin: nir.Linear(weight=w), dly: nir.Delay(delay=d[:, 0].copy())}
        return nodes, [(lin, dly)], lin, dly
    # synaptic: channel c = j * n_in + i carries synapse i -> j
    fan = f"{prefix}.fanout"
    fanout = np.zeros((n_out * n_in, n_in), dtype=w.dtype)
    fanout[np.arange(n_out * n_in), np.tile(np.arange(n_in), n_out)] = 1
    summing = np.zeros((n_out, n_out * n_in), dtype=w.dtype)
    summing[np.repeat(np.arange(n_out), n_in), np.arange(n_out * n_in)] = w.reshape(-1)
    nodes = {fan: nir.Linear(weight=fanout), dly: nir.Delay(delay=d.reshape(-1).copy()),
             lin: nir.Linear(weight=summing)}  # fmt: skip
    return nodes, [(fan, dly), (dly, lin)], fan, lin


def _delay_kind(module) -> str | None:
    return None if module is None else module.kind


def _kinds(meta: dict[str, Any], **keys: str) -> dict[str, str]:
    """The delay-kind options (name -> metadata key) of a layer's metadata; a projection
    without delays (kind None) takes the default."""
    return {name: meta[key] for name, key in keys.items() if meta.get(key) is not None}


def _neuron_node(layer: LIF | LIReadout, nir, dtype) -> Any:
    n = layer.n_out
    full = lambda v: np.full(n, v, dtype=dtype)  # noqa: E731
    tau_mem, tau_syn = layer.neuron_time_constants().numpy().astype(dtype)  # per neuron, ms
    common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=full(1.0), v_leak=full(0.0),
                  w_in=tau_syn.copy())  # fmt: skip
    if isinstance(layer, LIReadout):
        return nir.CubaLI(**common)
    return nir.CubaLIF(v_threshold=full(layer.threshold), v_reset=full(0.0), **common)


def _layer_meta(layer: LIF | LIReadout) -> dict[str, Any]:
    meta = {"type": type(layer).__name__, "n_in": layer.n_in, "n_out": layer.n_out,
            "dt": layer.dt, "precise": layer.precise, "max_delay": layer.max_delay,
            "delay": _delay_kind(layer.delay), "delay_bound": _bound(layer.delay),
            "dtype": str(layer.weight.dtype).removeprefix("torch.")}  # fmt: skip
    if isinstance(layer, LIF):
        meta.update(recurrent=layer.recurrent, rec_max_delay=layer.rec_max_delay,
                    rec_delay=_delay_kind(layer.rec_delay), refractory=layer.refractory,
                    max_spikes=layer.max_spikes)  # fmt: skip
    else:
        meta.update(sample_dt=layer.sample_dt)
    return meta


def _bound(module) -> str:
    return "clamp" if module is None else module.bound


@torch.no_grad()
def to_graph(model: nn.Module) -> nir_types.NIRGraph:
    """The NIR graph of ``model`` (see the module docstring for the mapping)."""
    nir = _nir()
    layers = _layers(model)
    dtype = _array(layers[0].weight).dtype
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([layers[0].n_in])})}
    edges: list[tuple[str, str]] = []
    source = "input"
    for k, layer in enumerate(layers):
        weight, delay = layer.effective_parameters()
        proj, inner, first, last = _projection_nodes(f"layer{k}", weight, delay,
                                                     _delay_kind(layer.delay), nir)  # fmt: skip
        neurons = f"layer{k}.neurons"
        nodes.update(proj)
        nodes[neurons] = _neuron_node(layer, nir, dtype)
        edges += [(source, first), *inner, (last, neurons)]
        if isinstance(layer, LIF) and layer.recurrent:
            rec_w, rec_d = layer._constrained(layer.rec_weight, layer.rec_delay)
            rec_kind = _delay_kind(layer.rec_delay)
            proj, inner, first, last = _projection_nodes(f"layer{k}.rec", rec_w, rec_d,
                                                         rec_kind, nir)  # fmt: skip
            nodes.update(proj)
            edges += [(neurons, first), *inner, (last, neurons)]
        source = neurons
    nodes["output"] = nir.Output(output_type={"output": np.array([layers[-1].n_out])})
    edges.append((source, "output"))
    meta = {"format": _FORMAT, "layers": [_layer_meta(m) for m in layers]}
    metadata = {"time_unit": TIME_UNIT, "delayprop": json.dumps(meta)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export(model: nn.Module, path: str | Path) -> nir_types.NIRGraph:
    """Write ``model`` to the NIR file ``path`` (HDF5); returns the graph."""
    graph = to_graph(model)
    _nir().write(str(path), graph)
    return graph


# ------------------------------------------------------------------------------------ import
_TIME_FIELDS = {"CubaLIF": ("tau_syn", "tau_mem", "w_in"), "CubaLI": ("tau_syn", "tau_mem", "w_in"),
                "Delay": ("delay",)}  # fmt: skip


def scale_time(graph: nir_types.NIRGraph, factor: float) -> nir_types.NIRGraph:
    """A copy of ``graph`` with every duration multiplied by ``factor`` (time constants,
    CubaLI(F) ``w_in``, which has the unit of time since S is a rate, and delays), e.g.
    ``1 / dt`` to express a graph written in ms in time steps of dt ms."""
    if not factor > 0:
        raise ValueError(f"time scale factor must be > 0, got {factor}")
    nir = _nir()
    nodes = {}
    for name, node in graph.nodes.items():
        fields = _TIME_FIELDS.get(type(node).__name__, ())
        if isinstance(node, nir.NIRGraph):
            node = scale_time(node, factor)
        elif fields:
            node = _replace(node, {f: np.asarray(getattr(node, f)) * factor for f in fields})
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))


def _replace(node, changes: dict[str, Any]):
    kwargs = {k: getattr(node, k) for k in node.__dataclass_fields__
              if k not in ("input_type", "output_type", "metadata")}  # fmt: skip
    kwargs.update(changes)
    return type(node)(**kwargs)


def _metadata(graph) -> dict[str, Any]:
    raw = graph.metadata.get("delayprop") if isinstance(graph.metadata, dict) else None
    if raw is None:
        raise ValueError(
            "this NIR graph was not written by delayprop.nir.export (no 'delayprop' metadata); "
            "only delayprop's own layer structure can be imported"
        )
    meta = json.loads(raw if isinstance(raw, str) else raw.decode())
    if meta.get("format") != _FORMAT:
        raise ValueError(f"unsupported delayprop NIR format {meta.get('format')!r}")
    return meta


def _time_scale(graph, time_scale: float | None) -> float:
    if time_scale is not None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0 ms per file time unit, got {time_scale}")
        return float(time_scale)
    unit = graph.metadata.get("time_unit")
    unit = unit.decode() if isinstance(unit, bytes) else unit
    if unit != TIME_UNIT:
        raise ValueError(
            f"the graph's time unit is {unit!r}; pass time_scale (ms per time unit of the file)"
        )
    return 1.0


def _check_neurons(node, name: str, scale: float, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(tau_mem, tau_syn) of every neuron of a neuron node, [n_out] ms each."""
    tau_syn = np.broadcast_to(np.asarray(node.tau_syn, dtype=np.float64) * scale, (n_out,))
    tau_mem = np.broadcast_to(np.asarray(node.tau_mem, dtype=np.float64) * scale, (n_out,))
    w_in = np.asarray(node.w_in) * scale
    if not (np.all(np.asarray(node.r) == 1) and np.all(np.asarray(node.v_leak) == 0)):
        raise ValueError(f"{name}: delayprop needs r = 1 and v_leak = 0")
    if not np.allclose(w_in, tau_syn, rtol=1e-12, atol=0):
        raise ValueError(f"{name}: w_in must equal tau_syn (a spike makes I jump by the weight)")
    return tau_mem, tau_syn


def _time_constant_options(name: str, lm: dict[str, Any], tau_mem: np.ndarray,
                           tau_syn: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """The options of a layer with these time constants per neuron (ms): one pair for the layer
    where every neuron has the same, else learned time constants per neuron (``tau_per_neuron``,
    exact engine only), in bounds that hold them."""
    common = dict(tau_mem=float(tau_mem[0]), tau_syn=float(tau_syn[0]))
    if np.all(tau_mem == tau_mem[0]) and np.all(tau_syn == tau_syn[0]):
        return common
    if lm["dt"] is not None:
        raise ValueError(f"{name}: its neurons have different time constants, which delayprop "
                         f"runs only on the exact engine (tau_per_neuron), but the layer was "
                         f"exported with the time grid dt={lm['dt']} ms, which takes one "
                         "(tau_mem, tau_syn) per layer")  # fmt: skip
    both = np.concatenate([tau_mem, tau_syn])
    return dict(common, learn_tau=True, tau_per_neuron=True,
                tau_min=min(LayerOptions.tau_min, float(both.min())),
                tau_max=max(LayerOptions.tau_max, float(both.max())))  # fmt: skip


def _read_projection(graph, prefix: str, kind: str | None, n_out: int, n_in: int, scale: float
                     ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    lin = graph.nodes[f"{prefix}.linear"].weight
    if kind is None:
        return np.asarray(lin), None
    d = np.asarray(graph.nodes[f"{prefix}.delay"].delay) * scale
    if kind == "synaptic":
        return np.asarray(lin)[np.repeat(np.arange(n_out), n_in), np.arange(n_out * n_in)].reshape(
            n_out, n_in), d.reshape(n_out, n_in)  # fmt: skip
    return np.asarray(lin), d


def _set(param: Tensor, values: np.ndarray) -> None:
    param.copy_(torch.from_numpy(np.ascontiguousarray(values)).to(param.dtype))


def from_graph(graph: nir_types.NIRGraph, time_scale: float | None = None) -> nn.Sequential:
    """The delayprop network of a graph written by ``export``; ``time_scale``: ms per time
    unit of the graph's nodes (default: from its ``time_unit`` metadata, which must be ms).
    The settings NIR cannot carry (dt, delay bounds, ...) are in the ``delayprop`` metadata,
    always in ms.

    Delays come back clamp-bounded (the parameter is the delay in ms), whatever bound they
    were trained with: the file holds delay values, and this keeps them bit for bit.  A layer
    whose neurons have different time constants comes back with learned time constants per
    neuron (``tau_per_neuron``; exact engine only, else ``ValueError``); one whose neurons share
    them, with that pair as its ``tau_mem``, ``tau_syn``."""
    meta = _metadata(graph)
    scale = _time_scale(graph, time_scale)
    layers: list[nn.Module] = []
    for k, lm in enumerate(meta["layers"]):
        name = f"layer{k}.neurons"
        node = graph.nodes[name]
        tau_mem, tau_syn = _check_neurons(node, name, scale, lm["n_out"])
        taus = _time_constant_options(name, lm, tau_mem, tau_syn)
        common = dict(**taus, dt=lm["dt"], max_delay=lm["max_delay"],
                      dtype=getattr(torch, lm["dtype"]), precise=lm.get("precise", False),
                      **_kinds(lm, delay_kind="delay", rec_delay_kind="rec_delay"))  # fmt: skip
        if lm["type"] == "LIReadout":
            layer = LIReadout(lm["n_in"], lm["n_out"], **common, sample_dt=lm["sample_dt"])
        else:
            layer = LIF(lm["n_in"], lm["n_out"], **common,
                        threshold=float(np.asarray(node.v_threshold).flat[0]),
                        recurrent=lm["recurrent"], rec_max_delay=lm["rec_max_delay"],
                        refractory=lm["refractory"], max_spikes=lm["max_spikes"])  # fmt: skip
        with torch.no_grad():
            w, d = _read_projection(graph, f"layer{k}", lm["delay"], lm["n_out"], lm["n_in"],
                                    scale)  # fmt: skip
            _set(layer.weight, w)
            if d is not None:
                _set_delays(layer.delay, d)
            if "tau_per_neuron" in taus:
                _set(layer.time_constants, np.stack([tau_mem, tau_syn]))
            if isinstance(layer, LIF) and layer.recurrent:
                w, d = _read_projection(graph, f"layer{k}.rec", lm["rec_delay"], lm["n_out"],
                                        lm["n_out"], scale)  # fmt: skip
                _set(layer.rec_weight, w)
                if d is not None:
                    _set_delays(layer.rec_delay, d)
        layers.append(layer)
    return nn.Sequential(*layers)


def _set_delays(module, values: np.ndarray) -> None:
    """Delay parameter from delays in ms, in the parametrisation's own shape."""
    values = torch.from_numpy(np.ascontiguousarray(values)).to(module.raw.dtype)
    if values.numel() and float(values.max()) > module.max_delay:
        raise ValueError(
            f"a delay of {float(values.max())} ms exceeds the layer's max_delay "
            f"{module.max_delay} ms"
        )
    module.raw.copy_(module._to_raw(values))


def load(path: str | Path, time_scale: float | None = None) -> nn.Sequential:
    """Read a NIR file written by ``export`` back into a delayprop network (see ``from_graph``)."""
    return from_graph(_nir().read(str(path)), time_scale)

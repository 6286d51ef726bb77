"""Run a NIR graph written by ``delayprop.nir.export`` in Norse (a second simulator).

Norse 1.1.0 imports NIR through nirtorch: ``Linear``, ``Affine`` and ``CubaLIF`` become its own
modules, executed one time step per call by nirtorch's graph executor.  Norse has no module for
NIR's ``Delay`` and ``CubaLI`` nodes; this module supplies them: ``RingDelay`` (a ring buffer of
whole time steps) and ``NorseCubaLI`` (Norse's own ``LIBoxCell`` twice: synaptic current, then
membrane voltage, as Norse builds its CubaLIF without the threshold).

Time: the graph is rescaled to time steps of ``dt`` ms (``delayprop.nir.scale_time``) and Norse
runs with dt = 1, so that a spike (one step with value 1, i.e. unit area per step) is the
Dirac delta of NIR's equations: it makes I jump by exactly the weight of the ``Linear`` in front.
Norse itself feeds spikes as values 1 with its own dt, which scales every jump by dt unless the
time unit is one step.  Delays must be whole numbers of steps.

Conventions of the two simulators within one step n (delayprop: ``kernels/cpu.py``):

* delayprop: V_n = alpha V_{n-1} + c I_{n-1} and I_n = beta I_{n-1} (the exact one-step
  propagator), spike if V_n >= threshold, V_n <- 0, then I_n += the arrivals of step n;
* Norse: I_n = I_{n-1} + (w_in x_n - I_{n-1}) / tau_syn (Euler, the input of step n included),
  V_n = V_{n-1} + (r I_n - V_{n-1}) / tau_mem (Euler, the new current), spike if
  V_n > threshold, V_n <- 0.  A cycle in the graph reads the previous step's output.

So Norse's voltage of layer k at step n corresponds to delayprop's at step n + k (each layer
sees its input one step earlier in Norse), recurrent arrivals line up exactly (the cycle's
one-step latency cancels that step), and the remaining differences are Euler against the exact
propagator: errors of first order in dt / tau.

``to_norse(..., match_propagator=True)`` removes that last difference, to check everything else
exactly: in steps, Norse's CubaLIF is I_n = (1 - 1/tau_syn) I_{n-1} + (w_in / tau_syn) x_n,
V_n = (1 - 1/tau_mem) V_{n-1} + (r / tau_mem) I_n, and delayprop's is V_{n+1} = alpha V_n +
c I_n, I_{n+1} = beta I_n + a_{n+1}; with tau_syn = 1 / (1 - beta), w_in = tau_syn,
tau_mem = 1 / (1 - alpha), r = c tau_mem both are the same recursion (Norse one step ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .nir import scale_time, to_graph
from .nn import LIF, LIReadout
from .spikes import Spikes

__all__ = ["RingDelay", "NorseCubaLI", "to_norse", "run_norse", "compare_with_norse", "Comparison"]


class RingDelay(nn.Module):
    """NIR ``Delay`` on a time grid: y_n = x_{n - d} per channel (zeros before the start).

    Args:
        steps: integer delay of every channel, time steps, shape [channels].
    """

    def __init__(self, steps: np.ndarray) -> None:
        super().__init__()
        steps = np.asarray(steps)
        if steps.ndim != 1 or (steps.size and steps.min() < 0):
            raise ValueError("delays must be a 1-d array of non-negative steps")
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))
        self.length = int(steps.max()) + 1 if steps.size else 1

    def forward(self, x: Tensor, state: tuple[Tensor, int] | None = None
                ) -> tuple[Tensor, tuple[Tensor, int]]:  # fmt: skip
        """x [batch, channels] at step n -> (x delayed, (buffer [length, batch, channels], n))."""
        if state is None:
            buf = x.new_zeros(self.length, *x.shape)
            n = 0
        else:
            buf, n = state
        buf[n % self.length] = x
        rows = (n - self.steps) % self.length  # [channels]
        y = buf[rows, :, torch.arange(x.shape[-1], device=x.device)].transpose(0, 1)
        y = torch.where(self.steps <= n, y, torch.zeros_like(y))
        return y, (buf, n + 1)


class NorseCubaLI(nn.Module):
    """NIR ``CubaLI`` from Norse's ``LIBoxCell``: current, then voltage, each an Euler step."""

    def __init__(self, node: Any, dt: float) -> None:
        super().__init__()
        from norse.torch.module.leaky_integrator_box import LIBoxCell, LIBoxParameters

        def t(v) -> Tensor:
            return torch.as_tensor(np.asarray(v), dtype=torch.float32)

        self.w_in, self.r = t(node.w_in), t(node.r)
        self.synapse = LIBoxCell(LIBoxParameters(tau_mem_inv=1 / t(node.tau_syn),
                                                 v_leak=torch.zeros_like(t(node.v_leak))), dt=dt)
        self.membrane = LIBoxCell(LIBoxParameters(tau_mem_inv=1 / t(node.tau_mem),
                                                  v_leak=t(node.v_leak)), dt=dt)  # fmt: skip

    def forward(self, x: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        syn_state, mem_state = (None, None) if state is None else state
        i, syn_state = self.synapse(self.w_in * x, syn_state)
        v, mem_state = self.membrane(self.r * i, mem_state)
        return v, (syn_state, mem_state)


def _steps_of(delay: np.ndarray) -> np.ndarray:
    steps = np.rint(delay)
    if not np.allclose(steps, delay, rtol=0, atol=1e-6):
        raise ValueError(
            "Norse runs delays as whole time steps; this graph has delays that are not "
            "multiples of dt (train or round with an integer-delay hardware profile)"
        )
    return steps.astype(np.int64)


def _matched(graph: Any) -> Any:
    """Graph (durations in steps) whose Euler step equals the exact one-step propagator."""
    import nir

    from .kernels import grid_constants
    from .nir import _replace

    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            tau_syn, tau_mem = np.asarray(node.tau_syn), np.asarray(node.tau_mem)
            if not (np.all(tau_syn == tau_syn.flat[0]) and np.all(tau_mem == tau_mem.flat[0])):
                raise ValueError(f"{name}: matching the propagator needs one tau per node")
            c = grid_constants(1.0, float(tau_mem.flat[0]), float(tau_syn.flat[0]), 1.0)
            ts, tm = 1.0 / (1.0 - c.beta), 1.0 / (1.0 - c.alpha)
            jump = np.asarray(node.w_in) / tau_syn  # 1 for delayprop's graphs
            r = np.asarray(node.r) * c.c_vi * tm
            node = _replace(node, {"tau_syn": np.full_like(tau_syn, ts), "w_in": jump * ts,
                                   "tau_mem": np.full_like(tau_mem, tm), "r": r})  # fmt: skip
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))


def to_norse(graph: Any, dt: float, match_propagator: bool = False) -> nn.Module:
    """Norse module for a delayprop NIR ``graph`` (durations in ms) on a grid of ``dt`` ms.

    ``match_propagator``: replace each neuron node's constants by those whose Euler step is
    delayprop's exact one-step propagator (see the module docstring), to isolate the mapping
    from the integrator.

    The module takes one step's input [batch, n_in] and a state (None at the start) and returns
    (readout output [batch, n_out], state); ``run_norse`` loops it over a raster.
    """
    import nir
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    steps_graph = scale_time(graph, 1.0 / dt)
    if match_propagator:
        steps_graph = _matched(steps_graph)

    def node_map(node: Any) -> nn.Module | None:
        if isinstance(node, nir.Delay):
            return RingDelay(_steps_of(np.asarray(node.delay)))
        if isinstance(node, nir.CubaLI):
            return NorseCubaLI(node, dt=1.0)
        return _import_norse_module(node, dt=1.0)

    return nirtorch.load(steps_graph, node_map)


@torch.no_grad()
def run_norse(module: nn.Module, raster: Tensor, record: tuple[str, ...] = ()
              ) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
    """Run ``module`` (from ``to_norse``) over ``raster`` [batch, steps, n_in] of 0/1 spikes.

    Returns the output of every step [batch, steps, n_out] and, for each node name in
    ``record`` (e.g. ``"layer0.neurons"``), that node's output [batch, steps, n].
    """
    state, outputs = None, []
    recorded: dict[str, list[Tensor]] = {name: [] for name in record}
    for n in range(raster.shape[1]):
        out, state = module(raster[:, n].float(), state)
        outputs.append(out)
        for name in record:
            recorded[name].append(state.cache[name.replace(".", "_")])
    return torch.stack(outputs, 1), {k: torch.stack(v, 1) for k, v in recorded.items()}


@dataclass
class Comparison:
    """delayprop and Norse on the same input, aligned step for step (delayprop's step n + k
    against Norse's step n for layer k = 1, 2, ...; the steps both simulated).

    ``ours[k]``, ``norse[k]``: spike rasters of LIF layer k [batch, steps, n] (steps shortened
    by the alignment); ``trace``, ``norse_trace``: the readout voltage [batch, steps, n_out].
    """

    ours: list[Tensor]
    norse: list[Tensor]
    trace: Tensor
    norse_trace: Tensor

    def count_differences(self, k: int) -> Tensor:
        """|spike count difference| per sample and neuron of layer k [batch, n]."""
        return (self.ours[k].sum(1) - self.norse[k].sum(1)).abs()

    def same_step_fraction(self, k: int) -> float:
        """Fraction of delayprop's spikes of layer k that Norse has at the aligned step."""
        return float((self.ours[k] * self.norse[k]).sum() / self.ours[k].sum().clamp(min=1))

    def trace_error(self) -> float:
        """max |V_delayprop - V_Norse| / max |V_delayprop| over the readout trace."""
        return float((self.trace - self.norse_trace).abs().max() / self.trace.abs().max())


def compare_with_norse(model: nn.Module, raster: Tensor, dt: float,
                       match_propagator: bool = False) -> Comparison:  # fmt: skip
    """Run ``model`` (LIF layers, then an LIReadout) in delayprop's time-stepped engine and,
    exported to NIR, in Norse, on ``raster`` [batch, steps, n_in] of 0/1 spikes of step
    ``dt`` ms, and align the results (see ``Comparison``)."""
    layers = list(model.children())
    if not (layers and isinstance(layers[-1], LIReadout)
            and all(isinstance(m, LIF) for m in layers[:-1])):  # fmt: skip
        raise ValueError("compare_with_norse needs an nn.Sequential of LIF layers and an "
                         "LIReadout at the end")  # fmt: skip
    x = Spikes.from_raster(raster, dt, dtype=layers[0].weight.dtype)
    steps = raster.shape[1]
    ours = []
    with torch.no_grad():
        for layer in layers[:-1]:
            x = layer(x)
            ours.append(x.to_raster(dt, steps))
        trace = layers[-1](x).detach().float()
    names = [f"layer{k}.neurons" for k in range(len(layers) - 1)]
    out, rec = run_norse(to_norse(to_graph(model), dt, match_propagator), raster, names)
    depth = len(layers)

    def align(a: Tensor, b: Tensor, k: int) -> tuple[Tensor, Tensor]:
        return a[:, k:], b[:, : b.shape[1] - k]

    pairs = [align(a, rec[n], k + 1) for k, (a, n) in enumerate(zip(ours, names))]
    trace, norse_trace = align(trace, out, depth)
    return Comparison([a for a, _ in pairs], [b for _, b in pairs], trace, norse_trace)

"""Scalar formulas of the LIF neuron and of its adjoint, each written once for every engine.

The neuron (docs/methods.md; times in ms, V and I in the units of the threshold)::

    tau_mem dV/dt = -V + I,   tau_syn dI/dt = -I,   spike when V reaches the threshold, V <- 0

and its adjoint (lambda_V, lambda_I), which runs backward in time.  The functions below are
what the kernels of both engines compute at each event; the kernels only decide *when* an event
happens and where its inputs and results are stored:

* ``state_step``, ``crossing_slope``: one step of the time grid, and tau_mem dV/dt at a
  threshold crossing found on the grid;
* ``adjoint_step``: one step of the transposed propagator on the grid;
* ``adjoint_jump``: the jump of lambda_V at a spike (both engines);
* ``arrival_read``: the gradients an arrival carries (both engines);
* ``readout_drive``: what a loss on V (or I) at a time adds to lambda_V (or lambda_I);
* ``tau_adjoint_step``: one grid step of the time constants' auxiliary adjoints;
* ``tau_arrival_read``: the time-constant gradients an arrival carries (both engines);
* ``refractory_end_read``: what the end of a refractory period adds to dL/dt of the spike that
  started it (both engines); ``spike_hold``: how long a grid neuron is held after a spike
  (refractory period, spike limit);
* ``adapted_state_step``, ``adapted_adjoint_step``, ``adapted_spike_gradient``,
  ``adaptation_read``: the same for a neuron with an adaptation current A (option
  ``tau_adapt``, docs/methods.md "Adaptive LIF");
* ``rate_difference``, ``equal_time_constants``: delta = 1/tau_mem - 1/tau_syn (the parameter
  of the closed-form flow, ``kernels.lif_flow``, which takes its limit form where delta == 0.0)
  and that one test of tau_mem == tau_syn, for the grid constants (``kernels._grid_math``),
  the exact engine's packed constants and DelGrad.

How each backend runs the same source:

* Numba CPU kernels call the ``@njit`` functions (inlined into the caller, ``inline="always"``);
* CUDA kernels call them too: numba-cuda compiles a CPU dispatcher that it meets in device code
  as a device function of the same Python source; under numba-cuda's simulator the CPU-compiled
  function runs;
* the dense torch reference (``kernels.reference``) runs the Python source on tensors
  (``.py_func``, or ``python_form`` for a formula that calls another).

``mul_add_rn`` and ``add_rn`` are the two roundings that device code must not fuse into an FMA
(so that a float32 forward pass on a GPU gives the CPU's spikes bit for bit): plain Python here,
compiled as written for the CPU (``register_jitable``), and given rounded-to-nearest libdevice
implementations for CUDA in ``kernels.cuda``.  Arguments are scalars of one float type (a
kernel's float32 or float64) unless stated; nothing here promotes a float32 argument.

Numba's on-disk cache of a kernel does not notice a change in another file: after editing a
formula, delete the ``__pycache__`` folders of ``kernels`` and ``exact`` (as for
``kernels.lif_flow``).
"""

from __future__ import annotations

import types

from numba import njit
from numba.extending import register_jitable

__all__ = [
    "mul_add_rn",
    "add_rn",
    "state_step",
    "crossing_slope",
    "adjoint_step",
    "adjoint_jump",
    "arrival_read",
    "readout_drive",
    "tau_adjoint_step",
    "tau_arrival_read",
    "refractory_end_read",
    "spike_hold",
    "adapted_state_step",
    "adapted_adjoint_step",
    "adapted_spike_gradient",
    "adaptation_read",
    "rate_difference",
    "equal_time_constants",
    "python_form",
]


# ----------------------------------------------------------------------------- roundings
@register_jitable
def mul_add_rn(a, b, c, d):
    """a * b + c * d, each product and the sum rounded separately (never an FMA)."""
    return a * b + c * d


@register_jitable
def add_rn(a, b):
    """a + b, never fused with a product that feeds it."""
    return a + b


# ----------------------------------------------------------------------------- time grid
@njit(cache=True, inline="always")
def state_step(v, i, alpha, beta, c_vi):
    """(V, I) one grid step of dt ms later, without events (the exact propagator)::

        V <- alpha V + c_vi I,    I <- beta I

    alpha = e^{-dt/tau_mem}, beta = e^{-dt/tau_syn}, c_vi = alpha phi(dt) / tau_mem
    (``kernels._grid_math``)."""
    return mul_add_rn(alpha, v, c_vi, i), beta * i


@njit(cache=True, inline="always")
def crossing_slope(v, v_prev, i, secant):
    """tau_mem dV/dt at a threshold crossing detected at a grid point: max(I - V, secant
    (V - V_prev)) with V, I at the grid point before the reset, V_prev one step earlier and
    secant = tau_mem / dt.

    The crossing lies somewhere within the step; when the grid point is past the voltage peak
    I - V is tiny or negative and the secant over the step is the better (positive) estimate.
    Both converge to tau_mem dV/dt as dt -> 0."""
    return max(add_rn(i, -v), secant * add_rn(v, -v_prev))


@njit(cache=True, inline="always")
def adjoint_step(lam_v, lam_i, alpha, beta, c_adj):
    """(lambda_V, lambda_I) one grid step earlier, without events (transposed propagator)::

        lambda_V <- alpha lambda_V,    lambda_I <- c_adj lambda_V + beta lambda_I

    c_adj = alpha phi(dt) / tau_syn (``kernels._grid_math``)."""
    return alpha * lam_v, c_adj * lam_v + beta * lam_i


@njit(cache=True, inline="always")
def tau_adjoint_step(lam_v, lam_i, m_v, m_i, m_s, k):
    """The auxiliary adjoints of the time constants (m_V, m_I, M) one grid step earlier,
    without events (``lif_flow.tau_sensitivity_flow`` over dt, which is linear in its inputs)::

        m_V <- k_vv m_V + k_vl lambda_V
        m_I <- k_ii m_I + k_iv m_V + k_il lambda_V
        M   <- k_ss M + k_si lambda_I + k_sl lambda_V

    with old m_V and (lambda_V, lambda_I) at the later end of the step (before
    ``adjoint_step``); ``k`` = (k_vv, k_vl, k_ii, k_iv, k_il, k_ss, k_si, k_sl), the flow's
    coefficients (``kernels._grid_math``; k_si and k_sl in ms, the others dimensionless)."""
    k_vv, k_vl, k_ii, k_iv, k_il, k_ss, k_si, k_sl = k
    return (k_vv * m_v + k_vl * lam_v, k_ii * m_i + k_iv * m_v + k_il * lam_v,
            k_ss * m_s + k_si * lam_i + k_sl * lam_v)  # fmt: skip


# ----------------------------------------------------------------------------- both engines
@njit(cache=True, inline="always")
def adjoint_jump(lam_v, g, vdot, threshold, vdot_min, kick):
    """lambda_V just before a spike from lambda_V just after it (the backward pass meets the
    spike coming from later times)::

        lambda_V + (threshold lambda_V + G) / max(vdot, vdot_min) - kick

    ``g`` = G, dL/dt of the spike (from the loss, the next layer and recurrent arrivals);
    ``vdot`` = tau_mem dV/dt at the crossing (V units); ``vdot_min`` its floor, the slope floor
    times the threshold (V units), which keeps the jump finite at near-tangential crossings;
    ``kick`` the spike-count regulariser's term for this neuron (zero without one)."""
    return lam_v + ((threshold * lam_v + g) / max(vdot, vdot_min) - kick)


@njit(cache=True, inline="always")
def arrival_read(w, lam_i, lam_v_minus_i, tau_syn):
    """Gradients carried by one arrival of weight ``w``, from the adjoint (lambda_I,
    lambda_V - lambda_I) of its target neuron at the arrival time: (dL/dw, dL/dt) terms::

        dL/dw += -tau_syn lambda_I,    dL/dt += w (lambda_V - lambda_I)

    A delay d and the time t of the presynaptic spike enter only as their sum t + d, so the
    second term is the arrival's contribution to both dL/dd and dL/dt (ms^-1 x loss)."""
    return -tau_syn * lam_i, w * lam_v_minus_i


@njit(cache=True, inline="always")
def readout_drive(lam, grad, tau):
    """lambda_V (lambda_I) after a loss term on V (I) at one time: lam - dL/dV / tau_mem
    (lam - dL/dI / tau_syn); ``tau`` in ms."""
    return lam - grad / tau


@njit(cache=True, inline="always")
def tau_arrival_read(w, m_i, m_s, tau_syn):
    """Gradients of tau_mem and tau_syn carried by one arrival of weight ``w``, from the
    auxiliary adjoints m_I, M of its target at the arrival time (``lif_flow.
    tau_sensitivity_flow``, on the grid ``tau_adjoint_step``): (dL/dtau_mem, dL/dtau_syn)
    terms (ms^-1 x loss)::

        dL/dtau_mem += w m_I,    dL/dtau_syn += -w M / tau_syn
    """
    return w * m_i, -w * m_s / tau_syn


@njit(cache=True, inline="always")
def refractory_end_read(lam_v, i_end):
    """What the end of a refractory period adds to G_k = dL/dt_k of the spike k that started it:
    lambda_V just after the end times the synaptic current ``i_end`` with which V leaves 0.
    Shifting the spike by dt_k (ms) shifts the end by dt_k and hence the voltage after it; the
    caller then sets lambda_V to 0, as V is held (constant) during the period."""
    return lam_v * i_end


@njit(cache=True, inline="always")
def spike_hold(n, n_spikes, ref_steps, max_spikes, n_steps):
    """The hold after a spike at grid step n, the neuron's ``n_spikes``-th (counting it), with a
    refractory period of ``ref_steps`` steps and a spike limit ``max_spikes`` (0: none of
    either): (the first step at which its threshold is tested again, n_steps for never; whether
    V then leaves a refractory period, whose drive the forward pass records)."""
    if max_spikes > 0 and n_spikes >= max_spikes:
        return n_steps, False
    if ref_steps > 0:
        return n + 1 + ref_steps, True
    return n + 1, False


# ----------------------------------------------------------------------------- adaptation
# The adaptive LIF neuron (docs/methods.md "Adaptive LIF"): an adaptation current A, fed by the
# neuron's own spikes, is subtracted from the synaptic current,
#
#     tau_mem dV/dt = -V + I - A,   tau_adapt dA/dt = -A,   A <- A + b at each spike (b >= 0).
#
# Its adjoint lambda_A has the scaling of the others (lambda_x = -(dL/dx) / tau_x) and runs
# backward with tau_adapt lambda_A' = lambda_A + lambda_V.  A enters V as I does, with the
# opposite sign, so every flow of A is the flow of I with tau_adapt for tau_syn (delta_a =
# 1/tau_mem - 1/tau_adapt) and the sign of the coupling reversed.  With adaptation the slope at a
# crossing is tau_mem dV/dt = I - A - threshold (the ``vdot`` of ``adjoint_jump``) and the
# drive with which V leaves a refractory hold is I - A (``refractory_end_read``).


@njit(cache=True, inline="always")
def adapted_state_step(v, i, a, alpha, beta, beta_a, c_vi, c_va):
    """(V, I, A) one grid step of dt ms later, without events::

        V <- alpha V + c_vi I - c_va A,    I <- beta I,    A <- beta_a A

    beta_a = e^{-dt/tau_adapt}, c_va = alpha phi_a(dt) / tau_mem with phi_a the phi of
    delta_a = 1/tau_mem - 1/tau_adapt (``kernels._grid_math``)."""
    v_next, i_next = state_step(v, i, alpha, beta, c_vi)
    return add_rn(v_next, -(c_va * a)), i_next, beta_a * a


@njit(cache=True, inline="always")
def adapted_adjoint_step(lam_v, lam_i, lam_a, alpha, beta, beta_a, c_adj, c_adj_a):
    """(lambda_V, lambda_I, lambda_A) one grid step earlier, without events::

        lambda_V <- alpha lambda_V,   lambda_I <- c_adj lambda_V + beta lambda_I,
        lambda_A <- beta_a lambda_A - c_adj_a lambda_V

    (old lambda_V on the right), c_adj_a = alpha phi_a(dt) / tau_adapt."""
    new_v, new_i = adjoint_step(lam_v, lam_i, alpha, beta, c_adj)
    return new_v, new_i, beta_a * lam_a - c_adj_a * lam_v


@njit(cache=True, inline="always")
def adapted_spike_gradient(g, jump, lam_v, lam_a):
    """What ``adjoint_jump`` takes as G at a spike of an adaptive neuron::

        G - b (lambda_V + lambda_A)

    with G = dL/dt of the spike, b = ``jump`` (V units) and lambda_V, lambda_A just after the
    spike.  Moving the spike later by dt_k moves A's jump with it (A after the spike changes by
    b dt_k / tau_adapt) and, as V restarts from 0 with the slope I - A - b, so does V; with
    ``vdot`` = I - A - threshold the jump is
    lambda_V^- = (G + lambda_V (I - A - b) - b lambda_A) / vdot, which this G turns into
    ``adjoint_jump``'s form.  lambda_I and lambda_A do not jump."""
    return g - jump * (lam_v + lam_a)


@njit(cache=True, inline="always")
def adaptation_read(lam_a, tau_adapt):
    """dL/db of a spike's adaptation jump b: -tau_adapt lambda_A just after the spike (A jumps
    by b there, and dL/dA = -tau_adapt lambda_A)."""
    return -tau_adapt * lam_a


# ----------------------------------------------------------------------------- time constants
def rate_difference(tau_mem: float, tau_syn: float) -> float:
    """delta = 1/tau_mem - 1/tau_syn (ms^-1), the parameter of the closed-form flow
    (``kernels.lif_flow``): phi(s) = expm1(delta s) / delta, and phi(s) = s where delta == 0."""
    return 1.0 / tau_mem - 1.0 / tau_syn


def equal_time_constants(tau_mem: float, tau_syn: float) -> bool:
    """Whether the limit form for tau_mem == tau_syn applies: delta == 0.0 exactly.

    The expm1 form of the flow is accurate for any delta != 0, however small, so no tolerance
    is needed (or wanted: a tolerance would switch formulas where both are accurate)."""
    return rate_difference(tau_mem, tau_syn) == 0.0


def python_form(formula):
    """The Python source of ``formula`` (an ``@njit`` function of this module) as a plain
    function whose calls to other formulas run their Python source too, so that it works on
    tensors (``.py_func`` alone would hand tensors to the compiled ``state_step`` inside
    ``adapted_state_step``)."""
    names = {k: getattr(f, "py_func", f) for k, f in globals().items()}
    return types.FunctionType(formula.py_func.__code__, names, formula.__name__)

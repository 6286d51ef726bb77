"""Constants of the time-stepped engine, shared by every backend (CPU, CUDA, reference).

Between events the state (V, I) of a current-based LIF neuron evolves linearly
(tau_mem dV/dt = -V + I, tau_syn dI/dt = -I), so one step of length dt is exact
(``formulas.state_step``)::

    V <- alpha V + c_vi I        I <- beta I
    alpha = exp(-dt/tau_mem),  beta = exp(-dt/tau_syn),  c_vi = alpha phi(dt) / tau_mem

with phi(s) = expm1(delta s) / delta, delta = 1/tau_mem - 1/tau_syn (phi(s) = s at delta == 0):
the textbook tau_syn / (tau_syn - tau_mem) (beta - alpha) without the cancellation of two nearly
equal exponentials when tau_mem is close to tau_syn.  The adjoint (lambda_V, lambda_I)
(docs/methods.md) is propagated backward by the transposed map (``formulas.adjoint_step``)::

    lambda_I <- c_adj lambda_V + beta lambda_I      lambda_V <- alpha lambda_V
    c_adj = alpha phi(dt) / tau_syn

c_vi and c_adj are the closed-form flow of ``kernels.lif_flow`` over one step (V of a unit
current, lambda_I of a unit lambda_V), so the grid and the exact engine share one formula and
one test of tau_mem == tau_syn (``formulas.equal_time_constants``).

With adaptation (an adaptation current A, tau_adapt dA/dt = -A, subtracted from I in V's
equation; ``formulas.adapted_state_step``) A enters V as I does with the opposite sign, so its
coefficients are those of I with tau_adapt for tau_syn::

    A <- beta_a A,   V <- ... - c_va A,   lambda_A <- beta_a lambda_A - c_adj_a lambda_V
    beta_a = exp(-dt/tau_adapt),  c_va = alpha phi_a(dt) / tau_mem,
    c_adj_a = alpha phi_a(dt) / tau_adapt

with phi_a the phi of delta_a = 1/tau_mem - 1/tau_adapt.

Gradients of tau_mem and tau_syn (``learn_tau``) need the auxiliary adjoints (m_V, m_I, M) of
``lif_flow.tau_sensitivity_flow`` one step back (``formulas.tau_adjoint_step``); that flow is
linear in (lambda_V, lambda_I, m_V, m_I, M), so its eight non-zero coefficients over dt are
computed here once, from the flow's Python source on unit vectors (``tau_step``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .formulas import rate_difference
from .lif_flow import adjoint_flow, flow, tau_sensitivity_flow

__all__ = ["GridConstants", "grid_constants", "refractory_steps", "precise_constants",
           "VDOT_FLOOR", "MIN_RATE_GAP", "TAU_STEP"]  # fmt: skip

#: The slope floor, relative to the threshold (dimensionless): tau_mem dV/dt at a spike is taken
#: to be at least ``vdot_min = VDOT_FLOOR * |threshold|`` (V units) in the adjoint jump
#: (``formulas.adjoint_jump``).  On a grid a crossing can be detected after the voltage peak,
#: where I - V <= 0; the floor keeps the jump finite.
VDOT_FLOOR = 1e-3

#: Index in ``GridConstants.packed`` of the first of the eight coefficients of
#: ``formulas.tau_adjoint_step``.
TAU_STEP = 15


@dataclass(frozen=True)
class GridConstants:
    """Constants of one time grid: the propagator (alpha, beta, c_vi, c_adj, dimensionless),
    the neuron (threshold in V units, tau_syn and tau_mem in ms), ``vdot_min`` (the slope floor
    in V units, ``VDOT_FLOOR * |threshold|``), the step ``dt`` (ms), the refractory period in
    whole steps ``ref_steps`` (``refractory_steps``; 0: none), the spike limit per neuron and
    sample ``max_spikes`` (0: no limit) and the adaptation current's time constant
    ``tau_adapt`` (ms; 0: no adaptation) with its propagator (beta_a, c_va, c_adj_a,
    dimensionless; 0 without adaptation), and ``tau_step``, the coefficients (k_vv, k_vl, k_ii,
    k_iv, k_il, k_ss, k_si, k_sl) of ``formulas.tau_adjoint_step`` (k_si, k_sl in ms)."""

    alpha: float
    beta: float
    c_vi: float
    c_adj: float
    threshold: float
    tau_syn: float
    tau_mem: float
    vdot_min: float
    dt: float
    ref_steps: int = 0
    max_spikes: int = 0
    tau_adapt: float = 0.0
    beta_a: float = 0.0
    c_va: float = 0.0
    c_adj_a: float = 0.0
    tau_step: tuple[float, ...] = (0.0,) * 8

    @property
    def adaptive(self) -> bool:
        """Whether the neurons have an adaptation current (``tau_adapt`` > 0)."""
        return self.tau_adapt > 0.0

    def packed(self, dtype: np.dtype) -> np.ndarray:
        """Packed for the kernels: [alpha, beta, c_vi, c_adj, threshold, tau_syn, tau_mem,
        vdot_min, tau_mem / dt, ref_steps, max_spikes, beta_a, c_va, c_adj_a, tau_adapt,
        *tau_step] (``TAU_STEP`` = 15: where ``tau_step``'s eight coefficients start), in
        the kernel's float type so that no arithmetic is promoted (the two counts are small
        integers, exact in float32)."""
        return np.array(
            [
                self.alpha,
                self.beta,
                self.c_vi,
                self.c_adj,
                self.threshold,
                self.tau_syn,
                self.tau_mem,
                self.vdot_min,
                self.tau_mem / self.dt,
                self.ref_steps,
                self.max_spikes,
                self.beta_a,
                self.c_va,
                self.c_adj_a,
                self.tau_adapt,
                *self.tau_step,
            ],
            dtype=dtype,
        )


def refractory_steps(refractory: float, dt: float) -> int:
    """The refractory period ``refractory`` (ms) on a grid of step ``dt`` (ms), in whole steps:
    ceil(refractory / dt) (0 for no period; a period within 1e-9 steps of a multiple of dt
    counts as that multiple, as in ``_util.n_steps_for``).  After a spike at step n, V is held
    at 0 at steps n + 1 .. n + ref_steps and leaves 0 at t = (n + ref_steps) dt, at most one
    step after the continuous end t_n + refractory: the grid converges to the exact engine's
    hold as dt -> 0."""
    if refractory == 0.0:
        return 0
    return int(math.ceil(refractory / dt - 1e-9))


def grid_constants(
    dt: float,
    tau_mem: float,
    tau_syn: float,
    threshold: float,
    refractory: float = 0.0,
    max_spikes: int | None = None,
    tau_adapt: float | None = None,
) -> GridConstants:
    """Exact one-step propagator coefficients for step ``dt`` (all times in ms), with the
    refractory period (ms) in steps, the spike limit (None: no limit) and the adaptation time
    constant (ms; None: no adaptation) as the kernels read them."""
    alpha = math.exp(-dt / tau_mem)
    beta = math.exp(-dt / tau_syn)
    c_vi, c_adj = _coupling(dt, tau_mem, tau_syn)
    adapt = (0.0, 0.0, 0.0, 0.0)
    if tau_adapt is not None:
        adapt = (tau_adapt, math.exp(-dt / tau_adapt), *_coupling(dt, tau_mem, tau_adapt))
    return GridConstants(
        alpha, beta, c_vi, c_adj, threshold, tau_syn, tau_mem, VDOT_FLOOR * abs(threshold), dt,
        refractory_steps(refractory, dt), max_spikes or 0, *adapt,
        _tau_step(dt, tau_mem, tau_syn),
    )  # fmt: skip


def _coupling(dt: float, tau_mem: float, tau_x: float) -> tuple[float, float]:
    """(V after dt ms from a unit current x of time constant ``tau_x`` ms and V = 0, lambda_x
    after dt ms back from a unit lambda_V): c_vi and c_adj for x = I, c_va and c_adj_a for the
    adaptation current.  The flow's Python source, run on floats: host arithmetic, nothing to
    compile."""
    delta = rate_difference(tau_mem, tau_x)
    return (flow.py_func(0.0, 1.0, dt, tau_mem, tau_x, delta)[0],
            adjoint_flow.py_func(1.0, 0.0, dt, tau_mem, tau_x, delta)[1])  # fmt: skip


def _tau_step(dt: float, tau_mem: float, tau_syn: float) -> tuple[float, ...]:
    """(k_vv, k_vl, k_ii, k_iv, k_il, k_ss, k_si, k_sl) of ``formulas.tau_adjoint_step``: the
    images under ``tau_sensitivity_flow`` over dt ms of the unit vectors lambda_V, lambda_I,
    m_V, m_I, M (its other seven coefficients are 0).  Host arithmetic, as ``_coupling``."""
    delta = rate_difference(tau_mem, tau_syn)
    lam_v, lam_i, m_v, m_i, m_s = (
        tau_sensitivity_flow.py_func(*(float(k == u) for k in range(5)), dt, tau_mem, tau_syn,
                                     delta)
        for u in range(5)
    )  # fmt: skip
    return (m_v[0], lam_v[0], m_i[1], m_v[1], lam_v[1], m_s[2], lam_i[2], lam_v[2])


#: Precise mode superposes arrivals with k_v (alpha e^{s/tau_mem} - beta e^{s/tau_syn}),
#: k_v = tau_syn / (tau_mem - tau_syn): rounding errors of the two exponentials, eps |w| each,
#: are multiplied by |k_v|, so precise mode asks for |tau_mem - tau_syn| >= MIN_RATE_GAP
#: max(tau_mem, tau_syn) (errors below ~1e3 eps |w| per arrival).
MIN_RATE_GAP = 1e-3


def precise_constants(
    dt: float, tau_mem: float, tau_syn: float, threshold: float, dtype: np.dtype
) -> np.ndarray:
    """Packed constants of the precise-mode kernels (``kernels.precise_cpu``), all ms:

    [alpha, beta, c_vi, c_adj, threshold, tau_syn, tau_mem, vdot_min, dt, k_v, k_a, delta,
     kappa_max]

    with k_v = tau_syn / (tau_mem - tau_syn) (an arrival's weight w adds
    w k_v (alpha e^{s/tau_mem} - beta e^{s/tau_syn}) to V at the end of its step),
    kappa_max the largest V that a unit current jump can add within one step
    (max over 0 <= u <= dt of k_v (e^{-u/tau_mem} - e^{-u/tau_syn}), which peaks at
    u* = ln(tau_mem/tau_syn) / (1/tau_syn - 1/tau_mem)),
    k_a = tau_mem / (tau_syn - tau_mem) (the same coefficient in the adjoint flow) and
    delta = 1/tau_mem - 1/tau_syn.
    """
    delta = rate_difference(tau_mem, tau_syn)
    if abs(tau_mem - tau_syn) < MIN_RATE_GAP * max(tau_mem, tau_syn):
        raise ValueError(
            f"precise=True needs tau_mem and tau_syn to differ by at least {MIN_RATE_GAP:g} of "
            f"the larger (tau_mem={tau_mem}, tau_syn={tau_syn} ms); use precise=False or the "
            "exact engine (dt=None)"
        )
    # an arrival's factors e^{s/tau} times w, s < 2 dt before the carry, must stay finite
    exponent = 2.0 * dt / min(tau_mem, tau_syn)
    if exponent > math.log(np.finfo(dtype).max) - 10.0:
        raise ValueError(
            f"precise=True in {np.dtype(dtype).name}: dt = {dt} ms is too long for "
            f"tau_mem = {tau_mem}, tau_syn = {tau_syn} ms (the kernels' factors e^(s/tau) over "
            "two steps would overflow); use a smaller dt, float64 or precise=False"
        )
    c = grid_constants(dt, tau_mem, tau_syn, threshold)
    k_v = tau_syn / (tau_mem - tau_syn)
    k_a = tau_mem / (tau_syn - tau_mem)
    u = min(dt, math.log(tau_mem / tau_syn) / (1.0 / tau_syn - 1.0 / tau_mem))
    kappa_max = k_v * (math.exp(-u / tau_mem) - math.exp(-u / tau_syn)) * (1.0 + 1e-9)
    values = [c.alpha, c.beta, c.c_vi, c.c_adj, threshold, tau_syn, tau_mem, c.vdot_min, dt,
              k_v, k_a, delta, kappa_max]  # fmt: skip
    return np.array(values, dtype=dtype)

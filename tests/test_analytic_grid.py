"""Single-neuron closed forms for the time-stepped engine (independent of the kernels' code).

For one input of weight w arriving at t_a, V(t) = w k(t - t_a) with the kernel
k(s) = tau_syn / (tau_syn - tau_mem) (exp(-s/tau_syn) - exp(-s/tau_mem)), s > 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import delayprop as dp

TAU_M, TAU_S = 20.0, 5.0


def kernel(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    k = TAU_S / (TAU_S - TAU_M) * (np.exp(-s / TAU_S) - np.exp(-s / TAU_M))
    return np.where(s > 0, k, 0.0)


def kernel_slope(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    k = TAU_S / (TAU_S - TAU_M) * (-np.exp(-s / TAU_S) / TAU_S + np.exp(-s / TAU_M) / TAU_M)
    return np.where(s > 0, k, 0.0)


def one_input(t_in: float, duration: float) -> dp.Spikes:
    x = dp.Spikes.from_lists([([t_in], [0])], 1, duration, dtype=torch.float64)
    return x.with_times(x.times.detach().requires_grad_())


def readout(w: float, d: float, dt: float, max_delay: float = 20.0) -> dp.LIReadout:
    layer = dp.LIReadout(1, 1, dt=dt, max_delay=max_delay, delay_init=d, weight_init=w,
                         tau_mem=TAU_M, tau_syn=TAU_S, dtype=torch.float64)  # fmt: skip
    return layer


@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_voltage_after_one_input_is_exact_on_the_grid(dt):
    w, t_in, d = 0.7, 3.0, 5.0
    v = readout(w, d, dt)(one_input(t_in, 60.0)).detach().numpy()[0, :, 0]
    t = np.arange(len(v)) * dt
    np.testing.assert_allclose(v, w * kernel(t - (t_in + d)), rtol=0, atol=1e-13)


def test_readout_gradients_match_closed_forms():
    """dL/dw, dL/dd and dL/dt_in of L = sum_n c_n V(t_n) against the closed forms."""
    w, t_in, d, dt = 0.7, 3.0, 5.0, 0.5
    layer = readout(w, d, dt)
    x = one_input(t_in, 40.0)
    v = layer(x)
    t = np.arange(v.shape[1]) * dt
    c = np.cos(0.3 * t) + 0.2
    (v[0, :, 0] * torch.from_numpy(c)).sum().backward()
    s = t - (t_in + d)
    grad_w = float((c * kernel(s)).sum())
    grad_arrival = float((c * -w * kernel_slope(s)).sum())
    assert layer.weight.grad.item() == pytest.approx(grad_w, rel=1e-11)
    assert layer.delay.raw.grad.item() == pytest.approx(grad_arrival, rel=1e-11)
    # the delay and the input time enter only as their sum
    assert x.times.grad.item() == pytest.approx(grad_arrival, rel=1e-11)


def _spike_time_continuous(w: float, t_a: float, threshold: float = 1.0) -> float:
    s_peak = math.log(TAU_M / TAU_S) * TAU_M * TAU_S / (TAU_M - TAU_S)
    return t_a + brentq(lambda s: w * kernel(s) - threshold, 1e-9, s_peak, xtol=1e-14)


@pytest.mark.parametrize("dt", [1.0, 0.1, 0.01])
def test_spike_time_is_first_grid_point_after_the_crossing(dt):
    w, t_in, d = 9.0, 2.0, 3.0
    layer = dp.LIF(1, 1, dt=dt, max_delay=10.0, delay_init=d, weight_init=w, tau_mem=TAU_M,
                   tau_syn=TAU_S, dtype=torch.float64)  # fmt: skip
    out = layer(one_input(t_in, 30.0))
    t_star = _spike_time_continuous(w, t_in + d)
    assert out.n_spikes >= 1
    assert out.times[0].item() == pytest.approx(math.ceil(t_star / dt - 1e-9) * dt, abs=1e-12)


def test_lif_delay_gradient_equals_input_time_gradient():
    """For a lone input the delay gradient is the input-time gradient (the autograd contract of
    docs/architecture.md), and for a strong input dt*/dd -> 1 as dt -> 0."""
    w, t_in, d, dt = 9.0, 2.0, 3.0, 0.001
    layer = dp.LIF(1, 1, dt=dt, max_delay=10.0, delay_init=d, weight_init=w, tau_mem=TAU_M,
                   tau_syn=TAU_S, dtype=torch.float64)  # fmt: skip
    x = one_input(t_in, 15.0)
    out = layer(x)
    out.times[0].backward()
    assert layer.delay.raw.grad.item() == pytest.approx(x.times.grad.item(), rel=1e-12)
    assert layer.delay.raw.grad.item() == pytest.approx(1.0, abs=1e-2)
    # weight: implicit differentiation of w k(t* - t_a) = theta -> dt*/dw = -k / (w k')
    t_star = _spike_time_continuous(w, t_in + d)
    s = t_star - (t_in + d)
    expected = -kernel(s) / (w * kernel_slope(s))
    assert layer.weight.grad.item() == pytest.approx(float(expected), rel=2e-2)

"""The exported graph runs in a second simulator (Norse 1.1.0 through nirtorch).

Conventions and every expected difference: ``delayprop.nir_norse`` docstring and
docs/deploy.md.  Norse's voltage of layer k at step n is delayprop's at step n + k
(``compare_with_norse`` aligns them); with the propagator matched the two agree to float32
precision, with the graph as written (Euler in Norse) the differences are first order in dt.
"""

from __future__ import annotations

import pytest
import torch

import delayprop as dp
from delayprop import nir as dnir
from delayprop.nir_norse import RingDelay, compare_with_norse, to_norse

DURATION = 20.0  # ms


def _net(dt: float) -> torch.nn.Sequential:
    """6 -> 10 recurrent LIF (synaptic delays) -> 5 LIF (axonal) -> 3 LI (dendritic), with
    delays on whole steps of 0.1 ms (so on whole steps of every dt used here)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        dp.LIF(6, 10, dt=dt, max_delay=3.0, delay_init=(0.0, 3.0),
               weight_init=dp.Normal(1.5, 0.7), recurrent=True, rec_max_delay=2.0,
               rec_delay_init=(0.0, 2.0), rec_weight_init=dp.Normal(0.0, 0.3),
               dtype=torch.float64),
        dp.LIF(10, 5, dt=dt, max_delay=1.0, delay_kind="axonal", delay_init=(0.0, 1.0),
               weight_init=dp.Normal(1.0, 0.5), dtype=torch.float64),
        dp.LIReadout(5, 3, dt=dt, max_delay=1.0, delay_kind="dendritic", delay_init=(0.0, 1.0),
                     weight_init=dp.Normal(0.0, 0.5), dtype=torch.float64),
    )  # fmt: skip
    with torch.no_grad():
        for m in dp.delay_modules(net):
            m.raw.copy_(torch.round(m.raw / 0.1) * 0.1)
    return net


def _raster(dt: float) -> torch.Tensor:
    """The same input spikes (on a 0.1 ms grid) as a raster of step dt."""
    g = torch.Generator().manual_seed(1)
    base = (torch.rand(3, int(DURATION / 0.1), 6, generator=g) < 0.03).float()
    raster = torch.zeros(3, int(round(DURATION / dt)), 6)
    raster[:, :: int(round(0.1 / dt))] = base
    return raster


def test_matched_propagator_reproduces_delayprop_step_for_step():
    c = compare_with_norse(_net(0.1), _raster(0.1), 0.1, match_propagator=True)
    for k, (a, b) in enumerate(zip(c.ours, c.norse)):
        assert a.sum() > 50  # active layers
        assert torch.equal(a, b), f"layer {k}: spike rasters differ"
    assert c.trace_error() < 1e-5


def test_graph_as_written_differs_only_by_euler_error_of_first_order():
    errors = []
    for dt in (0.1, 0.05):
        c = compare_with_norse(_net(dt), _raster(dt), dt)
        for k, a in enumerate(c.ours):
            diff = c.count_differences(k)
            assert float(diff.max()) <= 1 and float(diff.sum()) <= 0.03 * float(a.sum())
        errors.append(c.trace_error())
    assert errors[0] < 0.05
    assert errors[1] < 0.7 * errors[0]  # halving dt shrinks it: integrator, not mapping


def test_ring_delay_returns_the_input_d_steps_earlier():
    delay = RingDelay(torch.tensor([0, 1, 3]).numpy())
    xs = torch.arange(1.0, 31.0).reshape(10, 1, 3)
    state, ys = None, []
    for x in xs:
        y, state = delay(x, state)
        ys.append(y)
    ys = torch.stack(ys)[:, 0]
    assert torch.equal(ys[:, 0], xs[:, 0, 0])
    assert torch.equal(ys[1:, 1], xs[:-1, 0, 1]) and ys[0, 1] == 0
    assert torch.equal(ys[3:, 2], xs[:-3, 0, 2]) and torch.all(ys[:3, 2] == 0)


def test_delays_off_the_grid_are_refused():
    net = _net(0.1)
    with torch.no_grad():
        net[0].delay.raw[0, 0] = 0.05
    with pytest.raises(ValueError, match="whole time steps"):
        to_norse(dnir.to_graph(net), 0.1)

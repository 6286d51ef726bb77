"""Time of the per-call input checks against a grid LIF forward of an SHD-sized layer (CPU).

    PYTHONPATH=src NUMBA_NUM_THREADS=1 python benchmarks/input_check_cost.py

A 700 -> 256 LIF layer with synaptic delays in [0, 150] ms, dt = 1 ms, a 1000 ms trial, a
batch of 32 samples of 2000 random events.  Prints the best of 5 of the forward (checks
included) and of the checks it runs (``functional.check_events``, the module's delay check,
the grid engine's parameter, delay and size checks), and their ratio (docs/robustness.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import delayprop as dp
from delayprop import functional


def best_of(f: Callable[[], object], repeats: int = 5) -> float:
    """Shortest wall time of ``repeats`` calls, s."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    torch.manual_seed(0)
    layer = dp.LIF(700, 256, dt=1.0, max_delay=150.0, delay_init=(0.0, 150.0))
    batch, events = 32, 2000
    x = dp.Spikes.from_arrays(
        torch.rand(batch * events) * 999.0, torch.randint(0, 700, (batch * events,)),
        torch.randint(0, batch, (batch * events,)), batch, 700, 1000.0,
    )  # fmt: skip
    layer(x)  # compile the kernels
    settings = layer._settings(x, layer.threshold, capacity=layer.spike_capacity)
    delays = {"delay": (layer.delays(), settings.max_delay_steps)}

    def checks() -> None:
        layer.effective_parameters()  # computes and checks the delays
        functional._check_layer(x, layer.weight, delays, settings, "lif")

    forward, check = best_of(lambda: layer(x)), best_of(checks)
    print(f"forward {forward * 1e3:.1f} ms, checks {check * 1e3:.2f} ms, "
          f"ratio {check / forward:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""What the neuron features cost on the time grid: one LIF layer, forward + backward, plain
against adaptive (``tau_adapt``, learned jumps) and learned time constants (``learn_tau``),
timed in turns in one process so that they share the machine's load.

SHD-sized layer: 700 inputs (8000 random input spikes per sample over 1000 ms), 256 neurons,
dt = 1 ms, delays up to 64 ms, batch 32.  Prints spikes per neuron of each variant (adaptation
lowers the activity, so its time is a cost at lower activity) and the median time of each with
its ratio to the plain layer.

    NUMBA_NUM_THREADS=1 python benchmarks/neuron_feature_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import delayprop as dp

VARIANTS = {
    "plain": {},
    "adaptive": dict(tau_adapt=100.0, adapt_jump=0.3, learn_adapt=True),
    "learn_tau": dict(learn_tau=True),
}


def _input(batch: int, n_in: int, n_spikes: int, duration: float) -> dp.Spikes:
    trains = []
    for b in range(batch):
        rng = np.random.default_rng(b)
        trains.append((np.sort(rng.uniform(0.0, duration, n_spikes)),
                       rng.integers(0, n_in, n_spikes)))  # fmt: skip
    return dp.Spikes.from_lists(trains, n_units=n_in, duration=duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (the first is warm-up)")
    args = parser.parse_args()
    x = _input(32, 700, 8000, 1000.0)
    layers = {}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        layers[name] = dp.LIF(700, 256, dt=1.0, max_delay=64.0, delay_init=(0.0, 64.0),
                              weight_init=dp.Normal(0.03, 0.01), **options)  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in layers}
    for r in range(args.rounds):
        for name, layer in layers.items():
            layer.zero_grad()
            start = time.perf_counter()
            out = layer(x)
            out.times.sum().backward()
            seconds[name].append(time.perf_counter() - start)
            if r == 0:
                print(f"{name}: {out.n_spikes / (32 * 256):.1f} spikes per neuron")
    median = {name: statistics.median(s[1:] or s) for name, s in seconds.items()}
    for name, t in median.items():
        print(f"{name}: {1e3 * t:.1f} ms per forward + backward, {t / median['plain']:.2f}x plain")


if __name__ == "__main__":
    main()

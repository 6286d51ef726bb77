"""Does a layer's cost grow with its max delay?  Interleaved timing in one process.

The same network (700 - hidden - 20 LI, SHD-shaped synthetic input, activity calibrated to
15 spikes per neuron) is built once per max delay with the *same* delays, drawn from
[0, --delay-range] steps, so every model simulates the same spikes and only the max delay (the
size the engine must allow for) differs.  Forward + backward steps of the models are timed in
turns, round after round, so that they share the machine's load; the first round is a warm-up.
``delayprop bench --suite fixed-delays`` measures the same in separate processes.

    python benchmarks/max_delay_cost.py --max-delays 64 256 1024 --rounds 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from delayprop import losses
from delayprop.bench.workload import calibrate_rates, shd_weight_init, synthetic_shd
from delayprop.methods import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--max-delays", type=int, nargs="+", default=[64, 256, 1024], help="steps")
    p.add_argument("--delay-range", type=int, default=64, help="delays drawn from [0, this] steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="steps per model and round")
    args = p.parse_args()
    if min(args.max_delays) < args.delay_range:
        p.error("every max delay must be >= --delay-range")
    torch.manual_seed(0)
    spikes, labels = synthetic_shd(args.batch)
    ff_init, _ = shd_weight_init(len(args.hidden))
    models = {}
    for md in args.max_delays:
        torch.manual_seed(1)
        models[md] = build_model(
            "eventprop", n_in=700, hidden=args.hidden, n_out=20, weight_init=ff_init,
            max_delay=float(md), delay_init=(0.0, float(args.delay_range)),
            readout_max_delay=float(md), readout_delay_init=(0.0, float(args.delay_range)),
        )  # fmt: skip
        calibrate_rates(models[md], spikes, 15.0)
    times: dict[int, list[float]] = {md: [] for md in models}
    for rnd in range(args.rounds):
        for md, model in models.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                v = model(spikes)
                losses.cross_entropy(losses.exp_weighted_mean(v), labels).backward()
                if rnd:
                    times[md].append(time.perf_counter() - start)
    base = statistics.median(times[args.max_delays[0]])
    print(f"hidden {args.hidden}, delays in [0, {args.delay_range}] steps, batch {args.batch}, "
          f"{len(times[args.max_delays[0]])} timed steps each")  # fmt: skip
    print("max delay (steps) | median ms | min ms | median / first")
    for md, ts in times.items():
        med = statistics.median(ts)
        print(f"{md} | {1e3 * med:.0f} | {1e3 * min(ts):.0f} | {med / base:.2f}")


if __name__ == "__main__":
    main()

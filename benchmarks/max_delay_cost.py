"""Does a layer's cost grow with its max delay?  Interleaved timing in one process.

The benchmark's feed-forward network (700 - hidden - 20 LI, SHD-shaped synthetic input, activity
calibrated to 15 spikes per neuron) is built once per max delay with the *same* delays, drawn
from [0, --delay-range] steps, so every model simulates the same spikes and only the max delay
(the size the engine must allow for) differs.  Full training steps (as in ``delayprop bench``:
forward, backward, Adam, delay clamping) of the models are timed in turns, round after round, so
that they share the machine's load; each model's first step of a round is not timed.
``delayprop bench --suite fixed-delays`` measures the same in separate processes.

    python benchmarks/max_delay_cost.py --max-delays 64 256 1024 --rounds 8
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch

from delayprop.bench import Case, calibrate_rates, synthetic_shd, time_training_steps
from delayprop.bench.worker import build_case_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--max-delays", type=int, nargs="+", default=[64, 256, 1024], help="steps")
    p.add_argument("--delay-range", type=int, default=64, help="delays drawn from [0, this] steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model and round")
    args = p.parse_args()
    if min(args.max_delays) < args.delay_range:
        p.error("every max delay must be >= --delay-range")
    spikes, labels = synthetic_shd(args.batch)
    models = {}
    for md in args.max_delays:
        case = Case("fixed-delays", "eventprop", tuple(args.hidden), 1.0, md,
                    delay_init_steps=args.delay_range, batch=args.batch)  # fmt: skip
        torch.manual_seed(case.seed)
        models[md] = build_case_model(case)
        calibrate_rates(models[md], spikes, case.target_rate)
    times: dict[int, list[float]] = {md: [] for md in models}
    for _ in range(args.rounds):
        for md, model in models.items():
            timing = time_training_steps(model, spikes, labels, warmup=1, max_timed=args.steps,
                                         budget_s=math.inf)  # fmt: skip
            times[md] += timing.timed
    base = statistics.median(times[args.max_delays[0]])
    print(f"hidden {args.hidden}, delays in [0, {args.delay_range}] steps, batch {args.batch}, "
          f"{len(times[args.max_delays[0]])} timed training steps each")  # fmt: skip
    print("max delay (steps) | median ms | min ms | median / first")
    for md, ts in times.items():
        med = statistics.median(ts)
        print(f"{md} | {1e3 * med:.0f} | {1e3 * min(ts):.0f} | {med / base:.2f}")


if __name__ == "__main__":
    main()

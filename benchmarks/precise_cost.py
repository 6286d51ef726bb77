"""What the precise mode costs: grid mode vs precise mode vs the exact engine, one process.

The benchmark's feed-forward network (700 - 256 - 256 - 20 LI, SHD-shaped synthetic input,
dt = 1 ms, activity calibrated to 15 spikes per neuron in grid mode) is built per max delay; a
copy runs in precise mode with the same parameters.  Full training steps (as in
``delayprop bench``: forward, backward, Adam, delay clamping) of the two are timed in turns,
round after round, so that they share the machine's load.  The exact engine (dt=None) runs a
forward and backward pass of the same network on ``--exact-samples`` samples; its cost is
reported per sample against the precise mode's per sample.

    python benchmarks/precise_cost.py --max-delays 64 1024 --rounds 4
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch

from delayprop import SpikeRecorder, losses
from delayprop.bench import Case, calibrate_rates, synthetic_shd, time_training_steps
from delayprop.bench.worker import build_case_model


def _exact_seconds_per_sample(model: torch.nn.Module, spikes, labels, n: int) -> float:
    """Forward + backward of the exact engine on the first ``n`` samples, s per sample."""
    exact = copy.deepcopy(model).double()
    for layer in exact:
        layer.dt = None
        layer.precise = False
    exact[-1].sample_dt = 1.0
    sub = spikes.concat([_one(spikes, b) for b in range(n)])
    start = time.perf_counter()
    v = exact(sub)
    losses.cross_entropy(losses.exp_weighted_mean(v), labels[:n]).backward()
    return (time.perf_counter() - start) / n


def _one(spikes, b: int):
    times, units = spikes.sample(b)
    return type(spikes).from_lists([(times.tolist(), units.tolist())], spikes.n_units,
                                   spikes.duration, dtype=torch.float64)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-delays", type=int, nargs="+", default=[64, 1024], help="steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="timed steps per model and round")
    p.add_argument("--exact-samples", type=int, default=2)
    args = p.parse_args()
    spikes, labels = synthetic_shd(args.batch)
    print(f"2 x 256, dt = 1 ms, batch {args.batch}, threads: torch {torch.get_num_threads()}")
    print("max delay (steps) | grid ms/step | precise ms/step | precise / grid | "
          "spikes/neuron grid, precise")
    for md in args.max_delays:
        case = Case("ff", "eventprop", (256, 256), 1.0, md, batch=args.batch)
        torch.manual_seed(case.seed)
        grid = build_case_model(case)
        calibrate_rates(grid, spikes, case.target_rate)
        precise = copy.deepcopy(grid)
        for layer in precise:
            layer.precise = True
        times: dict[str, list[float]] = {"grid": [], "precise": []}
        rates = {}
        for _ in range(args.rounds):
            for name, model in (("grid", grid), ("precise", precise)):
                with SpikeRecorder(model[:-1]) as recorder:
                    timing = time_training_steps(model, spikes, labels, warmup=1,
                                                 max_timed=args.steps, budget_s=math.inf)
                times[name] += timing.timed
                rates[name] = recorder.rates()
        g, pr = statistics.median(times["grid"]), statistics.median(times["precise"])
        print(f"{md} | {1e3 * g:.0f} | {1e3 * pr:.0f} | {pr / g:.2f} | "
              f"{rates['grid']}, {rates['precise']}")
        if md == args.max_delays[0] and args.exact_samples:
            ex = _exact_seconds_per_sample(precise, spikes, labels, args.exact_samples)
            per = pr / args.batch
            print(f"exact engine: {1e3 * ex:.0f} ms per sample (forward + backward, "
                  f"{args.exact_samples} samples); precise mode {1e3 * per:.1f} ms per sample "
                  f"in a batch of {args.batch}: exact / precise = {ex / per:.0f}")


if __name__ == "__main__":
    main()

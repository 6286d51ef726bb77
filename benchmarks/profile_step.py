"""Profile one training step of a method on the benchmark workload (where does the time go?).

    python benchmarks/profile_step.py dcls --hidden 256 256 --max-delay 64 --batch 8

Prints torch.profiler's table of operators by self CPU time.  Numba kernels of the engine show up
as the autograd Functions that call them (``_LIFGridBackward`` ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch.profiler import ProfilerActivity, profile

from delayprop import losses
from delayprop.bench import Case, calibrate_rates, synthetic_shd
from delayprop.bench.worker import build_case_model
from delayprop.methods import METHODS, copy_parameters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method", choices=[m for m in METHODS if m != "delgrad"])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--max-delay", type=int, default=64, help="steps of 1 ms")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rows", type=int, default=15)
    args = p.parse_args()
    case = Case("ff", args.method, tuple(args.hidden), 1.0, args.max_delay, batch=args.batch)
    spikes, labels = synthetic_shd(args.batch)
    torch.manual_seed(case.seed)
    engine = build_case_model(dataclasses.replace(case, method="eventprop"))
    calibrate_rates(engine, spikes, case.target_rate)
    model = build_case_model(case)
    copy_parameters(engine, model, drop_delays=args.method == "bptt")

    def step() -> None:
        v = model(spikes)
        losses.cross_entropy(losses.exp_weighted_mean(v), labels).backward()

    step()  # warm-up (Numba kernels, allocator)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f"{args.method}: {time.perf_counter() - start:.3f} s per forward + backward")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()

"""Profile one training step of a method on the benchmark workload (where does the time go?).

    python benchmarks/profile_step.py dcls --hidden 256 256 --max-delay 64 --batch 8

Prints torch.profiler's table of operators by self CPU time.  Numba kernels of the engine show up
as the autograd Functions that call them (``_LIFGridBackward`` ...).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from delayprop import losses
from delayprop.bench.workload import calibrate_rates, shd_weight_init, synthetic_shd
from delayprop.methods import METHODS, build_model, copy_parameters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method", choices=METHODS)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--max-delay", type=int, default=64, help="steps of 1 ms")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rows", type=int, default=15)
    args = p.parse_args()
    torch.manual_seed(0)
    spikes, labels = synthetic_shd(args.batch)
    d = float(args.max_delay)
    ff_init, _ = shd_weight_init(len(args.hidden))
    kw = dict(n_in=700, hidden=args.hidden, n_out=20, weight_init=ff_init, max_delay=d,
              delay_init=(0.0, d), readout_max_delay=d, readout_delay_init=(0.0, d))  # fmt: skip
    engine = build_model("eventprop", **kw)
    calibrate_rates(engine, spikes, 15.0)
    if args.method == "bptt":
        kw.update(max_delay=0.0, readout_max_delay=0.0)
    model = build_model(args.method, **kw)
    copy_parameters(engine, model, drop_delays=True)

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

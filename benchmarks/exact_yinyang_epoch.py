"""Time one Yin-Yang training epoch (4-30-3, 5000 samples, batch 150, forward + backward + Adam)
on the exact engine and on the time-stepped engine at dt = 0.05 and 0.01 ms.

    PYTHONPATH=src python benchmarks/exact_yinyang_epoch.py [--epochs 3] [--scale 2]

Every engine trains the same initial network (weights N(1, 1) times ``--scale``, learnable
synaptic delays in [0, 10] ms starting at 0, time-invariant MSE on first-spike times) on the
same batches; their epochs interleave so that changes of the machine's load hit all engines alike.
A warm-up batch compiles/loads the kernels first; the table gives the wall time of each epoch,
the median and its ratio to the exact engine, and the spikes per sample.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numba
import numpy as np
import torch

import delayprop as dp
from delayprop import losses
from delayprop.data.yinyang import yinyang_dataset


def build(scale: float, seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    init = dp.Normal(1.0 * scale, 1.0 * scale)
    return torch.nn.Sequential(
        dp.LIF(4, 30, dt=None, max_delay=10.0, weight_init=init),
        dp.LIF(30, 3, dt=None, max_delay=10.0, weight_init=init),
    )


def with_dt(model: torch.nn.Module, dt: float | None) -> torch.nn.Module:
    model = copy.deepcopy(model)
    if dt is not None:
        model = model.float()
    for m in model.modules():
        if isinstance(m, dp.LIF):
            m.dt = dt
    return model


def run_epoch(model, data, batches, dtype):
    weights, delays = dp.split_parameters(model)
    opt = torch.optim.Adam([{"params": weights, "lr": 5e-3}, {"params": delays, "lr": 0.1}])
    spikes, correct = 0, 0
    start = time.perf_counter()
    for idx in batches:
        batch = data.batch(idx)
        x = batch.to_spikes(dtype=dtype)
        labels = torch.from_numpy(batch.labels)
        hidden = model[0](x)
        out = model[1](hidden)
        t_first = losses.first_spike_times(out)
        loss = losses.time_invariant_mse(t_first, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        dp.constrain_(model)
        spikes += hidden.n_spikes + out.n_spikes
        correct += int((losses.first_spike_prediction(t_first.detach()) == labels).sum())
    return time.perf_counter() - start, spikes / len(data), correct / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--dts", default="none,0.05,0.01", help="comma list; none = exact")
    args = parser.parse_args()
    data = yinyang_dataset("train")
    rng = np.random.default_rng(0)
    orders = [list(data.batch_indices(150, shuffle=True, rng=rng)) for _ in range(args.epochs)]
    base = build(args.scale, seed=0)
    names = args.dts.split(",")
    engines = {}
    for name in names:
        dt = None if name == "none" else float(name)
        dtype = torch.float64 if dt is None else torch.float32
        model = with_dt(base, dt)
        run_epoch(copy.deepcopy(model), data, orders[0][:1], dtype)  # compile / load kernels
        engines[name] = (model, dtype, [], [])
    # epochs of the engines interleave, so that load changes on the machine hit all alike
    for epoch, order in enumerate(orders):
        for name, (model, dtype, times, spikes) in engines.items():
            seconds, per_sample, acc = run_epoch(model, data, order, dtype)
            times.append(seconds)
            spikes.append(per_sample)
            print(f"epoch {epoch} dt={name}: {seconds:.2f} s, {per_sample:.1f} spikes/sample, "
                  f"train acc {acc:.3f}", flush=True)  # fmt: skip
    ref = statistics.median(engines[names[0]][2])
    print(f"\nthreads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}")
    print("| engine | epoch times (s) | median (s) | / first row | spikes per sample |")
    print("|---|---|---|---|---|")
    for name, (_, _, times, spikes) in engines.items():
        label = "exact (dt=None)" if name == "none" else f"time-stepped dt={name} ms"
        med = statistics.median(times)
        print(f"| {label} | {', '.join(f'{t:.2f}' for t in times)} | {med:.2f} | "
              f"{med / ref:.2f} | {statistics.mean(spikes):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()

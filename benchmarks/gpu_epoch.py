"""Seconds per SHD-sized training epoch and peak GPU memory: EventProp engine vs DCLS baseline.

The measurement of the GPU issue (docs/gpu.md): SHD-shaped synthetic input (700 channels,
1127 steps of 1 ms, ``--spikes-per-sample`` spikes per sample, 20 classes), an epoch of 8156
samples in batches of 256, and

* ``ff``: 700-256-256-20, learnable delays on every projection, max delay 64 .. 1024 steps,
  EventProp (this engine) and the DCLS baseline (``delayprop.methods``) on the same weights;
* ``rec512``: 700-512-20 with a recurrent hidden layer, learnable input and recurrent delays
  (the published best SHD network), EventProp only.

A training step is forward, cross-entropy on the exponentially weighted mean of the readout
voltage, backward, Adam (delays in their own group) and delay clamping, with the batch moved to
the device inside the step.  The hidden layers are first calibrated to ``--rate`` spikes per
neuron per sample (``delayprop.bench.calibrate_rates``), so that both methods simulate the same
activity.  After ``--warmup`` steps (which compile the kernels), a whole epoch is timed
(``torch.cuda.synchronize`` at its end); a method slower than ``--budget`` seconds per epoch is
timed on as many batches as fit the budget and extrapolated (marked in the table).  Peak memory
is ``torch.cuda.max_memory_allocated`` over the timed steps (parameters, optimiser state and
all buffers of the step), and ``max_memory_reserved`` (what torch's caching allocator held).

Usage (on a machine with a CUDA GPU and ``pip install -e '.[cuda]'``)::

    python benchmarks/gpu_epoch.py --out runs/gpu_epoch

writes ``gpu_epoch.json`` and ``gpu_epoch.md`` to ``--out``.  ``--device cpu --quick`` runs the
same protocol at tiny sizes on the CPU (checks the script, measures nothing of interest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

import delayprop as dp
from delayprop import losses

EPOCH_SAMPLES = 8156  # SHD training set
SHD_STEPS = 1127  # longest SHD trial at 1 ms


@dataclasses.dataclass(frozen=True)
class Workload:
    n_in: int = 700
    n_out: int = 20
    hidden: int = 256
    rec_hidden: int = 512
    n_steps: int = SHD_STEPS
    spikes_per_sample: int = 5000
    epoch_samples: int = EPOCH_SAMPLES
    batch: int = 256


QUICK = Workload(n_in=40, hidden=16, rec_hidden=24, n_steps=100, spikes_per_sample=200,
                 epoch_samples=20, batch=8)  # fmt: skip


def _batches(work: Workload, seed: int) -> list[tuple[dp.Spikes, torch.Tensor]]:
    from delayprop.bench import synthetic_shd

    sizes = [work.batch] * (work.epoch_samples // work.batch)
    if work.epoch_samples % work.batch:
        sizes.append(work.epoch_samples % work.batch)
    return [
        synthetic_shd(
            b,
            n_in=work.n_in,
            n_classes=work.n_out,
            duration=float(work.n_steps),
            spikes_per_sample=work.spikes_per_sample,
            seed=seed + k,
        )  # fmt: skip
        for k, b in enumerate(sizes)
    ]


def _build(method: str, net: str, max_delay: int, work: Workload) -> torch.nn.Module:
    from delayprop.bench.workload import shd_weight_init
    from delayprop.methods import build_model

    recurrent = net == "rec512"
    hidden = [work.rec_hidden] if recurrent else [work.hidden, work.hidden]
    ff_init, rec_init = shd_weight_init(len(hidden))
    d = float(max_delay)
    d_out = 0.0 if recurrent else d  # the recurrent network has no readout delays
    rec = dict(recurrent=True, rec_max_delay=d, rec_delay_init=(0.0, d),
               rec_weight_init=rec_init) if recurrent else {}  # fmt: skip
    return build_model(
        method, n_in=work.n_in, hidden=hidden, n_out=work.n_out, dt=1.0, max_delay=d,
        delay_init=(0.0, d), weight_init=ff_init, readout_max_delay=d_out,
        readout_delay_init=(0.0, d_out), **rec,
    )  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_fn(model: torch.nn.Module, device: torch.device):
    weights, delays = dp.split_parameters(model)
    groups = [{"params": weights, "lr": 1e-3}] + ([{"params": delays, "lr": 0.1}] if delays else [])
    opt = torch.optim.Adam(groups)

    def step(spikes: dp.Spikes, labels: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        v = model(spikes.to(device))
        loss = losses.cross_entropy(losses.exp_weighted_mean(v), labels.to(device))
        loss.backward()
        opt.step()
        dp.constrain_(model)

    return step


@dataclasses.dataclass
class Result:
    net: str
    max_delay: int
    method: str
    status: str
    seconds_per_epoch: float | None = None
    extrapolated: bool = False
    batches_timed: int = 0
    seconds_per_step_median: float | None = None
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    spikes_per_neuron: list[float] | None = None


def measure(
    method: str, net: str, max_delay: int, batches, work: Workload, device: torch.device,
    args: argparse.Namespace, weights_from: torch.nn.Module | None,
) -> tuple[Result, torch.nn.Module | None]:  # fmt: skip
    """Time one (method, network, max delay); returns the result and the model (for the weights
    of the next method)."""
    from delayprop.bench import calibrate_rates
    from delayprop.methods import copy_parameters

    model = _build(method, net, max_delay, work).to(device)
    if weights_from is not None:
        copy_parameters(weights_from, model)
    else:
        calibrate_rates(model, batches[0][0].to(device), args.rate)
    recorder = dp.SpikeRecorder(model[:-1]) if method == "eventprop" else None
    step = _step_fn(model, device)
    for k in range(args.warmup):
        step(*batches[k % len(batches)])
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    start = time.perf_counter()
    for spikes, labels in batches:
        t0 = time.perf_counter()
        step(spikes, labels)
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > args.budget:
            break
    elapsed = time.perf_counter() - start
    samples = sum(b[0].batch_size for b in batches[: len(times)])
    result = Result(
        net, max_delay, method, "ok",
        seconds_per_epoch=elapsed * work.epoch_samples / samples,
        extrapolated=len(times) < len(batches), batches_timed=len(times),
        seconds_per_step_median=sorted(times)[len(times) // 2],
    )  # fmt: skip
    if device.type == "cuda":
        result.peak_allocated_gib = torch.cuda.max_memory_allocated(device) / 2**30
        result.peak_reserved_gib = torch.cuda.max_memory_reserved(device) / 2**30
    if recorder is not None:
        counts, batch = recorder.counts, recorder.batch_sizes[0]
        recorder.close()
    else:
        counts, batch = model.spike_counts, model.last_batch_size
    result.spikes_per_neuron = [float(c.sum()) / c.numel() / batch for c in counts]
    return result, model


def run(args: argparse.Namespace) -> list[Result]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch (use --device cpu --quick for a dry run)")
    work = QUICK if args.quick else Workload(batch=args.batch,
                                             spikes_per_sample=args.spikes_per_sample)  # fmt: skip
    max_delays = args.max_delays or ([4, 8] if args.quick else [64, 128, 256, 512, 1024])
    batches = _batches(work, args.seed)
    results = []
    for net in args.nets:
        for d in max_delays:
            source = None
            for method in ["eventprop"] + [m for m in args.methods if m != "eventprop"]:
                if method != "eventprop" and net == "rec512":
                    continue  # the dense baselines are feed-forward
                print(f"{net} max delay {d} {method} ...", file=sys.stderr, flush=True)
                torch.manual_seed(args.seed)
                if method != "eventprop" and source is None:
                    results.append(Result(net, d, method, "skipped: no calibrated weights"))
                    continue
                try:
                    result, model = measure(method, net, d, batches, work, device, args, source)
                except (RuntimeError, ValueError) as err:  # e.g. out of memory: report, go on
                    result, model = Result(net, d, method, f"{type(err).__name__}: {err}"), None
                if method == "eventprop":
                    source = model
                results.append(result)
                print(f"  {result}", file=sys.stderr, flush=True)
                if device.type == "cuda":
                    del model
                    torch.cuda.empty_cache()
    return results


def markdown(results: list[Result], device_name: str, command: str) -> str:
    rows = {(r.net, r.max_delay): {} for r in results}
    for r in results:
        rows[(r.net, r.max_delay)][r.method] = r

    def cell(r: Result | None, field: str, fmt: str) -> str:
        if r is None:
            return "–"
        if r.status != "ok":
            return r.status.split(":")[0]
        value = getattr(r, field)
        if value is None:
            return "–"
        return format(value, fmt) + ("*" if field == "seconds_per_epoch" and r.extrapolated else "")

    lines = [
        f"Device: {device_name}. Command: `{command}`",
        "",
        "| network | max delay | EventProp s/epoch | EventProp peak GiB | DCLS s/epoch "
        "| DCLS peak GiB | speed-up | memory ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (net, d), by in rows.items():
        e, c = by.get("eventprop"), by.get("dcls")
        speed = mem = "–"
        if e and c and e.status == c.status == "ok":
            speed = f"{c.seconds_per_epoch / e.seconds_per_epoch:.0f}x"
            if e.peak_allocated_gib and c.peak_allocated_gib:
                mem = f"{c.peak_allocated_gib / e.peak_allocated_gib:.1f}x"
        lines.append(
            f"| {net} | {d} | {cell(e, 'seconds_per_epoch', '.2f')} "
            f"| {cell(e, 'peak_allocated_gib', '.3f')} | {cell(c, 'seconds_per_epoch', '.1f')} "
            f"| {cell(c, 'peak_allocated_gib', '.2f')} | {speed} | {mem} |"
        )
    lines += ["", "\\* extrapolated from the batches that fit the time budget."]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": platform.python_version(), "cuda": torch.version.cuda}
    for package in ("torch", "numba", "numba-cuda", "delayprop"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/gpu_epoch"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--nets", nargs="+", default=["ff", "rec512"], choices=["ff", "rec512"])
    p.add_argument("--methods", nargs="+", default=["eventprop", "dcls"],
                   choices=["eventprop", "dcls"])  # fmt: skip
    p.add_argument("--max-delays", nargs="+", type=int, default=None, metavar="STEPS")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--spikes-per-sample", type=int, default=5000)
    p.add_argument("--rate", type=float, default=15.0, help="spikes per hidden neuron per sample")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--budget", type=float, default=120.0, help="seconds of timing per config")
    p.add_argument(
        "--scratch-mib",
        type=int,
        default=None,
        help="per-launch scratch budget of the CUDA kernels (LaunchConfig.scratch_bytes), MiB",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a dry run of the script)")
    args = p.parse_args(argv)
    if args.batch < 1 or args.warmup < 0 or not args.budget > 0 or args.spikes_per_sample < 1:
        p.error("--batch and --spikes-per-sample must be >= 1, --warmup >= 0, --budget > 0")
    if args.max_delays and min(args.max_delays) < 1:
        p.error("--max-delays must be >= 1 step")
    if args.scratch_mib is not None:
        if args.scratch_mib < 1:
            p.error("--scratch-mib must be >= 1")
        from delayprop.kernels import grid_cuda

        config = dataclasses.replace(
            grid_cuda.launch_config(), scratch_bytes=args.scratch_mib << 20
        )
        grid_cuda.set_launch_config(config)
    results = run(args)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    command = " ".join(["python", *sys.argv]) if argv is None else " ".join(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "device": name,
        "command": command,
        "versions": _versions(),
        "results": [dataclasses.asdict(r) for r in results],
    }
    (args.out / "gpu_epoch.json").write_text(json.dumps(record, indent=1))
    table = markdown(results, name, command)
    (args.out / "gpu_epoch.md").write_text(table)
    print(table)
    return 0 if all(r.status == "ok" or r.method != "eventprop" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

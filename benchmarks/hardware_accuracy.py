"""Accuracy cost of hardware profiles: float, float rounded after training, constraint-aware.

For every task, seed and profile this trains

* the float model (no constraint) and evaluates it on the test split;
* the same trained model rounded to the profile after training (``apply_profile`` on the
  selected model: weights quantised, delays rounded to the nearest step and clipped to the
  target's range), evaluated without further training: the naive path;
* a model trained constraint-aware (``model.hardware_profile``): the forward pass sees the
  quantised weights and integer delays throughout training.

Hardware profiles have a time step, so every column runs the time-stepped engine at the task's
``dt`` (Yin-Yang, whose default config uses the exact engine, runs on a grid: ``--yinyang-dt``).
A profile is a built-in name (trained through the config key ``model.hardware_profile``, as
``delayprop train --hardware NAME``) or a variant ``NAME:field=value,...`` (e.g.
``loihi:weight_bits=4``), applied with ``apply_profile`` to the network before training.
Results are appended to OUT/results.json after every run (a rerun skips what is there), and
OUT/table.md holds the table (mean +- std of test accuracy over seeds).

    python benchmarks/hardware_accuracy.py --out runs/hw_table --seeds 0 1 2 \\
        --tasks yinyang digits sequence_memory --profiles loihi spinnaker
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

from delayprop.config import load_config
from delayprop.hardware import apply_profile, get_profile
from delayprop.training import Trainer


def _overrides(task: str, args: argparse.Namespace) -> list[str]:
    extra = [f"train.epochs={args.epochs[task]}"] if task in args.epochs else []
    if task == "yinyang":
        extra.append(f"model.dt={args.yinyang_dt}")
    return extra


def parse_profile(spec: str):
    """``NAME`` or ``NAME:field=value,...`` -> HardwareProfile (values as int or float)."""
    name, _, rest = spec.partition(":")
    changes = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        changes[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return get_profile(name, **changes)


def _train(task: str, seed: int, overrides: list[str], profile: str | None = None) -> Trainer:
    cfg = load_config(task, [*overrides, f"train.seed={seed}"])
    trainer = Trainer(cfg, None, quiet=True)
    if profile is not None:
        apply_profile(trainer.model, parse_profile(profile))
    trainer.fit()
    return trainer


def run_cell(task: str, seed: int, profiles: list[str], args: argparse.Namespace) -> dict:
    """float / rounded (per profile) / constraint-aware (per profile) test accuracies."""
    base = _overrides(task, args)
    out: dict = {}
    t0 = time.perf_counter()
    trainer = _train(task, seed, base)
    out["float"] = trainer.evaluate(trainer.data.test)["accuracy"]
    selected = trainer.model
    for name in profiles:  # the selected float model, rounded (a copy: profiles change layers)
        trainer.model = apply_profile(copy.deepcopy(selected), parse_profile(name))
        out[f"rounded:{name}"] = trainer.evaluate(trainer.data.test)["accuracy"]
    for name in profiles:
        if ":" in name:
            aware = _train(task, seed, base, profile=name)
        else:
            aware = _train(task, seed, [*base, f"model.hardware_profile={name}"])
        out[f"aware:{name}"] = aware.evaluate(aware.data.test)["accuracy"]
    out["seconds"] = time.perf_counter() - t0
    return out


def table(results: dict, profiles: list[str]) -> str:
    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.fmean(values):.1f} +- {100 * sd:.1f} ({len(values)})"

    cols = ["float"] + [f"{k}:{p}" for p in profiles for k in ("rounded", "aware")]
    lines = ["| task | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for task, seeds in results.items():
        row = [cell([r[c] for r in seeds.values() if c in r]) for c in cols]
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", nargs="+", default=["yinyang", "digits", "sequence_memory"])
    p.add_argument("--profiles", nargs="+", default=["loihi", "spinnaker"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", nargs="*", default=[], metavar="TASK=N",
                   help="epochs per task, e.g. yinyang=20 (default: the task's config)")
    p.add_argument("--yinyang-dt", type=float, default=0.2, help="Yin-Yang time step, ms")
    args = p.parse_args()
    args.epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for seed in args.seeds:
        for task in args.tasks:
            done = results.setdefault(task, {})
            if str(seed) in done:
                continue
            done[str(seed)] = run_cell(task, seed, args.profiles, args)
            print(task, seed, json.dumps(done[str(seed)]), flush=True)
            path.write_text(json.dumps(results, indent=1))
            (args.out / "table.md").write_text(table(results, args.profiles))
    print(table(results, args.profiles))


if __name__ == "__main__":
    main()

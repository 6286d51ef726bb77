"""``delayprop train TASK --out DIR``: train a built-in task or a YAML config."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import torch

from ..config import BUILTIN_CONFIGS, config_to_dict, load_config
from ..hardware import PROFILES
from ..methods.registry import METHODS
from ..training.distributed import init_distributed, shutdown_distributed
from ..training.io import RUN_FILES, prepare_run_dir, write_json
from ..training.lock import run_lock
from ..training.progress import PROGRESS_MODES
from ..training.tensorboard import TENSORBOARD_DIR, TensorBoardUnavailable, require_tensorboard
from ..training.trainer import Trainer

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network",
        description="Train a built-in task (" + ", ".join(BUILTIN_CONFIGS) + ") or a YAML "
        "config file; results, checkpoints and metrics go to --out.",
    )
    p.add_argument("task", help="built-in task name or path to a YAML config")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config entries, e.g. train.epochs=5 model.dt=null")
    p.add_argument("--method", choices=METHODS,
                   help="shorthand for --set model.method=...")
    p.add_argument("--hardware", choices=sorted(PROFILES),
                   help="constraint-aware training for a hardware profile (shorthand for "
                   "--set model.hardware_profile=...)")
    p.add_argument("--seeds", help="comma-separated seeds: one run per seed in DIR/seed<N>, "
                   "plus DIR/summary.json with mean and standard deviation")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--quiet", action="store_true", help="one log line per epoch, no bars")
    p.add_argument("--progress", choices=PROGRESS_MODES[:3], default="auto",
                   help="auto (default): live bars on a terminal, plain lines when the output "
                   "goes to a file or pipe; bars; lines")
    p.add_argument("--tensorboard", action="store_true",
                   help=f"log metrics and histograms per epoch to DIR/{TENSORBOARD_DIR} "
                   "(needs the tensorboard package)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory of downloaded data sets (default: $DELAYPROP_DATA)")
    p.set_defaults(func=run)  # fmt: skip


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must list distinct integers, got {text!r}")
    return seeds


def _train_one(task: str, overrides: list[str], out: Path, args, device, dist) -> dict:
    cfg = load_config(task, overrides)
    with run_lock(out) if dist.is_main else contextlib.nullcontext():
        if dist.is_main:
            prepare_run_dir(out, config_to_dict(cfg), resume=args.resume, force=args.force)
        board = out / TENSORBOARD_DIR if args.tensorboard else None
        trainer = Trainer(cfg, out, device=device, quiet=args.quiet, dist=dist,
                          data_dir=args.data_dir, progress=args.progress, tensorboard=board)
        if args.resume and (out / RUN_FILES["checkpoint"]).exists():
            trainer.resume()
        elif args.resume and dist.is_main:
            print(f"{out}: no epoch completed yet, starting from the beginning", file=sys.stderr)
        return trainer.fit()


def parse_device(text: str) -> torch.device:
    """A torch device from its name; ``ValueError`` for an unknown one or a missing GPU."""
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise ValueError(f"--device {text!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text} was requested but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {text!r}: delayprop runs on cpu or cuda")
    return device


def run(args: argparse.Namespace) -> int:
    device = parse_device(args.device)
    if args.tensorboard:
        try:
            require_tensorboard()
        except TensorBoardUnavailable as err:
            raise ValueError(f"--tensorboard: {err}") from None
    overrides = list(args.overrides)
    if args.method:
        overrides.append(f"model.method={args.method}")
    if args.hardware:
        overrides.append(f"model.hardware_profile={args.hardware}")
    dist = init_distributed(device)
    try:
        seeds = _seeds(args.seeds)
        if seeds is None:
            _train_one(args.task, overrides, args.out, args, device, dist)
            return 0
        results = {}
        for seed in seeds:
            out = args.out / f"seed{seed}"
            results[seed] = _train_one(
                args.task, [*overrides, f"train.seed={seed}"], out, args, device, dist
            )
        if dist.is_main:
            summary = _summarise(results)
            write_json(args.out / "summary.json", summary)
            acc = summary["test_accuracy"]
            print(f"test accuracy over seeds {seeds}: {acc['mean']:.4f} +- {acc['std']:.4f}")
        return 0
    finally:
        shutdown_distributed(dist)


def _summarise(results: dict[int, dict]) -> dict:
    summary: dict = {"seeds": sorted(results)}
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy", "best_epoch"):
        values = [float(r[key]) for r in results.values()]
        summary[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
        }
    return summary

"""``delayprop eval RUN --split test``: evaluate a trained network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data import load_dataset
from ..training.io import write_json
from ..training.runs import CHECKPOINTS, load_run
from ..training.trainer import evaluate_dataset
from .train import parse_device

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained network on a data split",
                       description="Evaluate the model of a run directory; prints loss and "
                       "accuracy and writes RUN/eval_<split>_<which>.json.")  # fmt: skip
    p.add_argument("run_dir", type=Path)
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument("--which", default="best", choices=sorted(CHECKPOINTS))
    p.add_argument("--batch-size", type=int, default=None, help="default: train.eval_batch_size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory of downloaded data sets (default: $DELAYPROP_DATA)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size <= 0:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    device = parse_device(args.device)
    model, cfg = load_run(args.run_dir, args.which, device)
    ds = load_dataset(cfg.data.name, args.split, data_dir=args.data_dir, **cfg.data.options)
    size = cfg.train.eval_batch_size if args.batch_size is None else args.batch_size
    result = {"split": args.split, "which": args.which, "samples": len(ds),
              **evaluate_dataset(model, ds, cfg.loss, size, device)}  # fmt: skip
    write_json(args.run_dir / f"eval_{args.split}_{args.which}.json", result)
    print(json.dumps(result))
    return 0

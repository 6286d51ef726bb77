"""``delayprop data download NAME`` and ``delayprop data info NAME``: get and inspect data sets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from ..data import DATASETS, EventDataset, download, load_dataset
from ..data.download import REMOTE_FILES
from ..data.splits import SPLITS

__all__ = ["register", "run_download", "run_info", "describe"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download and inspect data sets",
                       description="Download the published data files (online machines) or "
                       "print sizes, classes and spike statistics of a data set.")  # fmt: skip
    commands = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    d = commands.add_parser("download", help="download and verify the published files")
    d.add_argument("name", choices=sorted(REMOTE_FILES))
    d.add_argument("--data-dir", type=Path, default=None, help="default: $DELAYPROP_DATA")
    d.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    d.set_defaults(func=run_download)

    i = commands.add_parser("info", help="sizes, classes and spikes per sample")
    i.add_argument("name", choices=DATASETS)
    i.add_argument("--data-dir", type=Path, default=None, help="default: $DELAYPROP_DATA")
    i.add_argument("--split", action="append", choices=SPLITS, help="default: all three")
    i.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="loader option, value parsed as YAML (e.g. binning=5)")  # fmt: skip
    i.set_defaults(func=run_info)


def run_download(args: argparse.Namespace) -> int:
    paths = download(args.name, args.data_dir, force=args.force, report=print)
    for path in paths:
        print(f"ok {path}")
    return 0


def _parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    return options


def describe(ds: EventDataset) -> str:
    """Several lines: size, channels, classes, duration, spikes per sample, class counts."""
    counts = ds.counts()
    per_class = np.bincount(ds.labels, minlength=ds.n_classes)
    names = ds.class_names or tuple(str(k) for k in range(ds.n_classes))
    lines = [
        f"{ds.name}: {len(ds)} samples, {ds.n_channels} channels, {ds.n_classes} classes, "
        f"duration {ds.duration:g} ms, {ds.n_events} spikes",
    ]
    if len(ds):
        lines.append(
            f"  spikes per sample: min {counts.min()}, median {np.median(counts):g}, "
            f"mean {counts.mean():.1f}, max {counts.max()}; empty samples: {(counts == 0).sum()}"
        )
    if ds.n_events:
        lines.append(f"  spike times: {ds.times.min():g} .. {ds.times.max():g} ms")
    lines.append("  per class: " + ", ".join(f"{n} {c}" for n, c in zip(names, per_class)))
    if "speaker" in ds.meta:
        lines.append(f"  speakers: {np.unique(ds.meta['speaker']).tolist()}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    options = _parse_options(args.option)
    status = 0
    for split in args.split or SPLITS:
        try:
            ds = load_dataset(args.name, split, data_dir=args.data_dir, **options)
        except ValueError as err:
            print(f"{args.name} {split}: {err}", file=sys.stderr)
            status = 2
            continue
        print(describe(ds))
    return status

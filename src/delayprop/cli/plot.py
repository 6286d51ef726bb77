"""``delayprop plot RUN``: learning curves, raster, delay distributions, activity."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw the figures of a training run",
                       description="Write learning curves, a spike raster of a test sample, the "
                       "delay distributions before and after training and a histogram of spikes "
                       "per neuron to RUN/plots (PNG and PDF).")  # fmt: skip
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output directory (default RUN/plots)")
    p.add_argument("--samples", type=int, default=64, help="test samples for activity plots")
    p.add_argument("--format", dest="formats", nargs="+", default=["png", "pdf"],
                   choices=("png", "pdf", "svg"))
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory of downloaded data sets (default: $DELAYPROP_DATA)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plotting import plot_run  # matplotlib: an extra, imported when a plot is drawn

    for path in plot_run(args.run_dir, args.out, args.samples, tuple(args.formats),
                         data_dir=args.data_dir):  # fmt: skip
        print(path)
    return 0

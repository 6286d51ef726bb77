"""``delayprop export RUN --format nir``: write a trained network for another simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hardware import PROFILES
from ..training.runs import CHECKPOINTS, load_run

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained network (NIR)",
                       description="Write the model of a run directory as a NIR graph "
                       "(delays included; weights and delays as the forward pass uses them, "
                       "i.e. quantised for a run trained with --hardware).")  # fmt: skip
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", default="nir", choices=("nir",))
    p.add_argument("--which", default="best", choices=sorted(CHECKPOINTS))
    p.add_argument("--out", type=Path, default=None, help="file (default: RUN/model_<which>.nir)")
    p.add_argument("--hardware", choices=sorted(PROFILES), default=None,
                   help="round the network to this hardware profile before writing (the "
                   "naive path for a run trained without it)")
    p.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from .. import nir
    from ..hardware import apply_profile

    model, cfg = load_run(args.run_dir, args.which)
    if cfg.model.method != "eventprop":
        raise ValueError(
            f"NIR export supports eventprop networks (LIF / LIReadout layers), not "
            f"method {cfg.model.method!r}"
        )
    if args.hardware is not None:
        if cfg.model.hardware_profile not in (None, args.hardware):
            raise ValueError(
                f"the run was trained for hardware {cfg.model.hardware_profile!r}; "
                f"--hardware {args.hardware} would apply a second profile"
            )
        apply_profile(model, args.hardware)
    out = args.out or args.run_dir / f"model_{args.which}.nir"
    nir.export(model, out)
    print(out)
    return 0

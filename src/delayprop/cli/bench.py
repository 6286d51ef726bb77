"""``delayprop bench``: compare eventprop (grid and precise mode) with the DCLS and BPTT baselines
(time and memory)."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from pathlib import Path

from ..bench.cases import BENCH_METHODS

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time and memory per training step: eventprop (grid and precise mode) vs DCLS vs BPTT",
        description=(
            "Median time of a full training step and peak memory for SHD-shaped synthetic input, "
            "one process per configuration, all methods in the same run.  Writes bench.json, "
            "bench.md and bench.png to --out."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench"), help="output directory")
    p.add_argument("--suite", nargs="+", default=None, metavar="SUITE",
                   help="ff, dcls-paper, recurrent, fixed-delays (default: all)")  # fmt: skip
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(BENCH_METHODS),
        help="methods to compare: eventprop, precise (eventprop in precise mode), bptt, dcls "
        "(eventprop always runs: it calibrates the weights)",
    )
    p.add_argument(
        "--max-delays",
        nargs="+",
        type=int,
        default=None,
        metavar="STEPS",
        help="max delays of the 1 ms suites (default 64 128 256 512 1024)",
    )
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per process")
    p.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timed steps per configuration (at least one step)",
    )
    p.add_argument(
        "--max-step-seconds",
        type=float,
        default=900.0,
        help="skip a configuration whose extrapolated step time exceeds this",
    )
    p.add_argument(
        "--max-memory-gb",
        type=float,
        default=8.0,
        help="skip a configuration whose extrapolated peak RSS exceeds this",
    )
    p.add_argument(
        "--dcls-everywhere",
        action="store_true",
        help="run DCLS at every 1 ms grid point (default: the smallest max delay and the target)",
    )
    p.add_argument(
        "--report-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: write the report of an earlier run's bench.json to --out",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, for CI (a few seconds each)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..bench import SUITES, Caps, machine_info, plan, run_cases, write_report
    if args.report_from is not None:
        return _rewrite_report(args.report_from, args.out)

    for name, value in (("--threads", args.threads), ("--batch", args.batch or 1),
                        ("--budget", args.budget), ("--max-step-seconds", args.max_step_seconds),
                        ("--max-memory-gb", args.max_memory_gb)):  # fmt: skip
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    overrides = dict(threads=args.threads, budget_s=args.budget)
    if args.batch is not None:
        overrides["batch"] = args.batch
    cases = plan(
        tuple(args.suite or SUITES), methods=tuple(args.methods),
        max_delays=tuple(args.max_delays) if args.max_delays else None, quick=args.quick,
        dcls_everywhere=args.dcls_everywhere,
        **overrides,
    )  # fmt: skip
    caps = Caps(step_s=args.max_step_seconds, memory_mb=args.max_memory_gb * 1024)
    command = _command(args)
    bar = tqdm(total=len(cases), unit="config", dynamic_ncols=True)

    def progress(case, record) -> None:
        if record["status"] == "ok":
            note = f"{1e3 * record['time_median_s']:.0f} ms, {record['rss_peak_mb']:.0f} MB"
        else:
            note = f"{record['status']}: {record.get('reason', '')}"
        bar.write(f"{case.label()}: {note}")
        bar.update(1)

    with tempfile.TemporaryDirectory(prefix="delayprop-bench-") as work:
        results = run_cases(cases, Path(work), caps=caps, progress=progress)
    bar.close()
    paths = write_report(results, machine_info(args.threads), command, args.out)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if all(r["status"] != "error" for r in results) else 1


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options that differ from the defaults)."""
    parts = ["delayprop", "bench"] + (["--quick"] if args.quick else [])
    if args.suite:
        parts += ["--suite", *args.suite]
    if args.methods != list(BENCH_METHODS):
        parts += ["--methods", *args.methods]
    if args.max_delays:
        parts += ["--max-delays", *map(str, args.max_delays)]
    if args.dcls_everywhere:
        parts.append("--dcls-everywhere")
    for flag, value, default in (("--batch", args.batch, None), ("--threads", args.threads, None),
                                 ("--budget", args.budget, 20.0),
                                 ("--max-step-seconds", args.max_step_seconds, 900.0),
                                 ("--max-memory-gb", args.max_memory_gb, 8.0)):  # fmt: skip
        if value is not None and value != default:
            parts += [flag, f"{value:g}"]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def _rewrite_report(source: Path, out: Path) -> int:
    """Write the markdown/JSON/plot of an earlier run (same measurements, current format)."""
    import json

    from ..bench import write_report

    if not source.is_file():
        raise FileNotFoundError(f"no benchmark results at {source}")
    try:
        doc = json.loads(source.read_text())
        results, machine, command = doc["results"], doc["machine"], doc["command"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{source} is not a bench.json written by delayprop bench: {err}") from err
    paths = write_report(results, machine, command, out)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0

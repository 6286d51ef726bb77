"""Convergence of the time-stepped engine to the exact engine as dt -> 0 (docs/convergence.md).

    PYTHONPATH=src python benchmarks/exact_convergence.py [--out docs/convergence.png]

The two problems of tests/test_convergence.py, on more time steps:

* feed-forward: 6 inputs -> 10 LIF -> 3 LIF with synaptic delays, loss sum_k r_unit cos(0.3 t_k)
  over all output spikes;
* recurrent: 6 inputs -> 10 recurrent LIF (recurrent delays in [0, 3] ms, 40 % exactly 0,
  spike-count regulariser) -> 2 LI readout with delays, cross-entropy of the exponentially
  weighted mean voltage;
* the feed-forward problem again in the precise mode (``precise=True``), which should agree
  with the exact engine at every dt.

Prints a markdown table (max spike-time error over spikes of neurons with equal counts, fraction
of neurons whose count differs, largest relative gradient error over all parameters and input
times) and plots both errors against dt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from delayprop.verify import engine_gap  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_convergence as problems  # noqa: E402

DTS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/convergence.png")
    args = parser.parse_args()
    x = problems.inputs()
    results = {
        "feed-forward, spike-time loss": engine_gap(
            problems.feed_forward(), x, problems.spike_loss, DTS
        ),
        "recurrent + LI readout, trace loss": engine_gap(
            problems.recurrent(), x, problems.trace_loss, DTS
        ),
        "feed-forward, spike-time loss, precise mode": engine_gap(
            problems.feed_forward(), x, problems.spike_loss, DTS, precise=True
        ),
    }
    print("| problem | dt (ms) | spike-time error (ms) | neurons with other count | "
          "max relative gradient error |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, gaps in results.items():
        for g in gaps:
            print(f"| {name} | {g.dt:g} | {g.spike_time_error:.2e} | {g.count_mismatch:.1%} | "
                  f"{g.max_grad_error:.2e} |")  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for name, gaps in results.items():
        dts = [g.dt for g in gaps]
        floor = 1e-16  # exact agreement would vanish from a log axis
        axes[0].loglog(dts, [max(g.spike_time_error, floor) for g in gaps], "o-", label=name)
        axes[1].loglog(dts, [max(g.max_grad_error, floor) for g in gaps], "o-", label=name)
    for ax, title in zip(axes, ("spike-time error (ms)", "max relative gradient error")):
        ax.loglog(DTS, [0.5 * dt for dt in DTS], "k:", label="∝ dt")
        ax.set_xlabel("time step dt (ms)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("time-stepped engine vs exact engine")
    fig.savefig(args.out, dpi=120)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

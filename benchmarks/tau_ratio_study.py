"""Accuracy against the ratio tau_syn / tau_mem, multi-spike vs single-spike networks.

Yamamoto et al. (2022) report that networks whose neurons may fire many times reach their best
accuracy at an intermediate ratio tau_syn / tau_mem, which single-spike (time-to-first-spike)
networks do not show.  This study trains the Yin-Yang task (config ``yinyang``: exact engine,
learnable delays) at several ratios with tau_mem fixed, once with unlimited spikes per neuron and
once with ``max_spikes=1`` in every layer, and plots test accuracy (mean +- std over seeds).

Input weights are rescaled at every ratio by the peak of the postsynaptic potential, so that the
initial activity is comparable (the peak of a unit current jump grows with tau_syn).

    python benchmarks/tau_ratio_study.py --out runs/tau_ratio --epochs 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from delayprop.config import load_config  # noqa: E402
from delayprop.kernels.formulas import rate_difference  # noqa: E402
from delayprop.kernels.lif_flow import extremum  # noqa: E402
from delayprop.training import Trainer  # noqa: E402


def psp_peak(tau_syn: float, tau_mem: float) -> float:
    """Peak of V after a unit jump of I (our units: tau_mem dV/dt = -V + I), where V = I."""
    t = extremum(0.0, 1.0, tau_syn, rate_difference(tau_mem, tau_syn))
    return math.exp(-t / tau_syn)


def run(ratio: float, single: bool, seed: int, epochs: int, tau_mem: float) -> dict:
    base = load_config("yinyang")
    tau_syn = ratio * tau_mem
    scale = psp_peak(base.model.tau_syn, base.model.tau_mem) / psp_peak(tau_syn, tau_mem)
    (m_in, s_in), (m_out, s_out) = base.model.weight_init
    overrides = [
        f"model.tau_syn={tau_syn}", f"model.tau_mem={tau_mem}", f"train.epochs={epochs}",
        f"train.seed={seed}",
        f"model.weight_init=[[{m_in * scale},{s_in * scale}],[{m_out * scale},{s_out * scale}]]",
    ]  # fmt: skip
    if single:
        overrides.append("model.max_spikes=1")
    result = Trainer(load_config("yinyang", overrides), quiet=True).fit()
    return {"ratio": ratio, "single_spike": single, "seed": seed,
            "test_accuracy": result["test_accuracy"],
            "validation_accuracy": result["validation_accuracy"]}  # fmt: skip


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for single, label in ((False, "multi-spike (EventProp)"), (True, "single-spike")):
        ratios = sorted({r["ratio"] for r in rows if r["single_spike"] == single})
        accs = [[100 * r["test_accuracy"] for r in rows
                 if r["single_spike"] == single and r["ratio"] == q] for q in ratios]  # fmt: skip
        mean = [statistics.fmean(a) for a in accs]
        std = [statistics.stdev(a) if len(a) > 1 else 0.0 for a in accs]
        ax.errorbar(ratios, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set(xlabel="tau_syn / tau_mem", ylabel="test accuracy (%)", title="Yin-Yang")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/tau_ratio"))
    p.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--tau-mem", type=float, default=20.0)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ratio in args.ratios:
        for single in (False, True):
            for seed in args.seeds:
                rows.append(run(ratio, single, seed, args.epochs, args.tau_mem))
                print(json.dumps(rows[-1]), flush=True)
    (args.out / "tau_ratio.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, args.out / "tau_ratio.png")
    print(f"wrote {args.out / 'tau_ratio.json'} and {args.out / 'tau_ratio.png'}")


if __name__ == "__main__":
    main()

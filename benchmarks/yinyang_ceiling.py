"""How much of the Yin-Yang test accuracy the validation-based selection leaves on the table.

Trains the ``yinyang`` config (or another) for each seed exactly as ``delayprop train`` does,
and additionally evaluates the test split after every epoch.  Those test accuracies are only
reported, never used: the selected model is still the one with the best validation accuracy.
The best test accuracy over epochs is an upper bound on what any selection rule could reach
with this training run (an oracle), and the gap to the validation-selected model is the cost of
selecting on 1000 validation samples.

    python benchmarks/yinyang_ceiling.py --seeds 0 1 2 --out docs/studies/yinyang_ceiling.json

writes the curves (JSON) and their plot (same name, .png); ``--plot-only`` redraws the plot of
an existing JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from delayprop.config import load_config
from delayprop.training import Trainer


class _TestMonitor(Trainer):
    """A trainer that also records the test accuracy after every epoch (reporting only)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.test_curve: list[float] = []

    def _write(self, final=None) -> None:
        if final is None:
            self.test_curve.append(self.evaluate(self.data.test)["accuracy"])
        super()._write(final)


def plot(doc: dict, path: Path) -> None:
    """Validation and test accuracy against epoch, one panel per seed, selected and best-test
    epochs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, r in zip(axes[0], runs):
        epochs = range(1, len(r["test"]) + 1)
        ax.plot(epochs, [100 * a for a in r["validation"]], lw=0.8, label="validation")
        ax.plot(epochs, [100 * a for a in r["test"]], lw=0.8, label="test")
        ax.axvline(r["selected_epoch"], color="k", ls="--", lw=0.8,
                   label=f"selected on validation: test {100 * r['selected_test']:.1f}")
        ax.axvline(r["oracle_epoch"], color="r", ls=":", lw=0.8,
                   label=f"best test: {100 * r['oracle_test']:.1f}")  # fmt: skip
        ax.axhline(98.5, color="0.6", lw=0.6)
        ax.set_ylim(95, 100)
        ax.set_xlabel("epoch")
        ax.set_title(f"{doc['config']}, seed {r['seed']}")
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="yinyang")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, required=True, help="JSON file with every curve")
    p.add_argument("--plot-only", action="store_true", help="redraw the plot of --out")
    args = p.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return
    runs = []
    for seed in args.seeds:
        cfg = load_config(args.config, [*args.set, f"train.seed={seed}"])
        trainer = _TestMonitor(cfg, progress="lines")
        result = trainer.fit()
        curve = trainer.test_curve
        best = max(range(len(curve)), key=curve.__getitem__)
        runs.append({
            "seed": seed,
            "selected_epoch": result["best_epoch"],
            "selected_test": result["test_accuracy"],
            "validation": [r["validation_accuracy"] for r in result["history"]],
            "test": curve,
            "oracle_epoch": best + 1,
            "oracle_test": curve[best],
            "last10_test_mean": statistics.fmean(curve[-10:]),
        })  # fmt: skip
        print(f"seed {seed}: selected epoch {result['best_epoch']} test "
              f"{result['test_accuracy']:.4f}; best test over epochs {curve[best]:.4f} "
              f"(epoch {best + 1}); mean test of the last 10 epochs "
              f"{runs[-1]['last10_test_mean']:.4f}")  # fmt: skip
    for key in ("selected_test", "oracle_test", "last10_test_mean"):
        values = [r[key] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{key}: {100 * statistics.fmean(values):.2f} +- {100 * sd:.2f} %")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"config": args.config, "set": args.set, "runs": runs}
    args.out.write_text(json.dumps(doc))
    plot(doc, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()

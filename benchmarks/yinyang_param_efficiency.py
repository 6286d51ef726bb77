"""Yin-Yang accuracy against the number of learnable parameters, with and without delays.

DelGrad (Goltz et al. 2025) reports 95.4 % for a 4-5-3 network with synaptic delays and 98.2 %
for 4-30-3; Meszaros et al. (2025) report that, once delays are learned, halving the hidden
layer costs EventProp nothing.  This study trains 4-H-3 networks for every hidden size H, with
EventProp (exact engine; configs ``yinyang`` and ``yinyang_nodelay``) and with DelGrad
(``yinyang_delgrad_synaptic`` and ``yinyang_delgrad``), each with and without learnable
synaptic delays, over several seeds (hidden -> output weights scaled to the fan-in, see
``REFERENCE_HIDDEN``), and writes one JSON (one row per run) and one plot (test
accuracy against learnable parameters, mean +- std over seeds).  Every run keeps the protocol
of its config: model selected on the validation split, test evaluated once at the end.

    python benchmarks/yinyang_param_efficiency.py --out docs/studies --seeds 0 1 2
    python benchmarks/yinyang_param_efficiency.py --out docs/studies --seeds 0 1 2 --epochs 30

``--epochs`` overrides the configs' epochs (default: each config's own); runs already in the
JSON are kept and skipped, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from delayprop.config import RunConfig, load_config  # noqa: E402
from delayprop.training import Trainer  # noqa: E402
from delayprop.training.model import count_parameters  # noqa: E402

#: (method, delays) -> built-in config
CONFIGS = {
    ("eventprop", True): "yinyang",
    ("eventprop", False): "yinyang_nodelay",
    ("delgrad", True): "yinyang_delgrad_synaptic",
    ("delgrad", False): "yinyang_delgrad",
}
#: hidden size the configs' weight initialisation is made for; in a 4-H-3 network the mean of
#: the hidden -> output weights is multiplied by 30 / H and their std by sqrt(30 / H), so that
#: every output neuron receives input of the same mean and variance at initialisation (with the
#: configs' N(1, 1) from 5 hidden neurons the EventProp outputs stay silent and learn nothing)
REFERENCE_HIDDEN = 30
JSON_NAME = "yinyang_param_efficiency.json"
PNG_NAME = "yinyang_param_efficiency.png"


def study_config(
    method: str, delays: bool, hidden: int, seed: int, epochs: int | None
) -> RunConfig:
    """The config of one 4-``hidden``-3 run: the method's built-in config, hidden -> output
    weights scaled to the fan-in (``REFERENCE_HIDDEN``), ``epochs`` (None: the config's own)."""
    config = CONFIGS[(method, delays)]
    (m_in, s_in), (m_out, s_out) = load_config(config).model.weight_init
    scale = REFERENCE_HIDDEN / hidden
    overrides = [
        f"model.hidden=[{hidden}]", f"train.seed={seed}",
        f"model.weight_init=[[{m_in},{s_in}],[{m_out * scale},{s_out * scale**0.5}]]",
    ]  # fmt: skip
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(config, overrides)


def run(method: str, delays: bool, hidden: int, seed: int, epochs: int | None) -> dict:
    """Train one 4-``hidden``-3 network; accuracies are fractions, time in seconds."""
    config = CONFIGS[(method, delays)]
    cfg = study_config(method, delays, hidden, seed, epochs)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, quiet=True)
    n_params = count_parameters(trainer.model)
    result = trainer.fit()
    return {
        "method": method, "delays": delays, "hidden": hidden, "seed": seed, "config": config,
        "epochs": cfg.train.epochs, "parameters": n_params, "weight_init": cfg.model.weight_init,
        "validation_accuracy": result["validation_accuracy"],
        "test_accuracy": result["test_accuracy"], "best_epoch": result["best_epoch"],
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds of every (method, delays, hidden) group."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["delays"], r["hidden"]), []).append(r)
    out = []
    for (method, delays, hidden), rs in sorted(groups.items()):
        test = [100 * r["test_accuracy"] for r in rs]
        val = [100 * r["validation_accuracy"] for r in rs]
        out.append({
            "method": method, "delays": delays, "hidden": hidden,
            "parameters": rs[0]["parameters"], "epochs": rs[0]["epochs"],
            "seeds": [r["seed"] for r in rs],
            "test_mean": statistics.fmean(test),
            "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "validation_mean": statistics.fmean(val),
            "validation_std": statistics.stdev(val) if len(val) > 1 else 0.0,
        })  # fmt: skip
    return out


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table (accuracies in %, mean +- std over seeds)."""
    lines = [
        "| method | delays | network | parameters | validation | test |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['method']} | {'synaptic' if s['delays'] else 'none'} | 4-{s['hidden']}-3 "
            f"| {s['parameters']} | {s['validation_mean']:.2f} +- {s['validation_std']:.2f} "
            f"| {s['test_mean']:.2f} +- {s['test_std']:.2f} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    styles = {"eventprop": ("C0", "o"), "delgrad": ("C1", "s")}
    for (method, delays), _ in CONFIGS.items():
        pts = sorted((s for s in summary if s["method"] == method and s["delays"] == delays),
                     key=lambda s: s["parameters"])  # fmt: skip
        if not pts:
            continue
        color, marker = styles[method]
        ax.errorbar(
            [s["parameters"] for s in pts], [s["test_mean"] for s in pts],
            yerr=[s["test_std"] for s in pts], color=color, marker=marker, capsize=3,
            linestyle="-" if delays else "--", mfc=color if delays else "white",
            label=f"{method}, {'synaptic delays' if delays else 'weights only'}",
        )  # fmt: skip
        if method == "eventprop":  # DelGrad has the same parameter counts: label once
            for s in pts:
                ax.annotate(f"4-{s['hidden']}-3", (s["parameters"], s["test_mean"]), fontsize=7,
                            textcoords="offset points", xytext=(-8, 8))  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sorted({s["parameters"] for s in summary}))
    ax.tick_params(axis="x", labelsize=7, labelrotation=45)
    epochs = sorted({s["epochs"] for s in summary})
    ax.set(xlabel="learnable parameters", ylabel="test accuracy (%), mean ± std over seeds",
           title=f"Yin-Yang 4-H-3, {'/'.join(map(str, epochs))} epochs")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/studies"))
    p.add_argument("--hidden", type=int, nargs="+", default=[5, 10, 15, 30])
    p.add_argument("--methods", nargs="+", default=["eventprop", "delgrad"],
                   choices=["eventprop", "delgrad"])  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of every run (default: each config's own)"
    )
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / JSON_NAME
    rows = json.loads(path.read_text())["runs"] if path.exists() else []

    def key(method: str, delays: bool, hidden: int, seed: int, epochs: int | None) -> tuple:
        cfg_epochs = load_config(CONFIGS[(method, delays)]).train.epochs
        return (method, delays, hidden, seed, cfg_epochs if epochs is None else epochs)

    done = {(r["method"], r["delays"], r["hidden"], r["seed"], r["epochs"]) for r in rows}
    for hidden in args.hidden:
        for method in args.methods:
            for delays in (True, False):
                for seed in args.seeds:
                    if key(method, delays, hidden, seed, args.epochs) in done:
                        continue
                    rows.append(run(method, delays, hidden, seed, args.epochs))
                    print(json.dumps(rows[-1]), flush=True)
                    summary = summarise(rows)
                    path.write_text(json.dumps({"runs": rows, "summary": summary},
                                               indent=2) + "\n")  # fmt: skip
    summary = summarise(rows)
    path.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")
    plot(summary, args.out / PNG_NAME)
    print(markdown_table(summary))
    print(f"wrote {path} and {args.out / PNG_NAME}")


if __name__ == "__main__":
    main()

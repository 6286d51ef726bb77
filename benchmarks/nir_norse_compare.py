"""A trained, hardware-constrained network exported to NIR and run in Norse.

Trains the memory task (``sequence_memory``: recurrent layer, input delays up to 150 ms,
recurrent delays) for the Loihi profile (or takes ``--run``), exports it with
``delayprop.nir.export``, loads the file in Norse 1.1.0 through nirtorch and runs the test
inputs in both simulators at the run's dt.  Prints, for the graph as written (Norse integrates
with Euler) and with the propagator matched (``to_norse(..., match_propagator=True)``): spike
count differences, the fraction of spikes at the aligned step, the readout trace error and the
agreement of the predicted classes; draws OUT/norse_compare_dt<dt>.png.

    python benchmarks/nir_norse_compare.py --out runs/norse_compare
    python benchmarks/nir_norse_compare.py --out runs/norse_compare --run runs/norse_compare/run \
        --dt 0.1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from delayprop import nir as dnir  # noqa: E402
from delayprop.cli import main as cli  # noqa: E402
from delayprop.data import load_dataset  # noqa: E402
from delayprop.nir_norse import compare_with_norse  # noqa: E402
from delayprop.training.runs import load_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, default=None, help="a trained eventprop run directory")
    p.add_argument("--samples", type=int, default=32, help="test samples to run")
    p.add_argument("--dt", type=float, default=None,
                   help="time step of both simulators, ms (default: the run's; a finer one "
                   "shrinks Norse's Euler error; delays must stay whole steps)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.run
    if run is None:
        run = args.out / "run"
        cli(["train", "sequence_memory", "--out", str(run), "--hardware", "loihi", "--quiet",
             "--force"])  # fmt: skip
    model, cfg = load_run(run)
    dnir.export(model, args.out / "model.nir")
    model = dnir.load(args.out / "model.nir")  # what the file holds
    dt = args.dt or cfg.model.dt
    for layer in model:
        layer.dt = dt
    test = load_dataset(cfg.data.name, "test", **cfg.data.options)
    spikes = test.batch(range(min(args.samples, len(test)))).to_spikes()
    raster = spikes.to_raster(dt, int(round(spikes.duration / dt)))
    report, comparisons = {}, {}
    for name, match in (("as written (Euler)", False), ("propagator matched", True)):
        c = compare_with_norse(model, raster, dt, match_propagator=match)
        comparisons[name] = c
        agree = c.trace.amax(1).argmax(1) == c.norse_trace.amax(1).argmax(1)
        report[name] = {
            "hidden spikes": int(c.ours[0].sum()),
            "spike count differences (sum |diff|)": int(c.count_differences(0).sum()),
            "spikes at the aligned step": round(c.same_step_fraction(0), 4),
            "readout trace error (max rel.)": float(f"{c.trace_error():.3g}"),
            "same predicted class": float(agree.float().mean()),
        }
    print(json.dumps({"dt_ms": dt, "samples": raster.shape[0], **report}, indent=1))
    (args.out / f"norse_compare_dt{dt:g}.json").write_text(json.dumps(report, indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, (name, c) in zip(axes, comparisons.items()):
        t = torch.arange(c.trace.shape[1]) * dt
        for j in range(c.trace.shape[2]):
            ax.plot(t, c.trace[0, :, j], color=f"C{j}", lw=2, alpha=0.5,
                    label=f"delayprop, output {j}")  # fmt: skip
            ax.plot(t, c.norse_trace[0, :, j], color=f"C{j}", lw=1, ls="--",
                    label=f"Norse, output {j}")  # fmt: skip
        ax.set_title(f"Norse: {name}")
        ax.set_xlabel("time (ms)")
    axes[0].set_ylabel("readout voltage")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / f"norse_compare_dt{dt:g}.png", dpi=120)


if __name__ == "__main__":
    main()

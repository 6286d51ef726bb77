"""Figures of a training run: learning curves, spike rasters, delay distributions, activity.

Every function takes plain data and returns a matplotlib Figure; ``plot_run`` draws them all
for a run directory and saves PNG and PDF files.  Needs matplotlib (``delayprop[plot]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._util import optional_import

optional_import("matplotlib", "plot", "plotting").use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from .spikes import Spikes  # noqa: E402

__all__ = [
    "plot_learning_curves",
    "plot_raster",
    "plot_delay_distributions",
    "plot_spike_counts",
    "layer_activity",
    "plot_run",
]


def plot_learning_curves(history: list[dict[str, Any]], title: str = "") -> Figure:
    """Loss and accuracy per epoch, training and validation."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("train", "training"), ("validation", "validation")):
        ax_loss.plot(epochs, [r[f"{key}_loss"] for r in history], label=label)
        ax_acc.plot(epochs, [100 * r[f"{key}_accuracy"] for r in history], label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def layer_activity(model: nn.Module, spikes: Spikes) -> list[Spikes | torch.Tensor]:
    """Outputs of every layer of a sequential model (the input first)."""
    outputs: list[Spikes | torch.Tensor] = [spikes]
    with torch.no_grad():
        x = spikes
        for layer in model.children():
            x = layer(x)
            outputs.append(x)
    return outputs


def plot_raster(activity: list[Spikes | torch.Tensor], sample: int = 0, dt: float | None = None,
                title: str = "") -> Figure:  # fmt: skip
    """Raster of one sample through all spiking layers; a voltage readout is drawn as traces."""
    fig, axes = plt.subplots(len(activity), 1, figsize=(8, 1.8 * len(activity) + 0.6),
                             sharex=True, squeeze=False)  # fmt: skip
    names = ["input"] + [f"layer {k}" for k in range(1, len(activity))]
    for ax, out, name in zip(axes[:, 0], activity, names):
        if isinstance(out, Spikes):
            t, u = out.sample(sample)
            ax.scatter(t.detach().cpu().numpy(), u.cpu().numpy(), s=25, marker="|", color="k")
            ax.set_ylim(-0.5, out.n_units - 0.5)
            ax.set_ylabel(f"{name}\nneuron")
        else:
            v = out[sample].detach().cpu().numpy()
            step = dt if dt is not None else 1.0
            ax.plot(np.arange(v.shape[0]) * step, v, lw=1)
            ax.set_ylabel(f"{name}\nvoltage")
        ax.grid(alpha=0.2)
    axes[-1, 0].set_xlabel("time (ms)")
    axes[-1, 0].set_xlim(0, activity[0].duration)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _delay_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    out = {}
    for name, module in model.named_modules():
        for attr in ("delay", "rec_delay"):
            d = getattr(module, attr, None)
            if isinstance(d, nn.Module):
                out[f"{name}.{attr}" if name else attr] = d.values().detach().cpu().numpy()
    return out


def plot_delay_distributions(before: nn.Module, after: nn.Module, title: str = "") -> Figure:
    """Histograms of every delay parametrisation before and after training (ms)."""
    d0, d1 = _delay_tensors(before), _delay_tensors(after)
    keys = list(d1)
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2),
                             squeeze=False)  # fmt: skip
    if not keys:
        axes[0, 0].text(0.5, 0.5, "no learnable delays", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, key in zip(axes[0], keys):
        hi = max(float(d1[key].max(initial=0)), float(d0.get(key, d1[key]).max(initial=0)), 1e-6)
        bins = np.linspace(0, hi, 31)
        if key in d0:
            ax.hist(d0[key].ravel(), bins=bins, alpha=0.5, label="before")
        ax.hist(d1[key].ravel(), bins=bins, alpha=0.5, label="after")
        ax.set(title=key, xlabel="delay (ms)", ylabel="synapses")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_spike_counts(activity: list[Spikes | torch.Tensor], title: str = "") -> Figure:
    """Histogram of spikes per neuron per sample for every spiking layer after the input."""
    layers = [(k, a) for k, a in enumerate(activity) if k > 0 and isinstance(a, Spikes)]
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(4 * max(len(layers), 1), 3.2),
                             squeeze=False)  # fmt: skip
    for ax, (k, out) in zip(axes[0], layers):
        per_neuron = out.counts_per_unit().double().mean(0).cpu().numpy()
        ax.hist(per_neuron, bins=30)
        ax.set(title=f"layer {k}", xlabel="spikes per neuron per sample", ylabel="neurons")
    if not layers:
        axes[0, 0].set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None, n_samples: int = 64,
             formats: tuple[str, ...] = ("png", "pdf"),
             data_dir: str | Path | None = None) -> list[Path]:  # fmt: skip
    """Draw all figures of a run directory into ``out_dir`` (default RUN/plots)."""
    from .data import load_dataset
    from .training.runs import load_run

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no metrics.json: is it a run directory?")
    try:
        metrics = json.loads(metrics_path.read_text())
        history = metrics["history"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{metrics_path} is damaged ({err!r})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    model, cfg = load_run(run_dir, "best")
    initial, _ = load_run(run_dir, "initial")
    test = load_dataset(cfg.data.name, "test", data_dir=data_dir, **cfg.data.options)
    batch = test.batch(np.arange(min(n_samples, len(test))))
    activity = layer_activity(model, batch.to_spikes())
    name = cfg.task
    figures = {
        "learning_curves": plot_learning_curves(history, name),
        "raster": plot_raster(activity, 0, cfg.model.dt or cfg.model.sample_dt,
                              f"{name}: test sample 0, label {int(batch.labels[0])}"),
        "delays": plot_delay_distributions(initial, model, name),
        "spike_counts": plot_spike_counts(activity, f"{name}: {len(batch.labels)} test samples"),
    }  # fmt: skip
    written = []
    for key, fig in figures.items():
        for fmt in formats:
            path = out_dir / f"{key}.{fmt}"
            fig.savefig(path, dpi=120)
            written.append(path)
        plt.close(fig)
    return written

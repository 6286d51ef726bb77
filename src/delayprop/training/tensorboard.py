"""Optional TensorBoard logging of a training run (``delayprop train ... --tensorboard``).

Per epoch (step = epochs completed):

* scalars ``loss/train``, ``loss/validation``, ``accuracy/train``, ``accuracy/validation``,
  ``lr/<group>`` (``weights``, ``delays``), ``spikes_per_neuron/hidden<i>`` (mean spikes per
  neuron and training sample of hidden layer i), ``silent_neurons/hidden<i>``,
  ``speed/samples_per_second``;
* histograms ``weights/<parameter name>`` of every trainable non-delay parameter and
  ``delays/<module name>`` of every delay parametrisation, in ms.

At the end, ``final/<split>_accuracy`` and ``final/<split>_loss`` of the selected model.  The
event files go to ``<run dir>/tensorboard``; view them with ``tensorboard --logdir <run dir>``
(a ``--seeds`` run shows one curve per seed).  Needs the ``tensorboard`` package
(``pip install "delayprop[tensorboard]"``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from torch import nn

from ..delays import Delay

__all__ = ["TENSORBOARD_DIR", "TensorBoardUnavailable", "TensorBoardLogger", "require_tensorboard"]

#: sub-directory of a run directory that holds the event files
TENSORBOARD_DIR = "tensorboard"
#: equal-width histogram bins between a tensor's smallest and largest value (TensorBoard's
#: default exponential buckets make the event file ~6 times larger: 25 instead of 4 KB per
#: Yin-Yang epoch)
HISTOGRAM_BINS = 64


class TensorBoardUnavailable(ImportError):
    """TensorBoard logging was asked for but the ``tensorboard`` package is not installed."""


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or ``TensorBoardUnavailable`` naming the
    package to install."""
    try:
        importlib.import_module("tensorboard")
        return importlib.import_module("torch.utils.tensorboard").SummaryWriter
    except ImportError as err:
        raise TensorBoardUnavailable(
            "TensorBoard logging needs the tensorboard package, which is not installed: "
            'pip install "delayprop[tensorboard]" (or pip install tensorboard)'
        ) from err


class TensorBoardLogger:
    """Writes a run's per-epoch metrics, learning rates, spike counts and weight and delay
    histograms as TensorBoard events under ``log_dir`` (created if needed)."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = require_tensorboard()(log_dir=str(self.log_dir))

    def log_epoch(
        self, epoch: int, row: dict[str, Any], model: nn.Module, learning_rates: dict[str, float]
    ) -> None:
        """Log epoch ``epoch`` (1-based): ``row`` is its line of the trainer's history,
        ``learning_rates`` maps optimiser group name -> rate of the epoch's last step."""
        w = self.writer
        for split, key in (("train", "train"), ("validation", "validation")):
            w.add_scalar(f"loss/{split}", row[f"{key}_loss"], epoch)
            w.add_scalar(f"accuracy/{split}", row[f"{key}_accuracy"], epoch)
        for name, lr in learning_rates.items():
            w.add_scalar(f"lr/{name}", lr, epoch)
        for i, (spikes, silent) in enumerate(
            zip(row["spikes_per_neuron"], row["silent_neurons"], strict=True)
        ):
            w.add_scalar(f"spikes_per_neuron/hidden{i}", spikes, epoch)
            w.add_scalar(f"silent_neurons/hidden{i}", silent, epoch)
        w.add_scalar("speed/samples_per_second", row["samples_per_second"], epoch)
        self._histograms(model, epoch)
        w.flush()

    def _histograms(self, model: nn.Module, epoch: int) -> None:
        delay_params = set()
        for name, module in model.named_modules():
            if isinstance(module, Delay):
                delay_params.update(id(p) for p in module.parameters())
                values = module.values().detach()
                if values.numel():
                    self.writer.add_histogram(
                        f"delays/{name or 'delay'}", values.cpu(), epoch, bins=HISTOGRAM_BINS
                    )
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in delay_params and p.numel():
                self.writer.add_histogram(
                    f"weights/{name}", p.detach().cpu(), epoch, bins=HISTOGRAM_BINS
                )

    def log_final(self, epoch: int, final: dict[str, Any]) -> None:
        """Log the selected model's final accuracies and losses at step ``epoch`` and close
        the event file."""
        for split in ("train", "validation", "test"):
            for metric in ("accuracy", "loss"):
                key = f"{split}_{metric}"
                if key in final:
                    self.writer.add_scalar(f"final/{key}", final[key], epoch)
        self.writer.close()

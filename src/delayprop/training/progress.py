"""Training progress that fits where it goes.

On a terminal, live progress bars (an epoch bar and a batch bar with running loss, accuracy,
spikes per neuron and learning rate).  Anywhere else (output redirected to a file, CI, a batch
job, ``nohup``) carriage-return redraws make an unreadable log, so the same numbers are written
as plain lines instead: one per epoch, and for long epochs one per batch at most every
``interval`` seconds::

    epoch 3/80 batch 40/100: loss 0.1234 train 0.9012 spikes/neuron 1.1 lr 0.0048 12.0 s
    epoch 3/80: loss 0.1180 train 0.9120 val_loss 0.1304 val 0.8950 spikes/neuron 1.1 lr 0.0048 ...

``grep '^epoch [0-9/]*:'`` keeps the epoch lines.  Quiet mode writes the epoch lines only.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

__all__ = [
    "PROGRESS_MODES",
    "BatchStats",
    "Progress",
    "SilentProgress",
    "LineProgress",
    "BarProgress",
    "make_progress",
    "epoch_line",
]

#: ``auto``: bars on a terminal, lines otherwise; ``bars``; ``lines``; ``quiet``: epoch lines only
PROGRESS_MODES = ("auto", "bars", "lines", "quiet")


@dataclass(frozen=True)
class BatchStats:
    """Running means over the batches of the current epoch so far.

    Attributes:
        batch: batches done in this epoch (1-based count).
        n_batches: batches in the epoch.
        loss: mean training loss per sample.
        accuracy: fraction of training samples classified correctly.
        spikes_per_neuron: mean spikes per neuron and sample, one entry per hidden layer.
        lr: current learning rate of the weights.
    """

    batch: int
    n_batches: int
    loss: float
    accuracy: float
    spikes_per_neuron: Sequence[float]
    lr: float


def _spikes(values: Sequence[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values) or "-"


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One plain line for a finished epoch (a row of the trainer's history) of ``epochs``."""
    return (
        f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f} "
        f"train {row['train_accuracy']:.4f} val_loss {row['validation_loss']:.4f} "
        f"val {row['validation_accuracy']:.4f} spikes/neuron {_spikes(row['spikes_per_neuron'])} "
        f"lr {row['lr']:.3g} {row['epoch_seconds']:.1f} s {row['samples_per_second']:.0f} samples/s"
    )


def batch_line(epoch: int, epochs: int, stats: BatchStats, seconds: float) -> str:
    """One plain line for the running means within epoch ``epoch`` (1-based) of ``epochs``."""
    return (
        f"epoch {epoch}/{epochs} batch {stats.batch}/{stats.n_batches}: loss {stats.loss:.4f} "
        f"train {stats.accuracy:.4f} spikes/neuron {_spikes(stats.spikes_per_neuron)} "
        f"lr {stats.lr:.3g} {seconds:.1f} s"
    )


class Progress:
    """What the trainer reports to; this base class reports nothing (e.g. on the non-main
    ranks of a data-parallel run).

    Call order: ``begin``, then per epoch ``start_epoch``, ``batch`` (per batch) and
    ``end_epoch``, then ``end``.  ``write`` may be called at any time.
    """

    def begin(self, epochs: int, done: int, n_batches: int) -> None:
        """Training of ``epochs`` epochs starts with ``done`` already completed (a resumed
        run) and ``n_batches`` batches per epoch."""

    def start_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) starts."""

    def batch(self, stats: BatchStats) -> None:
        """A training batch finished."""

    def end_epoch(self, row: dict[str, Any]) -> None:
        """An epoch finished, validation included (``row``: its line of the history)."""

    def end(self) -> None:
        """Training finished (or stopped early)."""

    def write(self, text: str) -> None:
        """A log message of the run (header, final result)."""


class SilentProgress(Progress):
    """Reports nothing, not even log messages."""


class LineProgress(Progress):
    """Plain lines to ``stream``: one per epoch, and one per batch at most every ``interval``
    seconds within an epoch (None: no batch lines, the quiet mode)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float | None = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval is not None and not (interval >= 0 and math.isfinite(interval)):
            raise ValueError(f"progress interval must be >= 0 s, got {interval}")
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.epochs = 0
        self.epoch = 0
        self._epoch_start = self._last = 0.0

    def begin(self, epochs: int, done: int, n_batches: int) -> None:
        self.epochs = epochs

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._epoch_start = self._last = self.clock()

    def batch(self, stats: BatchStats) -> None:
        if self.interval is None or stats.batch >= stats.n_batches:
            return  # the epoch line follows
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self.write(batch_line(self.epoch, self.epochs, stats, now - self._epoch_start))

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.write(epoch_line(row, self.epochs))

    def write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()


class BarProgress(Progress):
    """Live tqdm bars on ``stream`` (a terminal): epochs, and the batches of the current epoch
    with running loss, accuracy, spikes per neuron and learning rate."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._epochs: tqdm | None = None
        self._batches: tqdm | None = None
        self._n_batches = 0

    def begin(self, epochs: int, done: int, n_batches: int) -> None:
        self._n_batches = n_batches
        self._epochs = tqdm(total=epochs, initial=done, desc="epochs", unit="ep",
                            file=self.stream or sys.stderr)  # fmt: skip

    def start_epoch(self, epoch: int) -> None:
        self._batches = tqdm(total=self._n_batches, desc=f"epoch {epoch}", unit="batch",
                             leave=False, file=self.stream or sys.stderr)  # fmt: skip

    def batch(self, stats: BatchStats) -> None:
        if self._batches is None:
            return
        self._batches.update(1)
        self._batches.set_postfix(
            loss=f"{stats.loss:.4f}", acc=f"{stats.accuracy:.3f}",
            spk=_spikes(stats.spikes_per_neuron), lr=f"{stats.lr:.2g}",
        )  # fmt: skip

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self._batches is not None:
            self._batches.close()
            self._batches = None
        if self._epochs is not None:
            self._epochs.update(1)
            self._epochs.set_postfix(train=f"{row['train_accuracy']:.3f}",
                                     val=f"{row['validation_accuracy']:.3f}")  # fmt: skip

    def end(self) -> None:
        for bar in (self._batches, self._epochs):
            if bar is not None:
                bar.close()
        self._batches = self._epochs = None

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.stream or sys.stderr)


def make_progress(
    mode: str = "auto", stream: TextIO | None = None, *, interval: float = 30.0
) -> Progress:
    """The progress reporter of ``mode`` (one of ``PROGRESS_MODES``) writing to ``stream``
    (default: ``sys.stderr`` at the time of writing).  ``auto`` chooses bars when the stream
    is a terminal and plain lines otherwise; ``interval``: seconds between batch lines."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode must be one of {PROGRESS_MODES}, got {mode!r}")
    if mode == "auto":
        target = stream or sys.stderr
        mode = "bars" if _is_terminal(target) else "lines"
    if mode == "bars":
        return BarProgress(stream)
    return LineProgress(stream, interval=interval if mode == "lines" else None)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False

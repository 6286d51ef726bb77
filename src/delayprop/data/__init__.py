"""Data sets as ``EventDataset`` (flat event lists with labels) and their loaders."""

from __future__ import annotations

from typing import Any

from .base import EventBatch, EventDataset
from .sequence import sequence_dataset
from .yinyang import YinYangEncoding, yinyang_dataset

__all__ = ["EventDataset", "EventBatch", "load_dataset", "DATASETS"]

SPLIT_NAMES = ("train", "validation", "test")


def _yinyang(split: str, *, t_early: float = 1.5, t_late: float = 20.0,
             bias_time: float | None = None, duration: float = 30.0) -> EventDataset:  # fmt: skip
    return yinyang_dataset(split, YinYangEncoding(t_early, t_late, bias_time), duration)


def _sequence(split: str, *, gap: float = 10.0, duration: float | None = None,
              n_samples: int | None = None, jitter: float = 0.0) -> EventDataset:  # fmt: skip
    # without n_samples every split is the task's two examples; with it, each split draws its
    # own jittered samples (seeds 0 / 1 / 2)
    seed = {"train": 0, "validation": 1, "test": 2}[split]
    return sequence_dataset(gap, duration, n_samples=n_samples, jitter=jitter, seed=seed)


DATASETS = {"yinyang": _yinyang, "sequence": _sequence}


def load_dataset(name: str, split: str, **options: Any) -> EventDataset:
    """Load split ``train`` / ``validation`` / ``test`` of data set ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(sorted(DATASETS))}")
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLIT_NAMES}")
    try:
        return DATASETS[name](split, **options)
    except TypeError as err:
        raise ValueError(f"bad options for data set {name!r}: {err}") from None

"""Sequence detection (Meszaros et al. 2025): two inputs, two classes, order in time matters.

Class 0: input 0 spikes first and input 1 ``gap`` ms later; class 1: the reverse.  Both classes
contain the same two spikes, so a network can only tell them apart by remembering the first
spike until the second arrives: with fixed unit weights and two LI outputs the task is solved by
delaying the early input of each output's own class so that both arrive together.  With a gap
much longer than tau_mem (e.g. 100 ms against 20 ms) a network without delays has no memory of
the first spike and stays at chance.

The basic task has exactly the two examples; ``n_samples`` draws jittered copies (onset uniform
in [0, jitter], each spike moved by up to +-jitter/4) for train / validation / test sets.
"""

from __future__ import annotations

import numpy as np

from .base import EventDataset

__all__ = ["sequence_dataset", "worst_case_delays"]


def sequence_dataset(
    gap: float = 10.0,
    duration: float | None = None,
    *,
    n_samples: int | None = None,
    jitter: float = 0.0,
    seed: int = 0,
) -> EventDataset:
    """The sequence task; ``duration`` defaults to gap + jitter + 15 ms (ms throughout)."""
    if gap <= 0:
        raise ValueError(f"gap must be > 0 ms, got {gap}")
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0 ms, got {jitter}")
    duration = gap + 1.5 * jitter + 15.0 if duration is None else duration
    if n_samples is None:
        labels = np.array([0, 1])
        onset = np.zeros(2)
        shift = np.zeros((2, 2))
    else:
        rng = np.random.default_rng(seed)
        labels = np.arange(n_samples) % 2
        onset = rng.uniform(0.0, jitter, n_samples)
        shift = rng.uniform(-jitter / 4, jitter / 4, (n_samples, 2)) * (jitter > 0)
    first = onset + np.maximum(shift[:, 0], -onset)
    second = onset + gap + shift[:, 1]
    times = np.stack([first, second], axis=1).reshape(-1)
    units = np.stack([labels, 1 - labels], axis=1).reshape(-1)
    if times.max() >= duration:
        raise ValueError(f"duration {duration} ms must exceed the last spike at {times.max()} ms")
    offsets = np.arange(0, 2 * len(labels) + 1, 2)
    return EventDataset(times, units, offsets, labels, 2, 2, duration, "sequence")


def worst_case_delays(gap: float = 10.0) -> np.ndarray:
    """Delay matrix [n_out, n_in] (ms) that makes each output detect the wrong order: 0 on the
    diagonal, ``gap`` off it."""
    return np.array([[0.0, gap], [gap, 0.0]])
